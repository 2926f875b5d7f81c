#!/usr/bin/python
# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_archive_info
short_description: Find a database dump and say what it holds, before a restore
description:
  - Chooses the archive to restore, O(source) (an absolute path, or a name in O(backup_dir)),
    else the newest archive in O(backup_dir) (by modification time; entries in no restorable
    format are passed over and listed in RV(passed_over)). It need not be one
    M(stagegate.release.pg_backup) made.
  - Reads its format from its bytes (custom C(pg_dump -Fc), directory C(-Fd), tar C(-Ft));
    anything else (a plain SQL dump, a gzip file, garbage) fails naming the file and the
    expected forms.
  - Reads its table of contents with C(pg_restore --list) (in O(db.container) when set, so the
    tool matches the server), to know it is a readable archive, the tables it holds data for and
    the database it was dumped from. A pg_backup manifest beside it is read too.
  - Changes nothing. RV(summary) is the restore plan C(playbooks/restore.yml) prints.
version_added: 0.1.0
author: stagegate developers (@stagegate)
extends_documentation_fragment:
  - stagegate.release.pg
options:
  source:
    description:
      - The archive, an absolute path or the name of an entry of O(backup_dir) (C(.dump) may
        be left out). Empty chooses the newest archive in O(backup_dir).
    type: str
    default: ""
  backup_dir:
    description: The directory searched for the newest archive, and names are looked up in.
    type: path
    required: true
  stop:
    description: The services the restore stops (for RV(summary) only).
    type: list
    elements: str
    default: []
  environment:
    description: The environment restored into (for RV(summary) only).
    type: str
    default: staging
  project_dir:
    description: The project directory whose C(.stagegate-release) names the release running.
    type: path
attributes:
  check_mode:
    support: full
    description: The module only reads; it runs the same in check mode.
  diff_mode:
    support: none
    description: Returns no diff.
  idempotent:
    support: full
    description: Reads only.
seealso:
  - name: pg_restore --list
    description: The table of contents this module reads.
    link: https://www.postgresql.org/docs/15/app-pgrestore.html
  - module: stagegate.release.pg_restore
"""

EXAMPLES = r"""
- name: Which dump would be restored
  stagegate.release.pg_archive_info:
    db: "{{ stagegate_db }}"
    source: "{{ stagegate_restore_from }}"
    backup_dir: "{{ stagegate_backup_dir }}"
    stop: "{{ stagegate_app_services }}"
  register: restore_archive
"""

RETURN = r"""
path:
  description: The archive chosen.
  returned: success
  type: str
format:
  description: C(custom), C(directory) or C(tar).
  returned: success
  type: str
bytes:
  description: Its size.
  returned: success
  type: int
modified:
  description: Its modification time (UTC, ISO 8601).
  returned: success
  type: str
archive:
  description:
    - The C(pg_restore --list) header, C(database) (dumped from), C(created), C(format),
      C(pg_dump_version), C(server_version), C(toc_entries).
  returned: success
  type: dict
tables:
  description: C(schema.table) of every table the archive holds data for.
  returned: success
  type: list
  elements: str
manifest:
  description:
    - C(run_id), C(release), C(created), C(verified), C(database) of a pg_backup manifest.
    - None when the archive has no manifest (stagegate did not make it).
  returned: success
  type: dict
passed_over:
  description: Newer entries of O(backup_dir) that are not restorable archives, C({path, reason}).
  returned: success
  type: list
  elements: dict
release:
  description: The release in O(project_dir) (its C(.stagegate-release)), empty when unknown.
  returned: success
  type: str
summary:
  description: The restore plan as text.
  returned: success
  type: str
dsn:
  description: The connection, without its password.
  returned: always
  type: str
"""

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ansible_collections.stagegate.release.plugins.module_utils._paths import RELEASE_MARKER
from ansible_collections.stagegate.release.plugins.module_utils._pg import (
    PgTarget,
    pg_module,
    run_manager,
)
from ansible_collections.stagegate.release.plugins.module_utils._pg_archive import (
    archive_format,
    archive_tables,
    find_archive,
    listing_header,
    read_manifest,
    restore_summary,
    size_of,
    staged_archive,
)

ARGUMENT_SPEC: dict[str, Any] = {
    "source": {"type": "str", "default": ""},
    "backup_dir": {"type": "path", "required": True},
    "stop": {"type": "list", "elements": "str", "default": []},
    "environment": {"type": "str", "default": "staging"},
    "project_dir": {"type": "path"},
}
MANIFEST_KEYS = ("run_id", "release", "created", "verified", "database")


class ArchiveInfo:
    def __init__(self, module: Any) -> None:
        self.params = module.params
        self.target = PgTarget.from_module_params(module.params)
        self.result: dict[str, Any] = {"changed": False, "dsn": self.target.redacted_dsn}

    def run(self) -> dict[str, Any]:
        path, passed = find_archive(self.params["source"], self.params["backup_dir"])
        stat = path.stat()
        self.result.update(
            path=str(path),
            format=archive_format(path),
            bytes=size_of(path),
            modified=datetime.fromtimestamp(stat.st_mtime, timezone.utc).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
            passed_over=passed,
        )
        with staged_archive(self.target, str(path)) as staged:
            listing = staged.listing()
        manifest = read_manifest(path)
        self.result.update(
            archive=listing_header(listing),
            tables=archive_tables(listing),
            manifest={k: manifest.get(k) for k in MANIFEST_KEYS} if manifest else None,
            release=self._release(),
        )
        self.result["summary"] = restore_summary(
            self.result,
            database=self.target.dbname,
            environment=self.params["environment"],
            stop=self.params["stop"],
        )
        return self.result

    def _release(self) -> str:
        if not self.params["project_dir"]:
            return ""
        marker = Path(self.params["project_dir"]) / RELEASE_MARKER
        try:
            return marker.read_text(encoding="utf-8").strip()
        except OSError:
            return ""


def main() -> None:
    module = pg_module(ARGUMENT_SPEC, supports_check_mode=True)
    run_manager(module, ArchiveInfo(module))


if __name__ == "__main__":
    main()
