"""pg_migrate on a real PostgreSQL 15 server: SQL files in order, tracking, errors, Alembic."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from ansible_collections.stagegate.release.plugins.module_utils._pg import PgError, PgTarget
from ansible_collections.stagegate.release.plugins.module_utils._pg_migrations import Alembic
from conftest import PgCluster
from pg_fixtures import (
    CORPUS,
    CORPUS_STATEMENTS,
    INDEXES,
    MODULES,
    VIEWS,
    db_arg,
    module_env,
    run_module,
    write_migrations,
)

CONCURRENT = """-- stagegate: no-transaction
CREATE INDEX CONCURRENTLY idx_orders_total ON orders (total);
"""


def migrate(
    cluster: PgCluster, db: str, directory: Path, check: bool = False, **extra: object
) -> dict:
    args = {"db": db_arg(cluster, db), "migrations_dir": str(directory), **extra}
    return run_module("pg_migrate", args, check_mode=check)


def test_apply_in_order_with_verification_and_idempotence(
    pg_cluster: PgCluster, sample_db: str, tmp_path: Path
) -> None:
    directory = write_migrations(
        tmp_path / "m",
        {
            "007_metrics_views.sql": VIEWS,
            "006_composite_indexes.sql": INDEXES,
            "008_concurrent.sql": CONCURRENT,
        },
    )
    verify = [
        {
            "name": "composite indexes",
            "query": "SELECT indexname FROM pg_indexes WHERE indexname LIKE 'idx_%'",
        },
        {"name": "views", "query": "SELECT viewname FROM pg_views WHERE viewname LIKE 'v_%'"},
        {"name": "view answers", "query": "SELECT * FROM v_customer_orders LIMIT 5", "min_rows": 5},
    ]
    plan = migrate(pg_cluster, sample_db, directory, check=True, verify=verify)
    assert plan["changed"] is True
    assert plan["pending"] == [
        "006_composite_indexes.sql",
        "007_metrics_views.sql",
        "008_concurrent.sql",
    ]
    assert (
        pg_cluster.psql("SELECT to_regclass('stagegate_schema_migrations') IS NULL", sample_db)
        == "t"
    )
    applied = migrate(pg_cluster, sample_db, directory, verify=verify)
    assert applied.get("failed") is not True, applied
    assert [m["filename"] for m in applied["migrations"]] == plan["pending"]
    assert [m["statements"] for m in applied["migrations"]] == [2, 1, 1]
    assert [m["transactional"] for m in applied["migrations"]] == [True, True, False]
    assert all(v["ok"] for v in applied["verify"])
    assert (
        pg_cluster.psql(
            "SELECT string_agg(version, ',' ORDER BY version) FROM stagegate_schema_migrations",
            sample_db,
        )
        == "006_composite_indexes,007_metrics_views,008_concurrent"
    )
    for check in (True, False):
        again = migrate(pg_cluster, sample_db, directory, check=check, verify=verify)
        assert again["changed"] is False
        assert again["pending"] == []


def view_and_recorded(cluster: PgCluster, db: str) -> tuple[str, str]:
    """Whether the 007 view exists (count) and how many migrations the tracking table lists."""
    view = cluster.psql("SELECT count(*) FROM pg_views WHERE viewname = 'v_customer_orders'", db)
    return view, cluster.psql("SELECT count(*) FROM stagegate_schema_migrations", db)


def test_revert_runs_down_scripts_newest_first_and_forgets_them(
    pg_cluster: PgCluster, sample_db: str, tmp_path: Path
) -> None:
    directory = write_migrations(
        tmp_path / "m",
        {"006_composite_indexes.sql": INDEXES, "007_metrics_views.sql": VIEWS},
    )
    write_migrations(
        directory / "down",
        {
            "006_composite_indexes.sql": "DROP INDEX idx_orders_customer_created;\n"
            "DROP INDEX idx_customers_name;\n",
            "007_metrics_views.sql": "DROP VIEW v_customer_orders;\n",
        },
    )
    assert migrate(pg_cluster, sample_db, directory).get("failed") is not True
    pg_cluster.psql("INSERT INTO customers (name) VALUES ('written after the deploy')", sample_db)
    revert = ["006_composite_indexes.sql", "007_metrics_views"]

    plan = migrate(pg_cluster, sample_db, directory, check=True, revert=revert)
    assert plan["changed"] is True
    assert plan["reverting"] == ["007_metrics_views.sql", "006_composite_indexes.sql"]
    assert view_and_recorded(pg_cluster, sample_db) == ("1", "2")

    done = migrate(pg_cluster, sample_db, directory, revert=revert)
    assert done.get("failed") is not True, done
    assert [(m["filename"], m["status"]) for m in done["migrations"]] == [
        ("007_metrics_views.sql", "reverted"),
        ("006_composite_indexes.sql", "reverted"),
    ]
    objects = pg_cluster.psql(
        "SELECT count(*) FROM pg_class WHERE relname IN "
        "('v_customer_orders', 'idx_orders_customer_created', 'idx_customers_name')",
        sample_db,
    )
    assert objects == "0"
    assert pg_cluster.psql("SELECT count(*) FROM stagegate_schema_migrations", sample_db) == "0"
    # data written after the deploy is kept: a downgrade is not a restore
    assert (
        pg_cluster.psql(
            "SELECT count(*) FROM customers WHERE name = 'written after the deploy'", sample_db
        )
        == "1"
    )

    again = migrate(pg_cluster, sample_db, directory, revert=revert)
    assert (again["changed"], again["reverting"]) == (False, [])
    # the migrations apply again afterwards: the tracking table forgot them
    assert migrate(pg_cluster, sample_db, directory, check=True)["pending"] == [
        "006_composite_indexes.sql",
        "007_metrics_views.sql",
    ]


def test_revert_refuses_before_anything_when_a_down_script_is_missing(
    pg_cluster: PgCluster, sample_db: str, tmp_path: Path
) -> None:
    directory = write_migrations(
        tmp_path / "m",
        {"006_composite_indexes.sql": INDEXES, "007_metrics_views.sql": VIEWS},
    )
    write_migrations(directory / "down", {"007_metrics_views.sql": "DROP VIEW v_customer_orders;"})
    assert migrate(pg_cluster, sample_db, directory).get("failed") is not True

    result = migrate(
        pg_cluster, sample_db, directory, revert=["006_composite_indexes", "007_metrics_views"]
    )

    assert result["failed"] is True
    assert "no down script for 006_composite_indexes.sql" in result["msg"]
    assert str(directory / "down") in result["msg"]
    # nothing ran: the view is still there and both migrations still recorded
    assert view_and_recorded(pg_cluster, sample_db) == ("1", "2")


def test_revert_failure_names_the_down_script_and_keeps_its_migration(
    pg_cluster: PgCluster, sample_db: str, tmp_path: Path
) -> None:
    directory = write_migrations(tmp_path / "m", {"007_metrics_views.sql": VIEWS})
    write_migrations(
        directory / "down",
        {"007_metrics_views.sql": "DROP VIEW v_customer_orders;\nDROP TABLE no_such_table;\n"},
    )
    assert migrate(pg_cluster, sample_db, directory).get("failed") is not True

    result = migrate(pg_cluster, sample_db, directory, revert=["007_metrics_views.sql"])

    assert result["failed"] is True
    assert result["error"]["file"] == "007_metrics_views.sql"
    assert result["error"]["sqlstate"] == "42P01"
    assert "down script 007_metrics_views.sql failed at line 2" in result["msg"]
    # one transaction: the view is back and the migration still recorded
    assert view_and_recorded(pg_cluster, sample_db) == ("1", "1")


def test_failure_names_file_statement_line_and_sqlstate(
    pg_cluster: PgCluster, sample_db: str, tmp_path: Path
) -> None:
    directory = write_migrations(
        tmp_path / "m",
        {
            "001_ok.sql": "CREATE TABLE audit (id int);\n",
            "002_broken.sql": (
                "ALTER TABLE orders ADD COLUMN note text;\n\n"
                "UPDATE orders\n   SET note = missing_column;\n"
            ),
            "003_never.sql": "CREATE TABLE never (id int);\n",
        },
    )
    result = migrate(pg_cluster, sample_db, directory)
    assert result["failed"] is True
    error = result["error"]
    assert error["file"] == "002_broken.sql"
    assert error["sqlstate"] == "42703"
    assert error["line"] == 4
    assert error["statement"].startswith("UPDATE orders")
    assert "002_broken.sql" in result["msg"]
    assert "42703" in result["msg"]
    assert [m["status"] for m in result["migrations"]] == ["applied", "failed"]
    assert result["applied"] == ["001_ok.sql"]  # what the stopped deploy's manifest records
    # 001 stays applied; 002 rolled back as a whole (its first statement too); 003 never ran
    columns = pg_cluster.psql(
        "SELECT count(*) FROM information_schema.columns WHERE column_name = 'note'", sample_db
    )
    assert columns == "0"
    assert pg_cluster.psql("SELECT to_regclass('never') IS NULL", sample_db) == "t"
    assert (
        pg_cluster.psql(
            "SELECT string_agg(version, ',') FROM stagegate_schema_migrations", sample_db
        )
        == "001_ok"
    )


def test_lock_timeout_reported(pg_cluster: PgCluster, sample_db: str, tmp_path: Path) -> None:
    directory = write_migrations(
        tmp_path / "m", {"001_alter.sql": "ALTER TABLE orders ADD COLUMN x int;"}
    )
    with psycopg.connect(pg_cluster.dsn(sample_db)) as blocker:
        blocker.execute("LOCK TABLE orders IN ACCESS SHARE MODE")  # a long read keeps its lock
        result = migrate(pg_cluster, sample_db, directory, lock_timeout="300ms")
    assert result["failed"] is True
    assert result["error"]["sqlstate"] == "55P03"
    assert result["error"]["lock_timeout"] is True


def test_concurrently_without_marker_refused(
    pg_cluster: PgCluster, sample_db: str, tmp_path: Path
) -> None:
    directory = write_migrations(
        tmp_path / "m", {"001_idx.sql": "CREATE INDEX CONCURRENTLY i1 ON orders (total);"}
    )
    result = migrate(pg_cluster, sample_db, directory, check=True)
    assert result["failed"] is True
    assert "no-transaction" in result["msg"]
    assert "001_idx.sql" in result["msg"]


def test_existing_tracking_table_with_numeric_versions(
    pg_cluster: PgCluster, sample_db: str, tmp_path: Path
) -> None:
    pg_cluster.psql(
        "CREATE TABLE schema_migrations (version text PRIMARY KEY); "
        "INSERT INTO schema_migrations VALUES ('006')",
        sample_db,
    )
    directory = write_migrations(
        tmp_path / "m", {"006_composite_indexes.sql": INDEXES, "007_metrics_views.sql": VIEWS}
    )
    result = migrate(
        pg_cluster, sample_db, directory, tracking_table="schema_migrations", pattern="0*_*.sql"
    )
    assert result.get("failed") is not True, result
    assert [m["filename"] for m in result["migrations"]] == ["007_metrics_views.sql"]
    assert (
        pg_cluster.psql(
            "SELECT string_agg(version, ',' ORDER BY version) FROM schema_migrations", sample_db
        )
        == "006,007_metrics_views"
    )


def test_existing_tracking_table_with_integer_versions(
    pg_cluster: PgCluster, sample_db: str, tmp_path: Path
) -> None:
    """A team's own `schema_migrations (version integer)` lists 006_x.sql as 6: it counts as
    applied, a new file is recorded as its number, and a revert forgets that number."""
    pg_cluster.psql(
        "CREATE TABLE schema_migrations (version integer PRIMARY KEY, "
        "applied_at timestamptz NOT NULL DEFAULT now()); "
        "INSERT INTO schema_migrations (version) VALUES (6)",
        sample_db,
    )
    directory = write_migrations(
        tmp_path / "m", {"006_composite_indexes.sql": INDEXES, "007_metrics_views.sql": VIEWS}
    )
    write_migrations(
        directory / "down", {"007_metrics_views.sql": "DROP VIEW v_customer_orders;\n"}
    )
    args = {"tracking_table": "schema_migrations", "pattern": "0*_*.sql"}
    versions = "SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations"

    plan = migrate(pg_cluster, sample_db, directory, check=True, **args)
    assert plan["pending"] == ["007_metrics_views.sql"], plan
    result = migrate(pg_cluster, sample_db, directory, **args)
    assert result.get("failed") is not True, result
    assert [m["filename"] for m in result["migrations"]] == ["007_metrics_views.sql"]
    assert pg_cluster.psql(versions, sample_db) == "6,7"
    assert migrate(pg_cluster, sample_db, directory, **args)["changed"] is False

    done = migrate(pg_cluster, sample_db, directory, revert=["007_metrics_views.sql"], **args)
    assert done.get("failed") is not True, done
    assert pg_cluster.psql(versions, sample_db) == "6"


@pytest.mark.slow
def test_alembic_check_then_upgrade(password_cluster: PgCluster, alembic_project: Path) -> None:
    db = password_cluster.create_database()
    args = {
        "db": db_arg(password_cluster, db, user="app", password="s3cret-pw"),
        "alembic_config": str(alembic_project),
    }
    password_cluster.psql(f'ALTER DATABASE "{db}" OWNER TO app')
    plan = run_module("pg_migrate", args, check_mode=True)
    assert plan.get("failed") is not True, plan
    assert plan["changed"] is True
    assert plan["alembic_pending"] == ["a1", "b2"]
    assert "CREATE TABLE alembic_made" in plan["alembic_sql"]
    applied = run_module("pg_migrate", args)
    assert applied.get("failed") is not True, applied
    assert password_cluster.psql("SELECT version_num FROM alembic_version", db) == "b2"
    assert "s3cret-pw" not in json.dumps(applied) + json.dumps(plan)
    again = run_module("pg_migrate", args)
    assert again["changed"] is False
    assert again["alembic_pending"] == []
    assert again["alembic_current"] == "b2"

    # alembic downgrade: check, real, check again, real again
    down = {**args, "alembic_downgrade": "a1"}
    planned = run_module("pg_migrate", down, check_mode=True)
    assert planned.get("failed") is not True, planned
    assert (planned["changed"], planned["alembic_reverting"]) == (True, ["b2"])
    assert "DROP INDEX idx_alembic" in planned["alembic_sql"]
    assert password_cluster.psql("SELECT version_num FROM alembic_version", db) == "b2"
    done = run_module("pg_migrate", down)
    assert done.get("failed") is not True, done
    assert (done["changed"], done["alembic"]["from"], done["alembic_current"]) == (True, "b2", "a1")
    assert password_cluster.psql("SELECT to_regclass('idx_alembic') IS NULL", db) == "t"
    assert run_module("pg_migrate", down, check_mode=True)["changed"] is False
    assert run_module("pg_migrate", down)["changed"] is False
    base = run_module("pg_migrate", {**args, "alembic_downgrade": "base"})
    assert (base["alembic_reverting"], base["alembic_current"]) == (["a1"], None)
    assert password_cluster.psql("SELECT to_regclass('alembic_made') IS NULL", db) == "t"
    assert "s3cret-pw" not in json.dumps([planned, done, base])


ALEMBIC_ENV_ECHOING_URL = """
import os
from urllib.parse import unquote, urlsplit

url = os.environ["DATABASE_URL"]
print(f"migrating {url}")
raise RuntimeError(f"cannot migrate: password {unquote(urlsplit(url).password)} refused")
"""


def test_alembic_failure_shows_neither_form_of_the_password(tmp_path: Path) -> None:
    """An env.py that echoes DATABASE_URL (its password URL-quoted) and then fails naming the
    password: the error, stdout and stderr stagegate keeps mask both forms."""
    (tmp_path / "alembic.ini").write_text("[alembic]\nscript_location = .\n")
    (tmp_path / "env.py").write_text(ALEMBIC_ENV_ECHOING_URL)
    (tmp_path / "script.py.mako").write_text("")
    (tmp_path / "versions").mkdir()
    password = "p@ss w0rd/1"
    target = PgTarget(params={"host": "127.0.0.1", "port": "1", "dbname": "app"}, password=password)
    executable = str(Path(sys.executable).with_name("alembic"))
    alembic = Alembic(config=str(tmp_path / "alembic.ini"), target=target, executable=executable)
    with pytest.raises(PgError) as failed:
        alembic.run("upgrade", "head")
    details = failed.value.details
    shown = json.dumps([failed.value.msg, details["stdout"], details["stderr"]])
    assert "cannot migrate: password *** refused" in shown
    assert "migrating postgresql+psycopg://postgres:***@127.0.0.1:1/app" in shown
    assert password not in shown
    assert quote(password, safe="") not in shown


def test_alembic_failure_names_what_alembic_printed_on_stdout(tmp_path: Path) -> None:
    """Alembic prints its own `FAILED: ...` on stdout (a config without script_location): the
    error says it (a trial got "no output")."""
    (tmp_path / "alembic.ini").write_text("[alembic]\n")
    target = PgTarget(params={"host": "127.0.0.1", "port": "1", "dbname": "app"}, password="pw")
    executable = str(Path(sys.executable).with_name("alembic"))
    alembic = Alembic(config=str(tmp_path / "alembic.ini"), target=target, executable=executable)
    with pytest.raises(PgError) as failed:
        alembic.run("history", "-r", "b2:head")
    assert "FAILED: No 'script_location' key found in configuration" in failed.value.msg


# -- migrations as people write them (issue 13, items 12 and 13) ----------------------

PG_DUMP_ARGS = ["--no-owner", "-T", "stagegate_schema_migrations*", "-d"]
PSQL_FILE_ARGS = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d"]
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?[+-]\d\d(:\d\d)?")


def dump_without_clock(cluster: PgCluster, db: str) -> str:
    """pg_dump (schema and data) less stagegate's own tables, timestamps masked."""
    proc = subprocess.run(
        [str(cluster.bindir / "pg_dump"), *PG_DUMP_ARGS, cluster.dsn(db)],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = [
        line
        for line in proc.stdout.splitlines()
        if not line.startswith(("\\restrict", "\\unrestrict"))
    ]
    return TIMESTAMP.sub("<ts>", "\n".join(lines))


def test_corpus_applies_as_psql_applies_it_and_once(
    pg_cluster: PgCluster, pg_database: str
) -> None:
    """Functions, DO blocks, `$fn1$` tags, nested dollar quotes, BEGIN ATOMIC, COPY FROM stdin,
    nested comments, E'' strings, CONCURRENTLY/VACUUM in a no-transaction file, a sqitch-style
    BEGIN/COMMIT file and strings that merely mention VACUUM: pg_migrate leaves the database
    exactly as `psql -f` leaves another one."""
    names = sorted(CORPUS_STATEMENTS)
    plan = migrate(pg_cluster, pg_database, CORPUS, check=True)
    assert plan.get("failed") is not True, plan
    assert (plan["pending"], plan["partial"]) == (names, [])

    applied = migrate(pg_cluster, pg_database, CORPUS)
    assert applied.get("failed") is not True, applied
    assert {m["filename"]: m["statements"] for m in applied["migrations"]} == CORPUS_STATEMENTS
    assert [m["status"] for m in applied["migrations"]] == ["applied"] * len(names)
    assert [m["filename"] for m in applied["migrations"] if not m["transactional"]] == [
        "005_concurrent_indexes.sql"
    ]
    assert all(m["seconds"] >= 0 for m in applied["migrations"])

    by_psql = pg_cluster.create_database()
    try:
        for name in names:
            subprocess.run(
                [*PSQL_FILE_ARGS, pg_cluster.dsn(by_psql), "-f", str(CORPUS / name)],
                capture_output=True,
                text=True,
                check=True,
            )
        assert dump_without_clock(pg_cluster, pg_database) == dump_without_clock(
            pg_cluster, by_psql
        )
    finally:
        pg_cluster.drop_database(by_psql)

    def value(query: str) -> str:
        return pg_cluster.psql(query, pg_database)

    assert value("SELECT normalize_email('  Ada@Example.INVALID ')") == "ada@example.invalid"
    assert value("SELECT account_tier(5) || ',' || account_tier(500)") == "medium,large"
    assert value("SELECT value FROM settings WHERE key = 'greeting'") == "hello; world"
    assert value("SELECT string_agg(code, ',' ORDER BY code) FROM plans") == "ent,free,pro,team"
    assert value("SELECT count(*) FROM plan_changes") == "2"
    assert "VACUUM ANALYZE" in value("SELECT obj_description('accounts'::regclass)")
    assert value("SELECT bool_and(indisvalid) FROM pg_index WHERE indrelid = 'accounts'::regclass")
    assert value("SELECT count(*) FROM stagegate_schema_migrations") == str(len(names))
    assert value("SELECT count(*) FROM stagegate_schema_migrations_progress") == "0"

    again = migrate(pg_cluster, pg_database, CORPUS)
    assert (again["changed"], again["pending"]) == (False, [])


OWN_COMMIT = """\
BEGIN;
CREATE TABLE first_half (id int);
COMMIT;
CREATE TABLE second_half (id int REFERENCES no_such_table (id));
"""


@pytest.mark.parametrize("check", [True, False])
def test_own_transaction_control_refused_before_anything_runs(
    pg_cluster: PgCluster, pg_database: str, tmp_path: Path, check: bool
) -> None:
    """The file of #13.13 would commit its first half with no tracking row (and the re-run
    would fail with 42P07): it is refused, naming file, line and the way out, and nothing of
    the run happens, not even the file before it."""
    directory = write_migrations(
        tmp_path / "m", {"001_ok.sql": "CREATE TABLE ok (id int);", "002_own.sql": OWN_COMMIT}
    )
    result = migrate(pg_cluster, pg_database, directory, check=check)
    assert result["failed"] is True
    assert result["msg"].startswith("002_own.sql line 3: `COMMIT` controls the transaction")
    assert "-- stagegate: no-transaction" in result["msg"]
    assert "wrapped whole in one plain `BEGIN; .. COMMIT;` is accepted" in result["msg"]
    assert (
        pg_cluster.psql(
            "SELECT count(*) FROM pg_class WHERE relname IN "
            "('ok', 'first_half', 'stagegate_schema_migrations')",
            pg_database,
        )
        == "0"
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("BEGIN;\nCREATE TABLE a (id int);\nROLLBACK;\n", "line 3: `ROLLBACK` controls"),
        ("BEGIN ISOLATION LEVEL SERIALIZABLE;\nSELECT 1;\nCOMMIT;\n", "line 1: `BEGIN ISOLATION`"),
        ("SELECT 1;\nVACUUM orders;\n", "line 2: VACUUM cannot run inside a transaction"),
        (
            "-- stagegate: no-transaction\nSELECT 1;\nBEGIN;\nSELECT 2;\n",
            "line 3: `BEGIN` opens a transaction block that the file never ends",
        ),
        ("SELECT 1;\nCOPY orders TO STDOUT;\n", "line 2: COPY .. TO STDOUT"),
        ("SELECT 1;\n\\i other.sql\n", "line 2: psql meta-command '\\\\i'"),
        ("COPY orders (total) FROM stdin;\n1\n", "line 1: COPY ORDERS FROM: no line `\\.`"),
    ],
)
def test_refusals_name_file_and_line(
    pg_cluster: PgCluster, pg_database: str, tmp_path: Path, text: str, fragment: str
) -> None:
    directory = write_migrations(tmp_path / "m", {"001_x.sql": text})
    result = migrate(pg_cluster, pg_database, directory, check=True)
    assert result["failed"] is True
    assert result["msg"].startswith("001_x.sql line ")
    assert fragment in result["msg"]


BACKFILL = """\
-- stagegate: no-transaction
BEGIN;
CREATE TABLE backfill (id int);
INSERT INTO backfill VALUES (1);
COMMIT;
CREATE INDEX CONCURRENTLY backfill_id ON backfill (id);
BEGIN;
INSERT INTO backfill VALUES (2);
INSERT INTO backfill VALUES ('two');
COMMIT;
"""


def test_no_transaction_file_records_what_it_committed_and_resumes(
    pg_cluster: PgCluster, pg_database: str, tmp_path: Path
) -> None:
    """#13.13's other way: a no-transaction file runs as a unit whose committed statements are
    recorded, so the re-run resumes after them instead of failing with 42P07 on them."""
    directory = write_migrations(tmp_path / "m", {"001_backfill.sql": BACKFILL})
    path = directory / "001_backfill.sql"

    def rows() -> str:
        return pg_cluster.psql(
            "SELECT string_agg(id::text, ',' ORDER BY id) FROM backfill", pg_database
        )

    def progress() -> str:
        return pg_cluster.psql(
            "SELECT concat_ws(',', statements_done, committed_line, failed_line, sqlstate) "
            "FROM stagegate_schema_migrations_progress",
            pg_database,
        )

    first = migrate(pg_cluster, pg_database, directory)
    assert first["failed"] is True
    error = first["error"]
    assert (error["file"], error["line"], error["sqlstate"]) == ("001_backfill.sql", 9, "22P02")
    assert error["committed"]["statements"] == 5
    assert "statements 1-5 of 9 stay committed" in first["msg"]
    assert "a re-run resumes at statement 6, line 7" in first["msg"]
    # the first block and the index stay; the failed block was rolled back whole
    assert rows() == "1"
    assert progress() == "5,6,9,22P02"
    assert pg_cluster.psql("SELECT to_regclass('backfill_id') IS NOT NULL", pg_database) == "t"

    plan = migrate(pg_cluster, pg_database, directory, check=True)
    assert plan["pending"] == ["001_backfill.sql"]
    assert [(p["resume_at"], p["resume_line"]) for p in plan["partial"]] == [(6, 7)]

    same = migrate(pg_cluster, pg_database, directory)  # not 42P07 on the committed part
    assert (same["error"]["sqlstate"], same["error"]["line"]) == ("22P02", 9)
    assert same["migrations"][0]["resumed_at"] == 6
    assert rows() == "1"

    path.write_text(
        BACKFILL.replace("CREATE TABLE backfill (id int)", "CREATE TABLE backfill (n int)")
    )
    changed = migrate(pg_cluster, pg_database, directory)
    assert changed["failed"] is True
    assert "001_backfill.sql was partly applied by an earlier run" in changed["msg"]
    assert "stagegate_schema_migrations_progress" in changed["msg"]
    assert rows() == "1"

    path.write_text(BACKFILL.replace("VALUES ('two')", "VALUES (3)"))
    fixed = migrate(pg_cluster, pg_database, directory)
    assert fixed.get("failed") is not True, fixed
    assert fixed["migrations"][0]["resumed_at"] == 6
    assert fixed["migrations"][0]["statements_committed"] == 9
    assert rows() == "1,2,3"
    assert progress() == ""
    assert (
        pg_cluster.psql("SELECT version FROM stagegate_schema_migrations", pg_database)
        == "001_backfill"
    )
    assert migrate(pg_cluster, pg_database, directory)["changed"] is False


SEED_DATA = "1\n2\nthree\n\\.\n"  # line 5 of the file is bad


def test_copy_data_error_names_the_data_line(
    pg_cluster: PgCluster, pg_database: str, tmp_path: Path
) -> None:
    directory = write_migrations(
        tmp_path / "m",
        {"001_seed.sql": "CREATE TABLE seed (n int);\nCOPY seed (n) FROM stdin;\n" + SEED_DATA},
    )
    result = migrate(pg_cluster, pg_database, directory)
    assert result["failed"] is True
    assert (result["error"]["line"], result["error"]["sqlstate"]) == (5, "22P02")
    assert result["error"]["statement"] == "COPY seed (n) FROM stdin"
    assert pg_cluster.psql("SELECT to_regclass('seed') IS NULL", pg_database) == "t"


def test_killed_no_transaction_file_resumes_after_its_committed_statements(
    pg_cluster: PgCluster, pg_database: str, tmp_path: Path
) -> None:
    """Progress is written after each committed statement, not only on a caught failure: a
    process killed (SIGKILL, nothing to catch) in statement 2 leaves statement 1 recorded, and
    the re-run starts at statement 2 instead of failing with 42P07 on statement 1."""
    directory = write_migrations(
        tmp_path / "m",
        {
            "001_slow.sql": "-- stagegate: no-transaction\nCREATE TABLE made_first (id int);\n"
            "SELECT pg_sleep(30);\nCREATE TABLE made_last (id int);\n"
        },
    )
    args_file = tmp_path / "args.json"
    args = {"db": db_arg(pg_cluster, pg_database), "migrations_dir": str(directory)}
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    sleeping = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%'"
    proc = subprocess.Popen(
        [sys.executable, str(MODULES / "pg_migrate.py"), str(args_file)],
        stdout=subprocess.DEVNULL,
        env=module_env(),
    )
    try:
        deadline = time.monotonic() + 60
        while pg_cluster.psql(sleeping) == "0":
            assert proc.poll() is None, "pg_migrate ended before statement 2 ran"
            assert time.monotonic() < deadline
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        pg_cluster.psql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE query LIKE 'SELECT pg_sleep(30)%'"
        )
    assert (
        pg_cluster.psql(
            "SELECT statements_done FROM stagegate_schema_migrations_progress", pg_database
        )
        == "1"
    )
    (directory / "001_slow.sql").write_text(
        (directory / "001_slow.sql").read_text().replace("pg_sleep(30)", "pg_sleep(0)")
    )
    again = migrate(pg_cluster, pg_database, directory)
    assert again.get("failed") is not True, again
    assert again["migrations"][0]["resumed_at"] == 2
    assert (
        pg_cluster.psql(
            "SELECT count(*) FROM pg_class WHERE relname IN ('made_first', 'made_last')",
            pg_database,
        )
        == "2"
    )
