# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SQL-file and Alembic migrations: discovery, statements, apply, tracking table.

A file is split into statements by `_sql_split` (psql's lexical rules) and, by default, run
statement by statement in one transaction together with its row in the tracking table, so a
failure names the statement, its line and SQLSTATE and leaves nothing behind. Statements that
cannot run in a transaction, and transaction control of the file's own, are refused before
anything runs; a file wrapped whole in one plain `BEGIN; .. COMMIT;` runs as that transaction.

A file whose leading comments hold `-- stagegate: no-transaction` runs statement by statement
in autocommit (CREATE INDEX CONCURRENTLY, VACUUM, its own BEGIN .. COMMIT blocks). What such a
file has committed is recorded in `<tracking_table>_progress`, so a re-run resumes after the
last committed statement instead of failing on what the first run left behind.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ansible_collections.stagegate.release.plugins.module_utils._checks_redact import Redactor
from ansible_collections.stagegate.release.plugins.module_utils._pg import (
    PgError,
    PgTarget,
    psycopg,
    sql,
)
from ansible_collections.stagegate.release.plugins.module_utils._sql_split import (
    SqlSplitError,
    Statement,
    copy_direction,
    is_plain_begin,
    is_plain_commit,
    needs_autocommit,
    split_sql,
    transaction_control,
)

# Only a `--` comment before the first statement counts (never text inside a statement).
NO_TRANSACTION_MARK = re.compile(r"--\s*stagegate:\s*no-transaction\b", re.IGNORECASE)
TRACKING_COLUMNS = ("version", "filename", "checksum", "duration_ms", "statements")
# Locks that block readers (ACCESS EXCLUSIVE) or writers on a table while the migration runs.
BLOCKING_LOCKS = ("AccessExclusiveLock", "ExclusiveLock", "ShareRowExclusiveLock", "ShareLock")


@dataclass
class Migration:
    version: str
    path: Path
    statements: list[Statement]
    transactional: bool
    checksum: str
    # wrapped whole in a plain BEGIN; .. COMMIT; (not sent: the file runs in our transaction)
    own_transaction: bool = False

    @property
    def filename(self) -> str:
        return self.path.name


@dataclass
class MigrationResult:
    """What one migration did: report.json-friendly through `as_dict`."""

    version: str
    filename: str
    transactional: bool
    status: str = "pending"
    seconds: float = 0.0
    statements: int = 0
    statements_run: int = 0
    locks: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    # no-transaction files: the statement this run started at when an earlier run committed
    # the ones before it (1-based), else None
    resumed_at: int | None = None
    # no-transaction files: statements of the file committed so far (earlier runs included)
    statements_committed: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def discover(directory: str, pattern: str) -> list[Migration]:
    """SQL migration files matching `pattern` in `directory`, in name order."""
    root = Path(directory)
    if not root.is_dir():
        raise PgError(f"migrations_dir {directory!r} is not a directory")
    return [load_migration(p) for p in sorted(p for p in root.glob(pattern) if p.is_file())]


def load_migration(path: Path) -> Migration:
    """Read and split one file; refuse, naming file and line, what cannot run as it is."""
    text = path.read_text(encoding="utf-8")
    try:
        parsed = split_sql(text)
    except SqlSplitError as exc:
        raise PgError(
            f"{path.name} line {exc.line}: {exc.message}", file=path.name, line=exc.line
        ) from exc
    statements = parsed.statements
    for statement in statements:
        if copy_direction(statement) == "TO STDOUT":
            raise PgError(
                f"{path.name} line {statement.line}: COPY .. TO STDOUT sends rows to a client "
                "and a migration has none to read them (COPY .. TO a server file works)",
                file=path.name,
                line=statement.line,
            )
    transactional = not any(NO_TRANSACTION_MARK.match(c) for c in parsed.leading_comments)
    own_transaction = False
    if transactional:
        statements, own_transaction = _transactional_statements(path.name, statements)
    else:
        _check_blocks_closed(path.name, statements)
    return Migration(
        version=path.stem,
        path=path,
        statements=statements,
        transactional=transactional,
        checksum=hashlib.sha256(text.encode()).hexdigest(),
        own_transaction=own_transaction,
    )


def _transactional_statements(
    name: str, statements: list[Statement]
) -> tuple[list[Statement], bool]:
    """The statements to run in the file's transaction, and whether a BEGIN/COMMIT pair that
    wraps the whole file was left out. Refuses what a transaction cannot hold."""
    for statement in statements:
        reason = needs_autocommit(statement)
        if reason:
            raise PgError(
                f"{name} line {statement.line}: {reason} cannot run inside a transaction, and "
                "this file runs in one; add the header line `-- stagegate: no-transaction` to "
                "run the file statement by statement in autocommit",
                file=name,
                line=statement.line,
            )
    control = [s for s in statements if transaction_control(s)]
    if not control:
        return statements, False
    wrapped = is_plain_begin(statements[0]) and is_plain_commit(statements[-1])
    if wrapped and len(control) == 2 and len(statements) >= 2:
        return statements[1:-1], True
    # name the first one that is not an opening plain BEGIN (the COMMIT part-way, usually)
    opening = control[0] is statements[0] and is_plain_begin(statements[0])
    bad = control[1] if opening and len(control) > 1 else control[0]
    raise PgError(
        f"{name} line {bad.line}: `{bad.head(2)}` controls the transaction inside the file. "
        "stagegate runs each file in one transaction together with its row in the tracking "
        "table; a COMMIT part-way would keep the statements before it with no record, and "
        "the re-run would fail on them. Remove the transaction control (a file wrapped whole "
        "in one plain `BEGIN; .. COMMIT;` is accepted: it runs as that transaction), or mark "
        "the file `-- stagegate: no-transaction` to run it in autocommit with its committed "
        "statements recorded, so that a re-run resumes after them",
        file=name,
        line=bad.line,
    )


def _check_blocks_closed(name: str, statements: list[Statement]) -> None:
    """A no-transaction file must close every transaction block it opens."""
    opened: Statement | None = None
    for statement in statements:
        control = transaction_control(statement)
        if control == "begin" and opened is None:
            opened = statement
        elif control in ("commit", "rollback"):
            opened = None
    if opened is not None:
        raise PgError(
            f"{name} line {opened.line}: `{opened.head(2)}` opens a transaction block that "
            "the file never ends with COMMIT or ROLLBACK",
            file=name,
            line=opened.line,
        )


def discover_down(down_dir: str, filenames: list[str]) -> list[Migration]:
    """The down scripts of `filenames` (same names in `down_dir`), newest first.

    Every one must exist before any runs: a half-reverted schema is worse than none."""
    root = Path(down_dir)
    missing = [name for name in filenames if not (root / name).is_file()]
    if missing:
        raise PgError(
            f"down_dir {down_dir!r} has no down script for {', '.join(sorted(missing))} "
            "(a file of the same name reverts each migration)"
        )
    return [load_migration(root / name) for name in sorted(filenames, reverse=True)]


# -- tracking table -------------------------------------------------------------------


def _schema_and_name(tracking_table: str) -> tuple[str, str]:
    schema, _, name = tracking_table.rpartition(".")
    return schema or "public", name


def _table_ident(tracking_table: str) -> Any:
    return sql.Identifier(*_schema_and_name(tracking_table))


def _column_types(conn: Any, tracking_table: str) -> dict[str, str]:
    """column name -> data type of the tracking table (empty when it does not exist)."""
    rows = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = %s",
        _schema_and_name(tracking_table),
    ).fetchall()
    return {row[0]: row[1] for row in rows}


def tracking_columns(conn: Any, tracking_table: str) -> list[str]:
    return list(_column_types(conn, tracking_table))


def applied_versions(conn: Any, tracking_table: str) -> dict[str, str | None]:
    """version -> checksum (None when the table has no checksum column) of applied migrations."""
    columns = tracking_columns(conn, tracking_table)
    if not columns:
        return {}
    if "version" not in columns:
        raise PgError(f"tracking_table {tracking_table!r} exists but has no `version` column")
    fields = [
        sql.Identifier("version"),
        sql.Identifier("checksum") if "checksum" in columns else sql.NULL,
    ]
    query = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(fields), _table_ident(tracking_table)
    )
    return {str(v): c for v, c in conn.execute(query).fetchall()}


def tracked_as(version: str) -> list[str]:
    """The tracking-table versions a file counts as: its full stem (ours) and its numeric
    prefix (an existing table's `006`, or `6` in a table whose `version` is an integer)."""
    prefix = re.match(r"\d+", version)
    if not prefix:
        return [version]
    return list(dict.fromkeys([version, prefix.group(0), str(int(prefix.group(0)))]))


def _numeric_version(conn: Any, tracking_table: str) -> bool:
    """Whether the table's `version` column is a number (smallint, integer, bigint, numeric),
    as in a team's own `schema_migrations (version integer)`: rows then hold `6` for 006_x."""
    version_type = _column_types(conn, tracking_table).get("version")
    return version_type in ("smallint", "integer", "bigint", "numeric")


def is_applied(migration: Migration, applied: dict[str, str | None]) -> bool:
    return version_applied(migration.version, applied)


def version_applied(version: str, applied: Mapping[str, Any]) -> bool:
    """Whether a file's version (its stem) is among the tracking table's `applied` versions."""
    return any(v in applied for v in tracked_as(version))


def ensure_tracking_table(conn: Any, tracking_table: str) -> None:
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (version text PRIMARY KEY, filename text, "
            "checksum text, duration_ms integer, statements integer, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        ).format(_table_ident(tracking_table))
    )


def _record(conn: Any, tracking_table: str, columns: list[str], values: dict[str, Any]) -> None:
    names = [c for c in TRACKING_COLUMNS if c in columns]
    if _numeric_version(conn, tracking_table):
        prefix = re.match(r"\d+", str(values["version"]))
        if not prefix:
            raise PgError(
                f"tracking_table {tracking_table!r} has a numeric `version` column, but "
                f"{values['filename']!r} does not start with a number (expected e.g. 006_x.sql)"
            )
        values = {**values, "version": int(prefix.group(0))}
    conn.execute(
        sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            _table_ident(tracking_table),
            sql.SQL(", ").join(map(sql.Identifier, names)),
            sql.SQL(", ").join(sql.Placeholder() * len(names)),
        ),
        [values[c] for c in names],
    )


# -- apply ----------------------------------------------------------------------------


def set_timeouts(conn: Any, lock_timeout: str | None, statement_timeout: str | None) -> None:
    for setting, value in (
        ("lock_timeout", lock_timeout),
        ("statement_timeout", statement_timeout),
    ):
        if value:
            conn.execute(
                sql.SQL("SELECT set_config({}, {}, false)").format(
                    sql.Literal(setting), sql.Literal(value)
                )
            )


class Progress:
    """What no-transaction files committed before they failed (or the process died), kept in
    `<tracking_table>_progress` (created the first time there is something to keep): one row
    per file with the count of statements committed and a hash of their text."""

    def __init__(self, tracking_table: str) -> None:
        self.table = f"{tracking_table}_progress"
        self.rows: dict[str, dict[str, Any]] = {}
        self._exists = False

    def load(self, conn: Any) -> Progress:
        if not tracking_columns(conn, self.table):
            return self
        self._exists = True
        query = sql.SQL(
            "SELECT version, filename, statements_done, statements, done_checksum, "
            "committed_line, failed_line, sqlstate, message FROM {}"
        ).format(_table_ident(self.table))
        cursor = conn.execute(query)
        names = [column.name for column in cursor.description]
        rows = cursor.fetchall()
        self.rows = {row[0]: {name: row[i] for i, name in enumerate(names)} for row in rows}
        return self

    def resume_at(self, migration: Migration) -> int:
        """How many leading statements an earlier run committed; refuses when they changed."""
        row = self.rows.get(migration.version)
        if not row:
            return 0
        done = int(row["statements_done"])
        if (
            not migration.transactional
            and done <= len(migration.statements)
            and _statements_hash(migration.statements[:done]) == row["done_checksum"]
        ):
            return done
        raise PgError(
            f"{migration.filename} was partly applied by an earlier run (statements 1-{done} of "
            f"{row['statements']} committed, up to line {row['committed_line']}), and "
            + (
                "the file lost its `-- stagegate: no-transaction` mark"
                if migration.transactional
                else "the file no longer begins with those statements"
            )
            + ". The database holds the old ones: undo them by hand (or restore the backup), "
            f"then delete the row {migration.version!r} from {self.table} to run the file "
            "from its start",
            file=migration.filename,
            progress=row,
        )

    def partial(self, migrations: list[Migration]) -> list[dict[str, Any]]:
        """report-friendly rows of the pending files an earlier run left half-done."""
        out = []
        for migration in migrations:
            row = self.rows.get(migration.version)
            if row:
                done = self.resume_at(migration)
                resume = migration.statements[done] if done < len(migration.statements) else None
                out.append(
                    {
                        **row,
                        "resume_at": done + 1,
                        "resume_line": resume.line if resume else None,
                        "table": self.table,
                    }
                )
        return out

    def record(
        self, conn: Any, migration: Migration, done: int, error: dict[str, Any] | None = None
    ) -> None:
        if not self._exists:
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (version text PRIMARY KEY, filename text NOT "
                    "NULL, statements_done integer NOT NULL, statements integer NOT NULL, "
                    "done_checksum text NOT NULL, committed_line integer NOT NULL, "
                    "failed_line integer, sqlstate text, message text, "
                    "updated_at timestamptz NOT NULL DEFAULT now())"
                ).format(_table_ident(self.table))
            )
            self._exists = True
        last = migration.statements[done - 1]
        error = error or {}
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (version, filename, statements_done, statements, done_checksum, "
                "committed_line, failed_line, sqlstate, message) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (version) DO UPDATE SET filename = EXCLUDED.filename, "
                "statements_done = EXCLUDED.statements_done, statements = EXCLUDED.statements, "
                "done_checksum = EXCLUDED.done_checksum, "
                "committed_line = EXCLUDED.committed_line, failed_line = EXCLUDED.failed_line, "
                "sqlstate = EXCLUDED.sqlstate, message = EXCLUDED.message, updated_at = now()"
            ).format(_table_ident(self.table)),
            (
                migration.version,
                migration.filename,
                done,
                len(migration.statements),
                _statements_hash(migration.statements[:done]),
                last.line,
                error.get("line"),
                error.get("sqlstate"),
                error.get("message"),
            ),
        )

    def forget(self, conn: Any, migration: Migration) -> None:
        if self._exists:
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE version = %s").format(_table_ident(self.table)),
                (migration.version,),
            )


def _statements_hash(statements: list[Statement]) -> str:
    digest = hashlib.sha256()
    for statement in statements:
        digest.update(statement.text.encode() + b"\0" + (statement.copy_data or "").encode())
    return digest.hexdigest()


def apply_migration(
    conn: Any,
    migration: Migration,
    tracking_table: str,
    record_locks: bool = False,
    progress: Progress | None = None,
) -> MigrationResult:
    """Apply one migration on an autocommit connection; never raises for SQL errors."""
    columns = tracking_columns(conn, tracking_table)
    started = time.monotonic()
    progress = progress or Progress(tracking_table).load(conn)

    def track() -> None:
        elapsed_ms = int((time.monotonic() - started) * 1000)
        _record(conn, tracking_table, columns, tracking_values(migration, elapsed_ms))
        progress.forget(conn, migration)

    return _execute(conn, migration, track, "applied", record_locks=record_locks, progress=progress)


def revert_migration(conn: Any, down: Migration, tracking_table: str) -> MigrationResult:
    """Run one down script and forget its migration in the tracking table, in one transaction
    (statement by statement in autocommit when the script is marked no-transaction)."""
    forget = sql.SQL("DELETE FROM {} WHERE version::text = ANY(%s)").format(
        _table_ident(tracking_table)
    )
    return _execute(
        conn, down, lambda: conn.execute(forget, (tracked_as(down.version),)), "reverted"
    )


def _execute(
    conn: Any,
    migration: Migration,
    track: Any,
    done: str,
    *,
    record_locks: bool = False,
    progress: Progress | None = None,
) -> MigrationResult:
    result = MigrationResult(
        migration.version,
        migration.filename,
        migration.transactional,
        statements=len(migration.statements),
    )
    started = time.monotonic()
    try:
        if migration.transactional:
            with conn.transaction():
                _run_statements(conn, migration, result, record_locks)
                track()
        else:
            _run_autocommit(conn, migration, result, progress)
            with conn.transaction():
                track()
        result.status = done
    except psycopg.Error as exc:
        result.status = "failed"
        result.error = _error_details(exc, migration, result.statements_run)
        if not migration.transactional:
            _after_autocommit_failure(conn, migration, result, progress)
    result.seconds = round(time.monotonic() - started, 3)
    return result


def _run_autocommit(
    conn: Any, migration: Migration, result: MigrationResult, progress: Progress | None
) -> None:
    """Statement by statement; after each one that leaves no transaction block open, the
    count of committed statements is recorded (when more follow), so a re-run resumes."""
    start = progress.resume_at(migration) if progress else 0
    result.resumed_at = start + 1 if start else None
    result.statements_run = result.statements_committed = start
    for index in range(start, len(migration.statements)):
        _send(conn, migration.statements[index])
        result.statements_run = index + 1
        if conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            result.statements_committed = index + 1
            if progress and index + 1 < len(migration.statements):
                progress.record(conn, migration, index + 1)


def _after_autocommit_failure(
    conn: Any, migration: Migration, result: MigrationResult, progress: Progress | None
) -> None:
    """End a transaction block the failure left open; record and report what stays committed."""
    error = result.error or {}
    committed = result.statements_committed or 0
    error["committed"] = None
    try:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.execute("ROLLBACK")
        if progress and committed:
            progress.record(conn, migration, committed, error)
    except psycopg.Error:  # the connection is gone: what was recorded per statement stays
        return
    if progress and committed:
        resume = migration.statements[committed] if committed < len(migration.statements) else None
        error["committed"] = {
            "statements": committed,
            "of": len(migration.statements),
            "resume_line": resume.line if resume else None,
            "table": progress.table,
        }


def _send(conn: Any, statement: Statement) -> None:
    if statement.copy_data is None:
        conn.execute(statement.text)
        return
    with conn.cursor() as cursor, cursor.copy(statement.text) as copy:
        copy.write(statement.copy_data)


def tracking_values(migration: Migration, duration_ms: int) -> dict[str, Any]:
    """A migration's row in the tracking table (TRACKING_COLUMNS)."""
    return {
        "version": migration.version,
        "filename": migration.filename,
        "checksum": migration.checksum,
        "duration_ms": duration_ms,
        "statements": len(migration.statements),
    }


def _run_statements(
    conn: Any, migration: Migration, result: MigrationResult, record_locks: bool
) -> None:
    for statement in migration.statements:
        began = time.monotonic()
        _send(conn, statement)
        result.statements_run += 1
        if record_locks:
            for relation, mode in conn.execute(
                "SELECT relation::regclass::text, mode FROM pg_locks "
                "WHERE pid = pg_backend_pid() AND locktype = 'relation' AND mode = ANY(%s)",
                (list(BLOCKING_LOCKS),),
            ).fetchall():
                result.locks.append(
                    {
                        "relation": relation,
                        "mode": mode,
                        "line": statement.line,
                        "statement_seconds": round(time.monotonic() - began, 3),
                    }
                )


def _error_details(exc: Any, migration: Migration, index: int) -> dict[str, Any]:
    statement = migration.statements[index] if index < len(migration.statements) else None
    line = statement.line if statement else None
    position = getattr(exc.diag, "statement_position", None)
    if statement and position:
        line = statement.line + statement.text[: int(position) - 1].count("\n")
    copy_line = re.search(r"COPY [^,]+, line (\d+)", getattr(exc.diag, "context", None) or "")
    if statement and statement.data_line and copy_line:
        line = statement.data_line + int(copy_line.group(1)) - 1
    sqlstate = exc.sqlstate
    return {
        "file": migration.filename,
        "statement": statement.text if statement else None,
        "statement_index": index + 1,
        "line": line,
        "sqlstate": sqlstate,
        "message": (exc.diag.message_primary or str(exc)).strip(),
        "lock_timeout": sqlstate == "55P03",
        "statement_timeout": sqlstate == "57014",
    }


def run_verifications(conn: Any, checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run verification queries; each passes when it returns at least `min_rows` rows."""
    results = []
    for check in checks:
        entry: dict[str, Any] = {"name": check["name"], "min_rows": check["min_rows"]}
        try:
            rows = conn.execute(check["query"]).fetchall()
            entry.update(rows=len(rows), sample=[list(map(str, r)) for r in rows[:5]])
            entry["ok"] = len(rows) >= check["min_rows"]
        except psycopg.Error as exc:
            entry.update(ok=False, sqlstate=exc.sqlstate, message=str(exc).strip())
        results.append(entry)
    return results


# -- Alembic --------------------------------------------------------------------------


@dataclass
class Alembic:
    """`alembic` on the host, given the database URL through an environment variable."""

    config: str
    target: PgTarget
    url_env: str = "DATABASE_URL"
    executable: str = "alembic"

    def url(self) -> str:
        params = self.target.params
        auth = quote(self.target.user, safe="")
        if self.target.password:
            auth += ":" + quote(self.target.password, safe="")
        return (
            f"postgresql+psycopg://{auth}@{params.get('host', '127.0.0.1')}:"
            f"{params.get('port', '5432')}/{quote(self.target.dbname, safe='')}"
        )

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [self.executable, "-c", self.config, *args]
        env = {**os.environ, self.url_env: self.url()}
        proc = subprocess.run(
            argv, capture_output=True, text=True, env=env, check=False, cwd=Path(self.config).parent
        )
        if proc.returncode != 0:
            raise PgError(
                f"alembic {' '.join(args)} failed (rc={proc.returncode}): "
                f"{_redact_url(_alembic_error_line(proc.stderr, proc.stdout), self)}",
                cmd=argv,
                rc=proc.returncode,
                stdout=_redact_url(proc.stdout, self),
                stderr=_redact_url(proc.stderr, self),
                sqlstate=alembic_sqlstate(proc.stderr),
            )
        return proc

    def current(self, conn: Any) -> str | None:
        return alembic_revision(conn)

    def history(self, rng: str) -> list[str]:
        """Revisions of `alembic history -r <rng>`, oldest first."""
        out = self.run("history", "-r", rng).stdout
        revisions = [
            line.split("->", 1)[1].split(",", 1)[0].replace("(head)", "").strip()
            for line in out.splitlines()
            if "->" in line
        ]
        return list(reversed(revisions))

    def pending(self, conn: Any) -> list[str]:
        """Revisions between the database's current one and head, oldest first."""
        current = self.current(conn)
        return [rev for rev in self.history(f"{current or 'base'}:head") if rev != current]

    def upgrade(self, check_mode: bool, conn: Any) -> dict[str, Any]:
        current = self.current(conn)
        pending = self.pending(conn)
        if not pending:
            return {"pending": [], "changed": False, "from": current, "to": current}
        if check_mode:
            rng = f"{current}:head" if current else "head"
            offline = self.run("upgrade", rng, "--sql").stdout
            return {"pending": pending, "changed": True, "from": current, "sql": offline[-20000:]}
        started = time.monotonic()
        self.run("upgrade", "head")
        return {
            "pending": pending,
            "changed": True,
            "from": current,
            "to": self.current(conn),
            "seconds": round(time.monotonic() - started, 3),
        }

    def reverting(self, conn: Any, to: str) -> list[str]:
        """Revisions `alembic downgrade <to>` reverts, newest first (none when the database is
        at `to` or below it)."""
        current = self.current(conn)
        if current is None or current == to:
            return []
        between = self.history(f"{to}:{current}")
        if current not in between:  # `to` is not below the current revision
            return []
        return [rev for rev in reversed(between) if rev != to]

    def downgrade(self, check_mode: bool, conn: Any, to: str) -> dict[str, Any]:
        """`alembic downgrade <to>` (`base`: every revision); check mode returns its offline
        SQL (`alembic downgrade <current>:<to> --sql`), which also fails when a revision's
        downgrade() cannot run."""
        current = self.current(conn)
        reverting = self.reverting(conn, to)
        result: dict[str, Any] = {"reverting": reverting, "from": current, "to": to}
        if not reverting:
            return {**result, "changed": False}
        if check_mode:
            offline = self.run("downgrade", f"{current}:{to}", "--sql").stdout
            return {**result, "changed": True, "sql": offline[-20000:]}
        started = time.monotonic()
        self.run("downgrade", to)
        return {
            **result,
            "changed": True,
            "to": self.current(conn) or "base",
            "seconds": round(time.monotonic() - started, 3),
        }


def alembic_revision(conn: Any) -> str | None:
    """The revision in Alembic's own `alembic_version` table (None: no table, or no row)."""
    exists = conn.execute("SELECT to_regclass('alembic_version') IS NOT NULL").fetchone()[0]
    if not exists:
        return None
    row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return str(row[0]) if row else None


def _redact_url(text: str, alembic: Alembic) -> str:
    """alembic's output with the password masked, also URL-quoted as in the URL it was given."""
    password = alembic.target.password
    return Redactor([password, quote(password, safe="")] if password else []).text(text)


def _alembic_error_line(stderr: str, stdout: str = "") -> str:
    """The line that says why alembic failed: an error line of stderr, else alembic's own
    `FAILED: ...` (which it prints on stdout, e.g. a config without script_location), else the
    last line of either."""
    for text in (stderr, stdout):
        lines = [line for line in text.splitlines() if re.search(r"[Ee]rror|FAILED", line)]
        if lines:
            return lines[-1].strip()
    last = stderr.strip().splitlines()[-1:] or stdout.strip().splitlines()[-1:]
    return (last or ["no output"])[-1].strip()


def alembic_sqlstate(stderr: str) -> str | None:
    """SQLSTATE of a psycopg error class named in SQLAlchemy's message, e.g. (psycopg.errors.X)."""
    match = re.search(r"psycopg\.errors\.(\w+)", stderr)
    if not match:
        return None
    error_class = getattr(psycopg.errors, match.group(1), None)
    return getattr(error_class, "sqlstate", None)


# -- the whole run, shared by pg_migrate and pg_migrate_dryrun -------------------------

MIGRATION_ARGUMENT_SPEC: dict[str, Any] = {
    "migrations_dir": {"type": "path"},
    "pattern": {"type": "str", "default": "*.sql"},
    "tracking_table": {"type": "str", "default": "public.stagegate_schema_migrations"},
    "alembic_config": {"type": "path"},
    "alembic_url_env": {"type": "str", "default": "DATABASE_URL"},
    "alembic_executable": {"type": "path"},
    "lock_timeout": {"type": "str"},
    "statement_timeout": {"type": "str"},
}


@dataclass
class MigrationRun:
    """Pending SQL migrations and Alembic revisions of one database, and applying them."""

    target: PgTarget
    params: dict[str, Any]
    migrations: list[Migration] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.params.get("migrations_dir") and not self.params.get("alembic_config"):
            raise PgError("one of migrations_dir or alembic_config is required")
        config = self.params.get("alembic_config")
        if config and not os.path.isfile(config):
            raise PgError(
                f"alembic_config (stagegate_dryrun_alembic_config): {config!r} is not a file "
                "(expected the path of the release's alembic.ini on the deploy host)"
            )
        if self.params.get("migrations_dir"):
            self.migrations = discover(self.params["migrations_dir"], self.params["pattern"])

    @property
    def alembic(self) -> Alembic | None:
        config = self.params.get("alembic_config")
        if not config:
            return None
        executable = self.params.get("alembic_executable") or _alembic_beside_python()
        return Alembic(config, self.target, self.params["alembic_url_env"], executable)

    def pending(self, conn: Any) -> tuple[list[Migration], list[str], list[str]]:
        """(pending SQL migrations, applied files changed since, pending Alembic revisions)."""
        applied = applied_versions(conn, self.params["tracking_table"])
        pending = [m for m in self.migrations if not is_applied(m, applied)]
        drifted = [
            m.filename for m in self.migrations if applied.get(m.version) not in (None, m.checksum)
        ]
        alembic = self.alembic
        return pending, drifted, alembic.pending(conn) if alembic else []

    def partial(self, conn: Any, pending: list[Migration]) -> list[dict[str, Any]]:
        """Pending no-transaction files an earlier run left half-done (where they resume)."""
        return Progress(self.params["tracking_table"]).load(conn).partial(pending)

    def to_revert(self, conn: Any) -> list[Migration]:
        """Down scripts of the applied migrations among `revert`, in the order they run."""
        if not self.params.get("revert"):
            return []
        names = [n if n.endswith(".sql") else f"{n}.sql" for n in self.params["revert"]]
        down_dir = self.params.get("down_dir") or str(Path(self.params["migrations_dir"]) / "down")
        applied = applied_versions(conn, self.params["tracking_table"])
        downs = discover_down(down_dir, names)
        return [d for d in downs if is_applied(d, applied)]

    def revert(self, conn: Any) -> dict[str, Any]:
        """Revert newest first, stop at the first failure; SQL errors are returned. Alembic
        (applied after the SQL files) goes down first, to `alembic_downgrade`."""
        set_timeouts(conn, self.params.get("lock_timeout"), self.params.get("statement_timeout"))
        summary: dict[str, Any] = {"migrations": [], "error": None}
        alembic, to = self.alembic, self.params.get("alembic_downgrade")
        if alembic and to:
            try:
                summary["alembic"] = alembic.downgrade(False, conn, to)
            except PgError as exc:
                summary["error"] = self._alembic_error(exc)
                return summary
        if self.params.get("revert"):
            summary.update(self._revert_sql(conn))
        return summary

    def _alembic_error(self, exc: PgError) -> dict[str, Any]:
        return {
            "file": self.params["alembic_config"],
            "message": exc.msg,
            "sqlstate": exc.details.get("sqlstate"),
            "stderr": exc.details.get("stderr"),
        }

    def _revert_sql(self, conn: Any) -> dict[str, Any]:
        results = []
        for down in self.to_revert(conn):
            outcome = revert_migration(conn, down, self.params["tracking_table"])
            results.append(outcome.as_dict())
            if outcome.error:
                return {"migrations": results, "error": outcome.error}
        return {"migrations": results, "error": None}

    def apply(self, conn: Any, record_locks: bool = False) -> dict[str, Any]:
        """Apply pending migrations in order, stop at the first failure; SQL errors are returned."""
        set_timeouts(conn, self.params.get("lock_timeout"), self.params.get("statement_timeout"))
        pending, _, _ = self.pending(conn)
        progress = Progress(self.params["tracking_table"]).load(conn)
        progress.partial(pending)  # refuses half-done files that changed, before anything runs
        if pending:
            ensure_tracking_table(conn, self.params["tracking_table"])
        results = []
        failed = None
        for migration in pending:
            outcome = apply_migration(
                conn, migration, self.params["tracking_table"], record_locks, progress
            )
            results.append(outcome.as_dict())
            if outcome.error:
                failed = outcome.error
                break
        summary: dict[str, Any] = {"migrations": results, "error": failed}
        if not failed and self.alembic:
            try:
                summary["alembic"] = self.alembic.upgrade(False, conn)
            except PgError as exc:
                summary["error"] = self._alembic_error(exc)
        return summary


def _alembic_beside_python() -> str:
    import sys  # noqa: PLC0415 - only needed to find the venv's alembic

    beside = Path(sys.executable).parent / "alembic"
    return str(beside) if beside.exists() else "alembic"
