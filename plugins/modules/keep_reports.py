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
  - Once per kept directory. When O(dest) already holds C(report.json) with the same C(verdict),
    the copy made first is kept as it is (a re-run of the same run id). With another verdict (a
    rollback that failed, then was resumed under its run id and finished) the new reports
    replace it. C(report.json) is written last, so a copy interrupted half-way is made again by
    the next run.
  - Only regular files and directories are kept, by relative names inside O(dest); files
    C(0640), directories C(0750).
  - Used by staging.yml, validate.yml, rollback.yml and restore.yml, into
    C(<stagegate_state_dir>/runs/<run id>) (a rollback's in C(rollback/), a restore's in
    C(restore/)).
  - With O(ledger_record), the same module run then appends the run's record to the release
    ledger as M(stagegate.release.ledger) does with O(stagegate.release.ledger#module:state=present)
    (once per run, under the ledger's lock), so recording a run on the deploy host is one module
    run. The record is appended whether the copy was made now or before.
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
  ledger_state_dir:
    description:
      - The deploy host's state directory whose C(ledger.jsonl) O(ledger_record) is appended to
        (C(stagegate_state_dir)).
    type: path
  ledger_record:
    description:
      - The run's ledger record (the C(stagegate.release.gate) action's C(ledger_record)), appended
        after the reports are kept; needs O(ledger_state_dir). Omitted, the ledger is not touched.
    type: dict
attributes:
  check_mode:
    support: full
    description:
      - Says whether the copy would be made (O(dest) lacks C(report.json)) and whether the record
        would be appended; writes nothing.
  diff_mode:
    support: partial
    description: The diff shows the line appended to the ledger; the copied files have none.
  idempotent:
    support: full
    description:
      - A second run finds C(report.json) with the same verdict in O(dest) and the run's record
        in the ledger, and changes nothing.
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

- name: Keep the reports and append the run to the ledger, in one module run
  stagegate.release.keep_reports:
    src: "{{ stagegate_gate.report_dir }}"
    dest: "{{ stagegate_state_dir }}/runs/{{ stagegate_gate.ledger_record.run_id }}"
    ledger_state_dir: "{{ stagegate_state_dir }}"
    ledger_record: "{{ stagegate_gate.ledger_record }}"
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
ledger:
  description:
    - With O(ledger_record), the ledger appended to (C(path)), the record now in it for this run
      (C(record)) and whether this run appended it (C(appended)).
  returned: when O(ledger_record) is set
  type: dict
  sample:
    path: /var/lib/stagegate/staging/ledger.jsonl
    appended: true
    record: {release: v2, verdict: GO}
ledger_warnings:
  description:
    - Ledger lines skipped or repaired before the append (as M(stagegate.release.ledger) returns
      them).
  returned: when O(ledger_record) is set
  type: list
  elements: str
"""

import base64
import binascii
import io
import json
import os
import posixpath
import tarfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stagegate.release.plugins.module_utils import _ledger

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


def verdict_of(data):
    """The `verdict` of a report.json's bytes; None when they do not read as one."""
    try:
        report = json.loads(data)
    except ValueError:
        return None
    return report.get("verdict") if isinstance(report, dict) else None


def kept_verdict(dest):
    try:
        with open(os.path.join(dest, MARKER), "rb") as handle:
            return verdict_of(handle.read())
    except OSError:
        return None


def packed_verdict(archive, files):
    for name, member in files:
        if name == MARKER:
            return verdict_of(archive.extractfile(member).read())
    return None


def keep(module):
    """Unpack the archive into dest unless it holds the reports already: the module's result."""
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
            replaced = result["kept_before"] and kept_verdict(dest) != packed_verdict(
                archive, files
            )
            if result["kept_before"] and not replaced:
                return dict(result, changed=False, msg=f"{dest} already holds this run's reports")
            if not module.check_mode:
                unpack(archive, dest, directories, files)
    except (binascii.Error, tarfile.TarError, ValueError) as exc:
        module.fail_json(
            msg=f"archive: the packed reports of {module.params['src']} do not read ({exc})"
        )
    except OSError as exc:
        module.fail_json(msg=f"dest: cannot write the reports into {dest}: {exc}", dest=dest)
    verb = "would keep" if module.check_mode else "kept"
    if replaced:  # a resumed rollback that finished: its final reports replace the NO_GO copy
        verb = "would replace" if module.check_mode else "replaced"
        verb += " the earlier verdict's reports with"
    return dict(result, changed=True, msg=f"{verb} {len(files)} report file(s) in {dest}")


def append_record(module, result):
    """The run's record appended to the ledger (once per run), added to `result`."""
    path = _ledger.ledger_path(module.params["ledger_state_dir"])
    try:
        appended, warnings = _ledger.append_as_module(
            path, module.params["ledger_record"], module.check_mode
        )
    except _ledger.LedgerError as exc:  # the copy's own message gives way to the ledger's
        module.fail_json(msg=str(exc), path=path, **{k: v for k, v in result.items() if k != "msg"})
    for warning in warnings:
        module.warn(warning)
    ledger = {"path": path, "record": appended["record"], "appended": appended["changed"]}
    result = dict(result, ledger=ledger, ledger_warnings=warnings)
    if appended["changed"]:
        result.update(changed=True, diff=appended["diff"])
        verb = "would append" if module.check_mode else "appended"
        result["msg"] += f"; {verb} the run to {path}"
    return result


def main():
    module = AnsibleModule(
        argument_spec={
            "src": {"type": "str", "required": True},
            "dest": {"type": "path", "required": True},
            "archive": {"type": "str", "no_log": True},
            "ledger_state_dir": {"type": "path"},
            "ledger_record": {"type": "dict"},
        },
        required_by={"ledger_record": "ledger_state_dir"},
        supports_check_mode=True,
    )
    if module.params["ledger_record"] is not None:
        try:  # a bad record is named before the reports are copied
            _ledger.validate_record(module.params["ledger_record"])
        except _ledger.LedgerError as exc:
            module.fail_json(msg=f"ledger_{exc}")
    result = keep(module)
    if module.params["ledger_record"] is not None:
        result = append_record(module, result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
