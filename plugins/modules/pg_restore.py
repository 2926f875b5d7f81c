#!/usr/bin/python
# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_restore
short_description: Restore a pg_backup archive into a named database and verify it
description:
  - Restores an archive made by M(stagegate.release.pg_backup) into O(name) (default the
    database the manifest names), after checking the archive's sha256 against its manifest.
  - With O(without_manifest), also an archive stagegate did not make (C(pg_dump -Fc), C(-Fd)
    or C(-Ft)), verified by its own table of contents instead (see O(without_manifest)).
  - The archive's format is read from its bytes before anything changes; a file in another
    form (a plain SQL dump, a gzip file, anything else) is refused naming the file and the
    expected forms.
  - O(mode=recreate) drops and re-creates the database; O(mode=clean) restores with
    C(pg_restore --clean --if-exists) into the existing one. Parallel jobs with O(jobs).
  - Other sessions on the database are ended only when O(terminate_sessions) is set B(and)
    O(environment) is in O(terminate_environments); otherwise a busy database fails the task.
  - Refuses an environment listed in O(production_environments) unless O(confirm_production).
    Environment names are compared without regard to case (C(Production) and C(PROD) count).
  - Verified afterwards. Every table of the manifest exists with the manifest's row count
    (exact counts when the backup recorded them, else non-empty where rows were estimated);
    without a manifest, every table the archive holds data for exists (row counts returned).
  - Progress (table by table) is parsed from C(pg_restore --verbose) into RV(progress) and
    O(progress_file).
version_added: 0.1.0
author: stagegate developers (@stagegate)
extends_documentation_fragment:
  - stagegate.release.pg
options:
  backup:
    description: Archive path (its manifest is C(<backup>.manifest.json)).
    type: path
    required: true
  name:
    description: Database to restore into; default the manifest's C(database).
    type: str
  mode:
    description: Re-create the database, or clean its objects and restore into it.
    type: str
    choices: [recreate, clean]
    default: recreate
  jobs:
    description: Parallel restore jobs (C(pg_restore --jobs)).
    type: int
    default: 1
  no_owner:
    description: Skip ownership (C(--no-owner --no-privileges)), for restores under another role.
    type: bool
    default: false
  terminate_sessions:
    description: End other sessions on the database (only in O(terminate_environments)).
    type: bool
    default: false
  environment:
    description: The environment of the database (C(stagegate_environment)).
    type: str
    default: staging
  terminate_environments:
    description: Environments where O(terminate_sessions) may end sessions.
    type: list
    elements: str
    default: [staging]
  production_environments:
    description:
      - Environments that need O(confirm_production), compared with O(environment) without
        regard to case (C(stagegate_production_environments)).
    type: list
    elements: str
    default: [production, prod, live]
  confirm_production:
    description: Explicit confirmation to restore over a production database.
    type: bool
    default: false
  verify:
    description: Compare tables and row counts with the manifest after restoring.
    type: bool
    default: true
  force:
    description:
      - Restore even when the database already holds exactly this backup.
      - Without it, a database is taken to hold the backup still when its comment names this
        archive (written after a whole, verified restore, with a hash of the schema it made), its
        schema is unchanged since (tables, columns, indexes, views and constraints; a migration
        applied since restores again) and its tables' row counts are the backup's.
    type: bool
    default: false
  progress_file:
    description: File to append progress lines to while the restore runs.
    type: path
  without_manifest:
    description:
      - Accept an archive with no pg_backup manifest beside it (one stagegate did not make).
        It is read with C(pg_restore --list) first (a readable archive, the tables it holds
        data for); after the restore every one of those tables must exist, and their row
        counts are returned in RV(verification). There is no checksum to compare with.
      - An archive that has a manifest is verified against it as usual.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Checks the archive, manifest, guards and sessions; restores nothing.
  diff_mode:
    support: none
    description: Returns no diff.
  idempotent:
    support: full
    description:
      - The restored database is marked (C(COMMENT ON DATABASE) with the archive's sha256); a
        database carrying the mark whose tables and row counts still match is left alone.
seealso:
  - name: pg_restore
    description: The tool this module wraps.
    link: https://www.postgresql.org/docs/15/app-pgrestore.html
  - module: stagegate.release.pg_backup
"""

EXAMPLES = r"""
- name: Roll the database back to the backup taken before the bad release
  stagegate.release.pg_restore:
    db: "{{ stagegate_db }}"
    backup: "{{ release_manifest.backup.path }}"
    jobs: 2
    terminate_sessions: true
    environment: "{{ stagegate_environment }}"
"""

RETURN = r"""
database:
  description: The database restored into.
  returned: always
  type: str
verification:
  description: Tables checked, mismatches (expected/actual rows), whether counts were exact.
  returned: when verified
  type: dict
archive:
  description:
    - What the archive's C(pg_restore --list) header says (C(database) it was dumped from,
      C(created), C(format), C(pg_dump_version), C(server_version), C(toc_entries)) and its
      C(tables); for an archive without a manifest.
  returned: when the archive has no manifest
  type: dict
progress:
  description: Progress events C({table, seconds}) from pg_restore --verbose.
  returned: when a restore ran
  type: list
  elements: dict
skipped_extensions:
  description:
    - Extensions left out of the restore because the connecting role is not a superuser and
      cannot create them (untrusted) or drop them (installed, owned by another role). Those
      missing afterwards are also reported as a warning.
  returned: when a restore ran
  type: list
  elements: str
terminated:
  description: Sessions ended before restoring.
  returned: always
  type: int
seconds:
  description: Restore time (pg_restore only).
  returned: when a restore ran
  type: float
dsn:
  description: The connection, without its password.
  returned: always
  type: str
"""

import hashlib
import json
from pathlib import Path
from typing import Any

from ansible_collections.stagegate.release.plugins.module_utils._environments import (
    DEFAULT_PRODUCTION_ENVIRONMENTS,
    environment_in,
    is_production,
)
from ansible_collections.stagegate.release.plugins.module_utils._pg import (
    PgError,
    PgTarget,
    ProgressLog,
    cleanup_on_signals,
    count_rows,
    create_database,
    database_exists,
    drop_database,
    fail_json_from,
    list_tables,
    other_sessions,
    pg_module,
    run_manager,
    sql,
    terminate_sessions,
)
from ansible_collections.stagegate.release.plugins.module_utils._pg_archive import (
    StagedArchive,
    archive_extensions,
    archive_format,
    archive_tables,
    compare_rows,
    expected_rows,
    extensions_to_skip,
    listing_header,
    read_manifest,
    restore_into,
    sha256_of,
    staged_archive,
)
from ansible_collections.stagegate.release.plugins.module_utils._pg_schema import (
    snapshot as schema_snapshot,
)

ARGUMENT_SPEC: dict[str, Any] = {
    "backup": {"type": "path", "required": True},
    "name": {"type": "str"},
    "mode": {"type": "str", "choices": ["recreate", "clean"], "default": "recreate"},
    "jobs": {"type": "int", "default": 1},
    "no_owner": {"type": "bool", "default": False},
    "terminate_sessions": {"type": "bool", "default": False},
    "environment": {"type": "str", "default": "staging"},
    "terminate_environments": {"type": "list", "elements": "str", "default": ["staging"]},
    "production_environments": {
        "type": "list",
        "elements": "str",
        "default": list(DEFAULT_PRODUCTION_ENVIRONMENTS),
    },
    "confirm_production": {"type": "bool", "default": False},
    "verify": {"type": "bool", "default": True},
    "force": {"type": "bool", "default": False},
    "progress_file": {"type": "path"},
    "without_manifest": {"type": "bool", "default": False},
}
MARK = "stagegate-restore sha256="


class RestoreManager:
    def __init__(self, module: Any) -> None:
        self.module = module
        self.params = module.params
        self.backup = self.params["backup"]
        self.manifest = read_manifest(self.backup) or {}
        base = PgTarget.from_module_params(module.params)
        self.target = base.for_database(
            self.params["name"] or self.manifest.get("database") or base.dbname
        )
        self.result: dict[str, Any] = {
            "changed": False,
            "database": self.target.dbname,
            "dsn": self.target.redacted_dsn,
            "terminated": 0,
        }
        self._own_pids: set[int] = set()
        self._listing: str | None = None  # the archive's table of contents, read once

    def run(self) -> dict[str, Any]:
        self._guards()
        sha256 = sha256_of(self.backup)
        if self.manifest and sha256 != self.manifest.get("sha256"):
            raise PgError(f"backup {self.backup} does not match its manifest's sha256 (corrupted?)")
        with self.target.for_database("postgres").connect() as admin:
            if not self.params["force"] and self._already_restored(admin, sha256):
                return self.result
            self.result["changed"] = True
            sessions = other_sessions(admin, self.target.dbname, self._own_pids)
            self.result["sessions"] = sessions
            if sessions and not self._may_terminate():
                raise PgError(
                    f"database {self.target.dbname!r} has {sessions} other session(s); set "
                    f"terminate_sessions (allowed in {self.params['terminate_environments']})"
                )
            if self.module.check_mode:
                if not self.manifest:
                    self._expected()  # a readable archive, and what it holds
                return self.result
            with cleanup_on_signals():
                self._restore(admin, sessions)
            self._verify()
            admin.execute(
                sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                    sql.Identifier(self.target.dbname), sql.Literal(self._mark(sha256))
                )
            )
        return self.result

    def _guards(self) -> None:
        if not Path(self.backup).exists():
            raise PgError(f"backup {self.backup!r} does not exist")
        self.result["format"] = archive_format(self.backup)
        if self.params["verify"] and not self.manifest and not self.params["without_manifest"]:
            raise PgError(
                f"backup {self.backup!r} has no manifest beside it; set without_manifest=true "
                "to verify it by its own table of contents, or verify=false to restore anyway"
            )
        if self.manifest and not self.manifest.get("verified"):
            raise PgError(f"backup {self.backup!r}: its manifest does not say verified")
        env = self.params["environment"]
        production = self.params["production_environments"]
        if is_production(env, production) and not self.params["confirm_production"]:
            raise PgError(
                f"refusing to restore into {self.target.dbname!r}: environment {env!r} counts "
                f"as production (production_environments: {', '.join(production)}); set "
                "confirm_production=true to proceed"
            )

    def _may_terminate(self) -> bool:
        return self.params["terminate_sessions"] and (
            environment_in(self.params["environment"], self.params["terminate_environments"])
        )

    def _schema_sha256(self) -> str:
        """The database's schema (tables, columns, indexes, views, constraints) as a hash."""
        with self.target.connect() as conn:
            self._own_pids.add(conn.info.backend_pid)
            schema = schema_snapshot(conn)
        return hashlib.sha256(json.dumps(schema, sort_keys=True).encode()).hexdigest()[:16]

    def _mark(self, sha256: str) -> str:
        """The database comment a whole restore leaves: the dump and the schema it made."""
        return f"{MARK}{sha256} schema={self._schema_sha256()}"

    def _already_restored(self, admin: Any, sha256: str) -> bool:
        """The database holds this very dump still: its mark names the dump and the schema
        is the one the restore made (a migration since, say a column added, restores again),
        and its tables' rows are as the dump's."""
        row = admin.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            (self.target.dbname,),
        ).fetchone()
        if not row or not str(row[0] or "").startswith(f"{MARK}{sha256} schema="):
            return False
        return row[0] == self._mark(sha256) and not self._mismatches()[0]

    def _restore(self, admin: Any, sessions: int) -> None:
        if sessions:
            self.result["terminated"] = len(terminate_sessions(admin, self.target.dbname))
        with staged_archive(self.target, self.backup, for_restore=True) as staged:
            self._read_listing(staged)
            skipped = self._extensions_to_skip(admin, staged)
            extra = ["--no-owner", "--no-privileges"] if self.params["no_owner"] else []
            locale = self.manifest.get("locale")  # the backed-up database's encoding/locale
            if self.params["mode"] == "recreate":
                drop_database(admin, self.target.dbname, force=bool(sessions))
                create_database(admin, self.target.dbname, locale=locale)
            else:
                if not database_exists(admin, self.target.dbname):
                    create_database(admin, self.target.dbname, locale=locale)
                extra += ["--clean", "--if-exists"]
            progress = ProgressLog(self.params["progress_file"])
            run = restore_into(
                self.target,
                staged=staged,
                dbname=self.target.dbname,
                jobs=self.params["jobs"],
                progress=progress,
                extra=extra,
                skip_extensions=skipped,
            )
        self.result.update(progress=run.progress, seconds=round(run.seconds, 3))

    def _extensions_to_skip(self, admin: Any, staged: StagedArchive) -> set[str]:
        """Extensions this role cannot create or drop; missing ones afterwards are warned about."""
        wanted = archive_extensions(staged.listing())
        installed: set[str] = set()
        if database_exists(admin, self.target.dbname):
            with self.target.connect() as conn:
                installed = {row[0] for row in conn.execute("SELECT extname FROM pg_extension")}
        skipped = extensions_to_skip(admin, wanted, installed)
        self.result["skipped_extensions"] = sorted(skipped)
        missing = sorted(skipped - installed)
        if missing:
            self.module.warn(
                f"extensions {', '.join(missing)} not restored: creating them needs a superuser"
            )
        return skipped

    def _read_listing(self, staged: StagedArchive) -> str:
        if self._listing is None:
            self._listing = staged.listing()
            if not self.manifest:
                tables = archive_tables(self._listing)
                self.result["archive"] = {**listing_header(self._listing), "tables": tables}
        return self._listing

    def _expected(self) -> tuple[dict[str, int], bool]:
        """The manifest's row counts; without one, the tables the archive holds data for, each
        only required to exist (0 rows expected, not exact: compare_rows then checks presence)."""
        if self.manifest:
            return expected_rows(self.manifest)
        if self._listing is None:
            with staged_archive(self.target, self.backup) as staged:
                self._read_listing(staged)
        return dict.fromkeys(self.result["archive"]["tables"], 0), False

    def _mismatches(self) -> tuple[dict[str, Any], dict[str, int], bool]:
        expected, exact = self._expected()
        with self.target.connect() as conn:
            self._own_pids.add(conn.info.backend_pid)
            present = set(list_tables(conn))
            actual = count_rows(conn, sorted(set(expected) & present))
        return compare_rows(expected, actual, exact), actual, exact

    def _verify(self) -> None:
        if not self.params["verify"]:
            return
        mismatched, actual, exact = self._mismatches()
        self.result["verification"] = {
            "against": "manifest" if self.manifest else "listing",
            "tables": len(actual),
            "exact": exact,
            "rows": actual,
            "mismatched": mismatched,
        }
        if mismatched:
            raise PgError(
                f"restored {self.target.dbname!r} differs from the backup manifest in "
                f"{len(mismatched)} table(s): {', '.join(sorted(mismatched)[:10])}"
            )


def main() -> None:
    module = pg_module(ARGUMENT_SPEC, supports_check_mode=True)
    try:
        manager = RestoreManager(module)  # reads the manifest: a damaged one fails here
    except PgError as exc:
        fail_json_from(module, exc, changed=False)
    run_manager(module, manager)


if __name__ == "__main__":
    main()
