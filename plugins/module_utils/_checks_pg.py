# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The `postgres` check type (psycopg 3): a query with JMESPath assertions on its rows,
tables/indexes/views that must exist, the schema version, and slow statements from
pg_stat_statements (SKIP when the extension is missing). Everything runs in a READ ONLY
transaction, so the type is truthfully read-only and runs in check mode."""

from __future__ import annotations

import importlib.util
import json
from typing import Any

from ansible_collections.stagegate.release.plugins.module_utils._checks_common import (
    PASS,
    SKIP,
    Assertions,
    CheckError,
    CheckType,
    FinalCheckError,
    Outcome,
    RunContext,
)
from ansible_collections.stagegate.release.plugins.module_utils._checks_http import search

# psycopg is imported when a postgres check runs: importing it costs half a second, which
# every run of the engine and of the host module would otherwise pay.
HAS_PSYCOPG = importlib.util.find_spec("psycopg") is not None


def _psycopg() -> Any:
    if not HAS_PSYCOPG:
        raise CheckError("the psycopg (version 3) library is required for postgres checks")
    import psycopg  # noqa: PLC0415
    import psycopg.rows  # noqa: PLC0415
    import psycopg.sql  # noqa: PLC0415

    return psycopg


_KIND = {"tables": "table", "indexes": "index", "views": "view"}
_EXISTS = {
    "tables": "SELECT to_regclass(%s) IS NOT NULL AND "
    "(SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)) IN ('r', 'p')",
    "indexes": "SELECT to_regclass(%s) IS NOT NULL AND "
    "(SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)) IN ('i', 'I')",
    "views": "SELECT to_regclass(%s) IS NOT NULL AND "
    "(SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)) IN ('v', 'm')",
}
_SLOW = (
    "SELECT left(query, 200) AS query, calls, mean_exec_time AS mean_ms "
    "FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database "
    "WHERE datname = current_database()) ORDER BY mean_exec_time DESC LIMIT %s"
)


# What the server answers the same way on every attempt (a database still starting refuses the
# connection instead): a check that gets one is not retried.
_REFUSALS = (
    "password authentication failed",
    "no pg_hba.conf entry",
    "does not exist",  # the role or the database
)


def _connect(opts: dict[str, Any], timeout: float) -> Any:
    psycopg = _psycopg()
    params = {k: opts[k] for k in ("host", "port", "dbname", "user", "password") if opts.get(k)}
    try:
        conn = psycopg.connect(
            opts.get("dsn") or "", connect_timeout=max(1, int(timeout)), autocommit=False, **params
        )
    except psycopg.Error as exc:
        message = f"cannot connect to PostgreSQL: {str(exc).strip()}"
        if any(refusal in message for refusal in _REFUSALS):
            raise FinalCheckError(message) from None
        raise CheckError(message) from None
    conn.read_only = True
    conn.execute(
        psycopg.sql.SQL("SET statement_timeout = {}").format(
            psycopg.sql.Literal(int(timeout * 1000))
        )
    )
    return conn


def _query(conn: Any, opts: dict[str, Any], checks: Assertions, outcome: Outcome) -> None:
    with conn.cursor(row_factory=_psycopg().rows.dict_row) as cur:
        cur.execute(opts["query"], opts.get("params") or None)
        rows = [dict(r) for r in cur.fetchall()] if cur.description else []
    rows = json.loads(json.dumps(rows, default=str))  # dates, decimals -> JSON for JMESPath
    outcome.metrics["rows"] = len(rows)
    outcome.value = rows[0] if len(rows) == 1 and len(rows[0]) == 1 else len(rows)
    if opts.get("min_rows") is not None:
        checks.expect(
            len(rows) >= opts["min_rows"],
            f"{len(rows)} rows",
            f"{len(rows)} rows, expected at least {opts['min_rows']}",
        )
    for expression in opts.get("json") or []:
        found = search(expression, rows)
        checks.expect(bool(found), expression, f"rows {expression!r} is {json.dumps(found)}")


def _existence(conn: Any, opts: dict[str, Any], checks: Assertions) -> None:
    for kind, query in _EXISTS.items():
        for name in opts.get(kind) or []:
            exists = conn.execute(query, (name, name)).fetchone()[0]
            what = f"{_KIND[kind]} {name}"
            checks.expect(bool(exists), what, f"{what} does not exist")


def _schema_version(conn: Any, opts: dict[str, Any], checks: Assertions, outcome: Outcome) -> None:
    row = conn.execute(opts["schema_version_query"]).fetchone()
    version = None if row is None else str(row[0])
    outcome.details["schema_version"] = version
    expected = str(opts["schema_version"])
    checks.expect(
        version == expected,
        f"schema version {version}",
        f"schema version {version}, expected {expected}",
    )


def _slow_statements(conn: Any, opts: dict[str, Any], outcome: Outcome) -> bool:
    """Grade the slowest statement's mean time; False when the extension is missing."""
    spec = opts["slow_statements"]
    installed = conn.execute(
        "SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'"
    ).fetchone()
    if installed is None:
        return False
    with conn.cursor(row_factory=_psycopg().rows.dict_row) as cur:
        try:
            cur.execute(_SLOW, (spec["limit"],))
        except _psycopg().Error as exc:  # installed but not in shared_preload_libraries
            raise CheckError(f"pg_stat_statements cannot be read: {str(exc).strip()}") from None
        slow = [dict(r) for r in cur.fetchall()]
    worst = float(slow[0]["mean_ms"]) if slow else 0.0
    outcome.measure("slowest_mean_ms", worst, "ms", spec.get("mean_ms"))
    outcome.details["slow_statements"] = [
        {"query": s["query"], "calls": s["calls"], "mean_ms": round(float(s["mean_ms"]), 2)}
        for s in slow
    ]
    return True


def run_postgres(opts: dict[str, Any], ctx: RunContext) -> Outcome:
    conn = _connect(opts, ctx.timeout)
    checks = Assertions()
    measured = Outcome(PASS)
    skipped: list[str] = []
    try:
        if opts.get("query"):
            _query(conn, opts, checks, measured)
        _existence(conn, opts, checks)
        if opts.get("schema_version") is not None:
            _schema_version(conn, opts, checks, measured)
        if opts.get("slow_statements") and not _slow_statements(conn, opts, measured):
            skipped.append("pg_stat_statements is not installed: slow statements not checked")
    except _psycopg().Error as exc:
        raise CheckError(f"query failed: {str(exc).strip()}") from None
    finally:
        conn.rollback()
        conn.close()
    if skipped and not checks.passed and not checks.failures:
        return Outcome(SKIP, skipped[0])
    outcome = checks.outcome(
        ", ".join(checks.passed) or "connected",
        value=measured.value,
        metrics=measured.metrics,
        details=measured.details,
        measurements=measured.measurements,
    )
    outcome.message = "; ".join([outcome.message, *skipped])
    return outcome


POSTGRES = CheckType(
    name="postgres",
    description="read-only SQL assertions: a query's rows (JMESPath), tables/indexes/views "
    "that must exist, the schema version, slow statements from pg_stat_statements",
    options={
        "dsn": {"type": "str", "no_log": True, "description": "libpq connection string"},
        "host": {"type": "str"},
        "port": {"type": "int"},
        "dbname": {"type": "str"},
        "user": {"type": "str"},
        "password": {"type": "str", "no_log": True},
        "query": {"type": "str"},
        "params": {"type": "list", "default": []},
        "min_rows": {"type": "int"},
        "json": {
            "type": "list",
            "elements": "str",
            "default": [],
            "description": 'JMESPath over the rows (a list of mappings), e.g. "[0].n > `0`"',
        },
        "tables": {"type": "list", "elements": "str", "default": []},
        "indexes": {"type": "list", "elements": "str", "default": []},
        "views": {"type": "list", "elements": "str", "default": []},
        "schema_version": {"type": "raw", "description": "expected schema version"},
        "schema_version_query": {
            "type": "str",
            "default": "SELECT version_num FROM alembic_version",
        },
        "slow_statements": {
            "type": "dict",
            "description": "{limit, mean_ms: bands} for the slowest statements by mean time",
            "options": {"limit": {"type": "int", "default": 5}, "mean_ms": {"type": "bands"}},
        },
    },
    run=run_postgres,
)
