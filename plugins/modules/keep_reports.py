#!/usr/bin/python
# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# The action plugin plugins/action/keep_reports.py packs O(src) on the controller and runs this
# module with the archive among its arguments: one module run, no transfer of its own.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: keep_reports
short_description: Keep a copy of a run's reports in the deploy host's state directory
version_added: 0.1.0
description:
  - The controller's report directory may be a job's ephemeral artifact directory (AWX); the
    deploy host keeps a copy, and the ledger records that durable path (docs/reports.md "Where
    reports live").
  - The action plugin packs the report directory O(src) on the controller (a gzip'd tar, in
    memory) and hands it to the module on the deploy host with its arguments, which unpacks it
    into O(dest). One module run whatever the number of files, with no temporary file and
    no transfer of its own, over the local connection, SSH or an AWX execution environment alike.
  - Once per kept directory. When O(dest) already holds C(report.json), the copy made first is
    kept as it is (a re-run of the same run id). C(report.json) is written last, so a copy
    interrupted half-way is made again by the next run.
  - Only regular files and directories are kept, by relative names inside O(dest); files
    C(0640), directories C(0750).
  - Used by staging.yml, validate.yml, rollback.yml and restore.yml, into
    C(<stagegate_state_dir>/runs/<run id>) (a rollback's in C(rollback/), a restore's in
    C(restore/)).
options:
  src:
    description: The run's report directory on the controller; it must hold C(report.json).
    type: str
    required: true
  dest:
    description: The kept directory on the deploy host, made with its parents when missing.
    type: path
    required: true
  archive:
    description:
      - The report directory packed by the action plugin (base64 of a gzip'd tar). Set by the
        action plugin; a task sets O(src) instead.
    type: str
attributes:
  check_mode:
    support: full
    description: Says whether the copy would be made (O(dest) lacks C(report.json)); writes nothing.
  diff_mode:
    support: none
    description: Returns no diff.
  idempotent:
    support: full
    description: A second run finds C(report.json) in O(dest) and changes nothing.
author:
  - stagegate developers (@stagegate)
seealso:
  - module: stagegate.release.gate
  - module: stagegate.release.ledger
"""

EXAMPLES = r"""
- name: Keep a copy of the reports in the deploy host's state dir
  stagegate.release.keep_reports:
    src: "{{ stagegate_gate.report_dir }}"
    dest: "{{ stagegate_state_dir }}/runs/{{ stagegate_gate.ledger_record.run_id }}"
"""

RETURN = r"""
dest:
  description: The kept directory.
  returned: always
  type: str
  sample: /var/lib/stagegate/staging/runs/20261201T093200Z-4f2a
files:
  description: The files of the copy, relative to RV(dest) (the ones it would write, in check mode).
  returned: always
  type: list
  elements: str
  sample: [report.html, report.json, report.md]
kept_before:
  description: True when RV(dest) already held C(report.json), so nothing was written.
  returned: always
  type: bool
"""

import base64
import binascii
import io
import os
import posixpath
import tarfile

from ansible.module_utils.basic import AnsibleModule

DIR_MODE = 0o750
FILE_MODE = 0o640
MARKER = "report.json"  # written last: its presence says the copy is whole


def members(archive):
    """(directories, files) of the archive by normalized relative name; anything else (a
    link, a device, an absolute or escaping name) is a ValueError naming the entry."""
    directories, files = [], []
    for member in archive.getmembers():
        name = posixpath.normpath(member.name)
        if name == ".":
            continue
        if name.startswith(("/", "../")) or name == "..":
            raise ValueError(f"entry {member.name!r} is outside the report directory")
        if member.isdir():
            directories.append(name)
        elif member.isfile():
            files.append((name, member))
        else:
            raise ValueError(f"entry {member.name!r} is neither a file nor a directory")
    files.sort(key=lambda item: item[0] == MARKER)  # the marker last
    return directories, files


def write_file(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, FILE_MODE)  # the umask may have taken bits away; an old file keeps its own


def unpack(archive, dest, directories, files):
    for name in [".", *directories]:
        path = os.path.join(dest, name)
        os.makedirs(path, mode=DIR_MODE, exist_ok=True)
        os.chmod(path, DIR_MODE)
    for name, member in files:
        path = os.path.join(dest, name)
        os.makedirs(os.path.dirname(path), mode=DIR_MODE, exist_ok=True)
        write_file(path, archive.extractfile(member).read())


def main():
    module = AnsibleModule(
        argument_spec={
            "src": {"type": "str", "required": True},
            "dest": {"type": "path", "required": True},
            "archive": {"type": "str", "no_log": True},
        },
        supports_check_mode=True,
    )
    dest, packed = module.params["dest"], module.params["archive"]
    if not packed:
        module.fail_json(
            msg="archive: missing; run this module through its action plugin "
            "(stagegate.release.keep_reports with src: the report directory on the controller)"
        )
    try:
        with tarfile.open(fileobj=io.BytesIO(base64.b64decode(packed)), mode="r:gz") as archive:
            directories, files = members(archive)
            result = {
                "dest": dest,
                "files": [name for name, _ in files],
                "kept_before": os.path.isfile(os.path.join(dest, MARKER)),
            }
            if result["kept_before"]:
                module.exit_json(
                    changed=False, msg=f"{dest} already holds this run's reports", **result
                )
            if not module.check_mode:
                unpack(archive, dest, directories, files)
    except (binascii.Error, tarfile.TarError, ValueError) as exc:
        module.fail_json(
            msg=f"archive: the packed reports of {module.params['src']} do not read ({exc})"
        )
    except OSError as exc:
        module.fail_json(msg=f"dest: cannot write the reports into {dest}: {exc}", dest=dest)
    verb = "would keep" if module.check_mode else "kept"
    module.exit_json(changed=True, msg=f"{verb} {len(files)} report file(s) in {dest}", **result)


if __name__ == "__main__":
    main()
