#!/usr/bin/python
# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_migrate
short_description: Apply pending SQL-file and Alembic migrations, with verification queries
description:
  - Applies the SQL files of O(migrations_dir) that match O(pattern), in name order
    (C(006_composite_indexes.sql) before C(007_metrics_views.sql)), that the tracking table
    does not list yet; then C(alembic upgrade head) when O(alembic_config) is set.
  - >-
    Each file is split into statements with psql's lexical rules (quotes, C(E'') strings,
    dollar quotes with any tag, nested comments, C(BEGIN ATOMIC) bodies, C(COPY .. FROM stdin)
    data up to a line C(\.)) and runs statement by statement in B(its own transaction)
    together with its row in the tracking table, so a failed file leaves nothing behind.
  - >-
    Refused before anything runs, naming file and line: psql meta-commands, C(COPY .. TO
    STDOUT), unterminated quotes or comments, statements that cannot run in a transaction
    (C(CREATE INDEX CONCURRENTLY), C(VACUUM), ...) and the file's own transaction control
    (C(BEGIN), C(COMMIT), C(ROLLBACK)) in an unmarked file. A file wrapped whole in one plain
    C(BEGIN; .. COMMIT;) is accepted and runs as that transaction.
  - >-
    A file whose leading comments hold C(-- stagegate: no-transaction) runs in autocommit
    instead, its own C(BEGIN .. COMMIT) blocks included. What it committed is recorded in
    C(<tracking_table>_progress), so after a failure the re-run resumes after the committed
    statements (RV(partial)); it is refused when those statements changed since.
  - Stops at the first failure and reports the file, statement, line, SQLSTATE and whether a
    O(lock_timeout) or O(statement_timeout) fired. Per migration it returns time and statement
    counts.
  - After applying, runs O(verify) queries (for example "indexes C(idx_%) exist", "views
    C(v_%) exist", "a view answers") and fails when one returns too few rows.
version_added: 0.1.0
author: stagegate developers (@stagegate)
extends_documentation_fragment:
  - stagegate.release.pg
options:
  migrations_dir:
    description: Directory of SQL migration files. One of O(migrations_dir), O(alembic_config).
    type: path
  pattern:
    description: Glob of migration files inside O(migrations_dir).
    type: str
    default: "*.sql"
  tracking_table:
    description:
      - Table recording applied migrations (C(schema.name)); created when missing with
        C(version), C(filename), C(checksum), C(duration_ms), C(statements), C(applied_at).
      - An existing table (for example C(schema_migrations)) is used as it is when it has a
        C(version) column; a file counts as applied when its stem (C(006_composite_indexes))
        or its numeric prefix (C(006)) is listed.
    type: str
    default: public.stagegate_schema_migrations
  alembic_config:
    description:
      - Path of an C(alembic.ini). C(alembic upgrade head) runs on the host with the database
        URL (C(postgresql+psycopg://...)) in the environment variable O(alembic_url_env),
        which the project's C(env.py) must read. Check mode runs C(alembic upgrade --sql).
    type: path
  alembic_url_env:
    description: Environment variable that carries the SQLAlchemy URL to Alembic.
    type: str
    default: DATABASE_URL
  alembic_executable:
    description:
      - The C(alembic) program; default the one beside the Python that runs the module (the
        deploy host's C(ansible_python_interpreter)), else C(alembic) on PATH. It needs the
        project's C(env.py) imports (SQLAlchemy and a PostgreSQL driver) beside it.
    type: path
  alembic_downgrade:
    description:
      - >-
        Run C(alembic downgrade <revision>) instead of applying anything (before the down
        scripts of O(revert), when both are set): the revision the database was at before the
        bad release, as its manifest records it, or C(base) for none. Needs O(alembic_config)
        of the release that applied the revisions (its scripts hold the C(downgrade()) code).
      - The revisions it reverts are read from C(alembic history) between it and the
        database's current revision (C(alembic_version)); none when the database is already
        there, so a second run changes nothing. Check mode returns them and the offline SQL
        (C(alembic downgrade <current>:<revision> --sql)), which also fails when a
        revision's C(downgrade()) cannot run.
    type: str
  lock_timeout:
    description: C(lock_timeout) for the migration session (for example C(5s)); a migration
      that waits longer for a lock fails with SQLSTATE 55P03 instead of blocking traffic.
    type: str
  statement_timeout:
    description: C(statement_timeout) for the migration session (for example C(5min)).
    type: str
  revert:
    description:
      - >-
        Revert these migrations instead of applying anything (file names or stems, for example
        the C(migrations_applied) of a bad release's manifest). The applied ones among them are
        reverted newest first, each by the file of the same name in O(down_dir), in one
        transaction with the removal of its tracking-table row (in autocommit when the down
        script is marked C(-- stagegate: no-transaction)). Ones not applied are skipped, so a
        second run changes nothing.
      - Every down script must exist before any runs; a missing one fails naming it.
      - Check mode returns RV(reverting) and changes nothing. Alembic revisions are reverted
        by O(alembic_downgrade).
    type: list
    elements: str
  down_dir:
    description: Directory of the down scripts for O(revert); default C(<migrations_dir>/down).
    type: path
  verify:
    description: Verification queries run after applying (also when nothing was pending).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name shown in the result.
        type: str
        required: true
      query:
        description: SQL returning rows.
        type: str
        required: true
      min_rows:
        description: Fewest rows that count as success.
        type: int
        default: 1
attributes:
  check_mode:
    support: full
    description: Lists the pending migrations (and Alembic's offline SQL), or with O(revert)
      the down scripts that would run; changes nothing.
  diff_mode:
    support: none
    description: Returns no diff.
  idempotent:
    support: full
    description: Applied migrations are recorded; a second run finds nothing pending (or,
      with O(revert), nothing left to revert).
seealso:
  - name: lock_timeout
    description: PostgreSQL client connection defaults.
    link: https://www.postgresql.org/docs/15/runtime-config-client.html
  - module: stagegate.release.pg_migrate_dryrun
"""

EXAMPLES = r"""
- name: Apply the release's migrations (deploy phase)
  stagegate.release.pg_migrate:
    db: "{{ stagegate_db }}"
    migrations_dir: "{{ stagegate_migrations_dir }}"
    lock_timeout: 5s
    verify:
      - name: composite indexes exist
        query: "SELECT indexname FROM pg_indexes WHERE indexname LIKE 'idx_%'"
      - name: metrics view answers
        query: SELECT * FROM v_run_metrics_summary LIMIT 5
        min_rows: 0

- name: Revert what a bad release applied, with its down scripts (rollback without a restore)
  stagegate.release.pg_migrate:
    db: "{{ stagegate_db }}"
    migrations_dir: "{{ stagegate_project_dir }}/migrations"
    revert: [006_composite_indexes.sql, 007_reporting_views.sql]

- name: Revert what a bad release applied with Alembic, back to the revision before it
  stagegate.release.pg_migrate:
    db: "{{ stagegate_db }}"
    alembic_config: "{{ stagegate_project_dir }}/alembic.ini"
    alembic_downgrade: 1f2e3d4c5b6a

- name: What would be applied
  stagegate.release.pg_migrate:
    db: "{{ stagegate_db }}"
    migrations_dir: "{{ stagegate_migrations_dir }}"
  check_mode: true
  register: plan
"""

RETURN = r"""
pending:
  description: Migration files pending before the run, in the order they apply.
  returned: always
  type: list
  elements: str
alembic_pending:
  description: Alembic revisions pending before the run.
  returned: when alembic_config is set
  type: list
  elements: str
alembic_current:
  description: The database's Alembic revision after the run (read from C(alembic_version);
    null when it has none), before it in check mode.
  returned: when alembic_config is set
  type: str
alembic:
  description:
    - What Alembic did; C(from) (the revision before, null for none), C(to), C(seconds), and
      C(pending) for an upgrade or C(reverting) (newest first) for O(alembic_downgrade).
  returned: when alembic_config is set and something was pending (or reverted)
  type: dict
alembic_reverting:
  description: With O(alembic_downgrade), the revisions it reverts (or would), newest first.
  returned: when alembic_downgrade is set
  type: list
  elements: str
alembic_sql:
  description: Check mode, the offline SQL of the pending upgrade or of the downgrade.
  returned: check mode, when Alembic has something to do
  type: str
reverting:
  description: With O(revert), the down scripts that run (or would, in check mode), in order.
  returned: when revert is set
  type: list
  elements: str
seconds:
  description:
    - With O(revert) or O(alembic_downgrade), how long the down scripts and Alembic's downgrade
      took together (the rollback records it as its database step).
  returned: when something was reverted
  type: float
partial:
  description:
    - Pending no-transaction files that an earlier run left half-done, each with
      C(statements_done), C(statements), C(committed_line), C(failed_line), C(sqlstate),
      C(message), C(resume_at) (the statement the run resumes at), C(resume_line) and C(table).
  returned: always
  type: list
  elements: dict
drifted:
  description: Applied files whose content changed since they were applied.
  returned: always
  type: list
  elements: str
applied:
  description: The files this run applied, in order (also when a later one failed, in the
    failure's result); what the release manifest records as C(migrations_applied).
  returned: always
  type: list
  elements: str
migrations:
  description: Per applied (or reverted) migration C(version, filename, transactional, status,
    seconds, statements, statements_run, error); for no-transaction files also
    C(statements_committed) and C(resumed_at) (the statement a resumed run started at).
  returned: always
  type: list
  elements: dict
error:
  description:
    - The failure (file, statement, statement_index, line, sqlstate, message, lock_timeout,
      statement_timeout). For a no-transaction file C(committed) says what stays committed
      (C(statements), C(of), C(resume_line), C(table)), or is null.
  returned: failure
  type: dict
verify:
  description: Verification query results (name, rows, ok).
  returned: always
  type: list
  elements: dict
dsn:
  description: The connection, without its password.
  returned: always
  type: str
"""

import time
from typing import Any

from ansible_collections.stagegate.release.plugins.module_utils._pg import (
    PgError,
    PgTarget,
    cleanup_on_signals,
    pg_module,
    run_manager,
)
from ansible_collections.stagegate.release.plugins.module_utils._pg_migrations import (
    MIGRATION_ARGUMENT_SPEC,
    MigrationRun,
    run_verifications,
)

ARGUMENT_SPEC: dict[str, Any] = {
    **MIGRATION_ARGUMENT_SPEC,
    "revert": {"type": "list", "elements": "str"},
    "alembic_downgrade": {"type": "str"},
    "down_dir": {"type": "path"},
    "verify": {
        "type": "list",
        "elements": "dict",
        "default": [],
        "options": {
            "name": {"type": "str", "required": True},
            "query": {"type": "str", "required": True},
            "min_rows": {"type": "int", "default": 1},
        },
    },
}


def applied_files(migrations: list[dict[str, Any]]) -> list[str]:
    """The files this run applied (status `applied`), in order: what a release manifest records,
    also when a later file failed."""
    return [m["filename"] for m in migrations if m.get("status") == "applied" and m.get("filename")]


class MigrateManager:
    def __init__(self, module: Any) -> None:
        self.module = module
        self.target = PgTarget.from_module_params(module.params)
        self.result: dict[str, Any] = {
            "changed": False,
            "dsn": self.target.redacted_dsn,
            "pending": [],
            "drifted": [],
            "partial": [],
            "migrations": [],
            "applied": [],
            "verify": [],
        }

    def run(self) -> dict[str, Any]:
        migration_run = MigrationRun(self.target, self.module.params)
        if self.module.params["alembic_downgrade"] and not migration_run.alembic:
            raise PgError("alembic_downgrade: needs alembic_config (the release's alembic.ini)")
        if self.module.params["revert"] is not None or self.module.params["alembic_downgrade"]:
            return self._revert(migration_run)
        with self.target.connect() as conn:
            pending, drifted, alembic_pending = migration_run.pending(conn)
            self.result.update(
                pending=[m.filename for m in pending],
                drifted=drifted,
                partial=migration_run.partial(conn, pending),
            )
            if migration_run.alembic:
                self.result["alembic_pending"] = alembic_pending
            self.result["changed"] = bool(pending or alembic_pending)
            if self.module.check_mode:
                if alembic_pending and migration_run.alembic:
                    self.result["alembic_sql"] = migration_run.alembic.upgrade(True, conn)["sql"]
                self._alembic_current(migration_run, conn)
                return self.result
            if self.result["changed"]:
                with cleanup_on_signals():
                    outcome = migration_run.apply(conn)
                self.result["migrations"] = outcome["migrations"]
                self.result["applied"] = applied_files(outcome["migrations"])
                if "alembic" in outcome:
                    self.result["alembic"] = outcome["alembic"]
                if outcome["error"]:
                    self._raise(outcome["error"])
            self._alembic_current(migration_run, conn)
            self._verify(conn)
        return self.result

    def _alembic_current(self, migration_run: MigrationRun, conn: Any) -> None:
        if migration_run.alembic:
            self.result["alembic_current"] = migration_run.alembic.current(conn)

    def _revert(self, migration_run: MigrationRun) -> dict[str, Any]:
        if self.module.params["revert"] and not self.module.params["migrations_dir"]:
            raise PgError("revert: needs migrations_dir (down scripts live in its down/)")
        alembic, to = migration_run.alembic, self.module.params["alembic_downgrade"]
        with self.target.connect() as conn:
            reverting = [d.filename for d in migration_run.to_revert(conn)]
            self.result.update(reverting=reverting, changed=bool(reverting))
            if alembic and to:
                # check mode: the offline SQL too, which fails when a downgrade() cannot run
                planned = (
                    alembic.downgrade(True, conn, to)
                    if self.module.check_mode
                    else {"reverting": alembic.reverting(conn, to)}
                )
                self.result["alembic_reverting"] = planned["reverting"]
                self.result["changed"] |= bool(planned["reverting"])
                if "sql" in planned:
                    self.result["alembic_sql"] = planned["sql"]
            if self.result["changed"] and not self.module.check_mode:
                started = time.monotonic()
                with cleanup_on_signals():
                    outcome = migration_run.revert(conn)
                self.result["seconds"] = round(time.monotonic() - started, 3)
                self.result["migrations"] = outcome["migrations"]
                if "alembic" in outcome:
                    self.result["alembic"] = outcome["alembic"]
                if outcome["error"]:
                    self._raise(outcome["error"], "down script")
            self._alembic_current(migration_run, conn)
            self._verify(conn)
        return self.result

    @staticmethod
    def _raise(error: dict[str, Any], what: str = "migration") -> None:
        committed = error.get("committed")
        raise PgError(
            f"{what} {error['file']} failed"
            + (f" at line {error['line']}" if error.get("line") else "")
            + f" (SQLSTATE {error.get('sqlstate')}): {error['message']}"
            + (
                f"; statements 1-{committed['statements']} of {committed['of']} stay committed "
                f"(no-transaction file, recorded in {committed['table']}): a re-run resumes at "
                f"statement {committed['statements'] + 1}"
                + (f", line {committed['resume_line']}" if committed["resume_line"] else "")
                if committed
                else ""
            ),
            error=error,
        )

    def _verify(self, conn: Any) -> None:
        self.result["verify"] = run_verifications(conn, self.module.params["verify"])
        failed = [v["name"] for v in self.result["verify"] if not v["ok"]]
        if failed:
            raise PgError(f"verification failed after migrating: {', '.join(failed)}")


def main() -> None:
    module = pg_module(ARGUMENT_SPEC, supports_check_mode=True)
    run_manager(module, MigrateManager(module))


if __name__ == "__main__":
    main()
