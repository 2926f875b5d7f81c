#!/usr/bin/python
# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_migrate_dryrun
short_description: Migration dry-run on a TEMPLATE copy, with schema diff and a graded result
description:
  - Copies the O(db) database to a scratch database (C(CREATE DATABASE .. TEMPLATE), see
    M(stagegate.release.pg_clone) for O(when_busy)), applies the pending migrations to the
    copy exactly as M(stagegate.release.pg_migrate) would, and compares schema snapshots
    (tables, columns, indexes, views, constraints) taken on the copy before and after.
  - Records per-migration time and statements, errors with file, statement, line and
    SQLSTATE, lock timeouts, and the blocking locks each migration takes on tables that
    existed before (ACCESS EXCLUSIVE and friends, what would stall traffic on the real run).
  - Files are read, split and refused exactly as M(stagegate.release.pg_migrate) does (see
    its description and docs/database.md, "How a migration file is run").
  - The real database is only ever read (as the template). The scratch database is always
    dropped, on success, on failure and on SIGTERM/SIGHUP; leftovers of earlier interrupted runs
    (names starting with O(scratch_prefix)) are dropped first.
  - Grades the outcome for the gate as RV(check) V(PASS), V(WARN) (slow, blocking
    locks held longer than O(warn_lock_seconds), or a destructive diff) or V(FAIL) (an error).
    A FAIL does not fail the task unless O(fail_on_error); the gate decides.
version_added: 0.1.0
author: stagegate developers (@stagegate)
extends_documentation_fragment:
  - stagegate.release.pg
options:
  migrations_dir:
    description: Directory of SQL migration files (see M(stagegate.release.pg_migrate)).
    type: path
  pattern:
    description: Glob of migration files.
    type: str
    default: "*.sql"
  tracking_table:
    description: Tracking table (see M(stagegate.release.pg_migrate)).
    type: str
    default: public.stagegate_schema_migrations
  alembic_config:
    description: Path of an C(alembic.ini); C(alembic upgrade head) runs against the copy.
    type: path
  alembic_url_env:
    description: Environment variable that carries the SQLAlchemy URL to Alembic.
    type: str
    default: DATABASE_URL
  alembic_executable:
    description: The C(alembic) program.
    type: path
  lock_timeout:
    description: C(lock_timeout) for the migration session.
    type: str
  statement_timeout:
    description: C(statement_timeout) for the migration session.
    type: str
  scratch_prefix:
    description: Name prefix of scratch databases (a random suffix is added).
    type: str
    default: stagegate_dryrun_
  strategy:
    description: C(CREATE DATABASE .. STRATEGY) for the copy.
    type: str
    choices: [wal_log, file_copy]
  when_busy:
    description: What to do when other sessions use the source (see M(stagegate.release.pg_clone)).
    type: str
    choices: [wait, terminate, dump_restore]
    default: wait
  busy_timeout:
    description: Seconds to keep retrying while the source is busy.
    type: float
    default: 30
  environment:
    description: The environment of the source (C(stagegate_environment)).
    type: str
    default: staging
  terminate_environments:
    description: Environments where O(when_busy=terminate) may end other sessions (any case).
    type: list
    elements: str
    default: [staging]
  warn_seconds:
    description: Total migration time above which the result is WARN.
    type: float
    default: 60
  warn_lock_seconds:
    description:
      - A statement holding a blocking lock on an existing table longer than this makes the
        result WARN.
    type: float
    default: 1
  warn_on_destructive:
    description: WARN when the diff removes tables or columns.
    type: bool
    default: true
  fail_on_error:
    description: Fail the task when the dry-run grades FAIL (default leaves it to the gate).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Lists the pending migrations without copying the database.
  diff_mode:
    support: none
    description: Returns no diff.
  idempotent:
    support: full
    description: Leaves nothing behind, so it never reports changed.
seealso:
  - module: stagegate.release.pg_migrate
  - module: stagegate.release.pg_clone
"""

EXAMPLES = r"""
- name: Dry-run the release's migrations on a copy of staging
  stagegate.release.pg_migrate_dryrun:
    db: "{{ stagegate_db }}"
    migrations_dir: "{{ stagegate_migrations_dir }}"
    lock_timeout: 5s
    environment: "{{ stagegate_environment }}"
  register: dryrun
"""

RETURN = r"""
check:
  description:
    - The graded result in the shape of report.json C(checks[]) (name, group, type, status,
      severity, message, value, threshold, duration_ms, metrics, details).
  returned: always
  type: dict
pending:
  description: Migration files pending on the source.
  returned: always
  type: list
  elements: str
migrations:
  description: Per migration C(version, filename, status, seconds, statements, locks, error).
  returned: unless check mode
  type: list
  elements: dict
error:
  description: The first failure (file, statement, line, sqlstate, message, lock_timeout).
  returned: when a migration failed
  type: dict
schema_diff:
  description:
    - Per kind (tables, columns, indexes, views, constraints) added/removed/changed, and a
      summary.
  returned: unless check mode
  type: dict
timings:
  description: Seconds for clone, snapshots, migrations, drop and total.
  returned: always
  type: dict
scratch:
  description: Name of the scratch database (dropped) and the leftovers removed first.
  returned: always
  type: dict
dsn:
  description: The source connection, without its password.
  returned: always
  type: str
"""

import time
from typing import Any

from ansible_collections.stagegate.release.plugins.module_utils._pg import (
    PgError,
    PgTarget,
    cleanup_on_signals,
    drop_database,
    drop_leftovers,
    pg_module,
    run_manager,
    scratch_name,
)
from ansible_collections.stagegate.release.plugins.module_utils._pg_clone import (
    clone_argument_spec,
    clone_with_params,
)
from ansible_collections.stagegate.release.plugins.module_utils._pg_migrations import (
    MIGRATION_ARGUMENT_SPEC,
    MigrationRun,
    Progress,
)
from ansible_collections.stagegate.release.plugins.module_utils._pg_schema import diff, snapshot

ARGUMENT_SPEC: dict[str, Any] = {
    **MIGRATION_ARGUMENT_SPEC,
    "scratch_prefix": {"type": "str", "default": "stagegate_dryrun_"},
    **clone_argument_spec(),
    "warn_seconds": {"type": "float", "default": 60.0},
    "warn_lock_seconds": {"type": "float", "default": 1.0},
    "warn_on_destructive": {"type": "bool", "default": True},
    "fail_on_error": {"type": "bool", "default": False},
}


class DryRunManager:
    def __init__(self, module: Any) -> None:
        self.module = module
        self.params = module.params
        self.target = self.source = PgTarget.from_module_params(module.params)
        self.timings: dict[str, float] = {}
        self.result: dict[str, Any] = {
            "changed": False,
            "dsn": self.source.redacted_dsn,
            "pending": [],
            "timings": self.timings,
            "scratch": {},
        }

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        migration_run = MigrationRun(self.source, self.params)
        with self.source.connect() as conn:
            pending, _, alembic_pending = migration_run.pending(conn)
        self.result["pending"] = [m.filename for m in pending] + alembic_pending
        if self.module.check_mode:
            self.result["check"] = self._grade(None, None, 0.0, pending_only=True)
            return self.result
        with cleanup_on_signals():
            outcome, schema_diff = self._on_scratch_copy(migration_run)
        self.timings["total"] = round(time.monotonic() - started, 3)
        self.result.update(migrations=outcome["migrations"], schema_diff=schema_diff)
        if outcome["error"]:
            self.result["error"] = outcome["error"]
        self.result["check"] = self._grade(outcome, schema_diff, self.timings["total"])
        if self.params["fail_on_error"] and self.result["check"]["status"] == "FAIL":
            raise PgError(f"migration dry-run failed: {self.result['check']['message']}")
        return self.result

    def _on_scratch_copy(
        self, migration_run: MigrationRun
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        scratch = scratch_name(self.params["scratch_prefix"])
        with self.source.for_database("postgres").connect() as admin:
            self.result["scratch"] = {
                "name": scratch,
                "leftovers_dropped": drop_leftovers(admin, self.params["scratch_prefix"]),
            }
            try:
                with self._timed("clone"):
                    self.result["clone"] = clone_with_params(
                        admin, self.source, scratch, self.params
                    )
                return self._migrate_copy(migration_run, scratch)
            finally:
                with self._timed("drop"):
                    drop_database(admin, scratch)
                self.result["scratch"]["dropped"] = True

    def _migrate_copy(
        self, migration_run: MigrationRun, scratch: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        copy = self.source.for_database(scratch)
        migration_run.target = copy
        tracking = self.params["tracking_table"]
        tracking = tracking if "." in tracking else f"public.{tracking}"
        ignore = (tracking, Progress(tracking).table, "public.alembic_version")
        with copy.connect() as conn:
            with self._timed("snapshot_before"):
                before = snapshot(conn, ignore)
            with self._timed("migrations"):
                outcome = migration_run.apply(conn, record_locks=True)
            with self._timed("snapshot_after"):
                after = snapshot(conn, ignore)
        schema_diff = diff(before, after)
        existing = set(before["tables"])
        for migration in outcome["migrations"]:
            migration["locks"] = [
                lock
                for lock in migration["locks"]
                if lock["relation"] in existing or f"public.{lock['relation']}" in existing
            ]
        return outcome, schema_diff

    class _Timer:
        def __init__(self, timings: dict[str, float], name: str) -> None:
            self.timings, self.name = timings, name

        def __enter__(self) -> None:
            self.started = time.monotonic()

        def __exit__(self, *exc: object) -> None:
            self.timings[self.name] = round(time.monotonic() - self.started, 3)

    def _timed(self, name: str) -> DryRunManager._Timer:
        return self._Timer(self.timings, name)

    def _grade(
        self,
        outcome: dict[str, Any] | None,
        schema_diff: dict[str, Any] | None,
        seconds: float,
        pending_only: bool = False,
    ) -> dict[str, Any]:
        """A report.json checks[] record: FAIL on error, WARN on slow/locking/destructive."""
        reasons: list[str] = []
        status = "PASS"
        if pending_only:
            status, reasons = "SKIP", ["check mode: pending migrations listed, nothing applied"]
        elif outcome and outcome["error"]:
            error = outcome["error"]
            status = "FAIL"
            where = error["file"] + (f" line {error['line']}" if error.get("line") else "")
            state = f"SQLSTATE {error['sqlstate']} " if error.get("sqlstate") else ""
            reasons.append(f"{where}: {state}{error['message']}")
        else:
            reasons = self._warnings(outcome or {}, schema_diff or {}, seconds)
            status = "WARN" if reasons else "PASS"
        migrations = (outcome or {}).get("migrations", [])
        lock_waits = sum(1 for m in migrations if (m.get("error") or {}).get("lock_timeout"))
        applied = f"{len(migrations)} migration(s)"
        alembic = (outcome or {}).get("alembic") or {}
        if alembic.get("changed"):  # Alembic's revisions ran on the copy after the SQL files
            applied += (
                f" and Alembic {alembic.get('from') or 'base'} -> {alembic.get('to')}"
                f" ({len(alembic.get('pending', []))} revision(s))"
            )
        return {
            "name": "migration_dryrun",
            "group": "database",
            "type": "migration_dryrun",
            "status": status,
            "severity": "critical",
            "message": "; ".join(reasons) or f"{applied} applied to a copy",
            "value": (schema_diff or {}).get("summary"),
            "threshold": f"no error; WARN above {self.params['warn_seconds']}s or destructive",
            "duration_ms": round(seconds * 1000, 1),
            "metrics": {
                "migrations": float(len(migrations)),
                "seconds": seconds,
                "lock_waits": float(lock_waits),
                "clone_seconds": self.timings.get("clone", 0.0),
            },
            "details": {"pending": self.result["pending"]},
        }

    def _warnings(
        self, outcome: dict[str, Any], schema_diff: dict[str, Any], seconds: float
    ) -> list[str]:
        reasons = []
        if seconds > self.params["warn_seconds"]:
            reasons.append(f"took {seconds:.1f}s (> {self.params['warn_seconds']}s)")
        for migration in outcome.get("migrations", []):
            slow = [
                lock
                for lock in migration["locks"]
                if lock["statement_seconds"] > self.params["warn_lock_seconds"]
            ]
            if slow:
                reasons.append(
                    f"{migration['filename']} holds {slow[0]['mode']} on {slow[0]['relation']} "
                    f"for {slow[0]['statement_seconds']}s"
                )
        if self.params["warn_on_destructive"] and schema_diff.get("destructive"):
            reasons.append(f"destructive schema change: {schema_diff['summary']}")
        return reasons


def main() -> None:
    module = pg_module(ARGUMENT_SPEC, supports_check_mode=True)
    run_manager(module, DryRunManager(module))


if __name__ == "__main__":
    main()
