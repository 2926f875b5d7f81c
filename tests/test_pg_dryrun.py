"""pg_migrate_dryrun and pg_clone on a real PostgreSQL 15 server."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from conftest import PgCluster, unique_name
from pg_fixtures import (
    ALEMBIC_REVISION,
    CORPUS,
    CORPUS_STATEMENTS,
    INDEXES,
    MODULES,
    VIEWS,
    count_scratch,
    db_arg,
    fingerprint,
    module_env,
    run_module,
    write_migrations,
)

DROP_AND_ADD = """
ALTER TABLE orders DROP COLUMN created_at;
CREATE TABLE invoices (id serial PRIMARY KEY, order_id int REFERENCES orders(id));
"""


def dryrun(
    cluster: PgCluster, db: str, directory: Path, check: bool = False, **extra: object
) -> dict:
    args = {"db": db_arg(cluster, db), "migrations_dir": str(directory), **extra}
    return run_module("pg_migrate_dryrun", args, check_mode=check)


@pytest.mark.slow
def test_dryrun_runs_alembic_on_the_copy_and_names_a_failing_revision(
    pg_cluster: PgCluster,
    sample_db: str,
    tmp_path: Path,
    alembic_project: Path,
) -> None:
    directory = write_migrations(tmp_path / "m", {})  # Alembic only
    before = fingerprint(pg_cluster, sample_db)
    passed = dryrun(pg_cluster, sample_db, directory, alembic_config=str(alembic_project))
    assert passed.get("failed") is not True, passed
    assert (passed["check"]["status"], passed["pending"]) == ("PASS", ["a1", "b2"])
    # the revisions that ran on the copy are in the summary (it said "0 migration(s)")
    assert passed["check"]["message"] == (
        "0 migration(s) and Alembic base -> b2 (2 revision(s)) applied to a copy"
    )
    assert "alembic_made" in json.dumps(passed["schema_diff"]["tables"]["added"])
    (alembic_project.parent / "versions" / "c3.py").write_text(
        ALEMBIC_REVISION.format(
            rev="c3", down='"b2"', sql="SELECT nope FROM alembic_made", down_sql="SELECT 1"
        )
    )
    failed = dryrun(pg_cluster, sample_db, directory, alembic_config=str(alembic_project))
    assert failed["check"]["status"] == "FAIL"
    assert failed["check"]["message"].startswith(f"{alembic_project}: SQLSTATE 42703 alembic ")
    assert fingerprint(pg_cluster, sample_db) == before
    assert count_scratch(pg_cluster) == 0

    missing = str(alembic_project.parent / "alembc.ini")
    refused = dryrun(pg_cluster, sample_db, directory, alembic_config=missing)
    assert refused.get("failed") is True
    assert (
        f"alembic_config (stagegate_dryrun_alembic_config): {missing!r} is not a file"
        in json.dumps(refused)
    ), refused
    assert count_scratch(pg_cluster) == 0


@pytest.mark.slow
def test_dryrun_diff_graded_and_source_untouched(
    pg_cluster: PgCluster, sample_db: str, tmp_path: Path
) -> None:
    directory = write_migrations(
        tmp_path / "m",
        {"006_idx.sql": INDEXES, "007_views.sql": VIEWS, "008_drop.sql": DROP_AND_ADD},
    )
    before = fingerprint(pg_cluster, sample_db)
    result = dryrun(pg_cluster, sample_db, directory, warn_lock_seconds=0)
    assert result.get("failed") is not True, result
    assert result["changed"] is False
    diff = result["schema_diff"]
    assert diff["tables"]["added"] == ["public.invoices"]
    # 008 drops created_at, and with it the composite index 006 made: only the other survives
    assert set(diff["indexes"]["added"]) == {"public.idx_customers_name", "public.invoices_pkey"}
    assert diff["views"]["added"] == ["public.v_customer_orders"]
    assert diff["columns"]["removed"] == ["public.orders.created_at"]
    assert "public.invoices.invoices_order_id_fkey" in diff["constraints"]["added"]
    assert diff["destructive"] is True
    check = result["check"]
    assert check["status"] == "WARN"
    assert "destructive" in check["message"]
    locks = {(lock["relation"], lock["mode"]) for m in result["migrations"] for lock in m["locks"]}
    assert ("orders", "AccessExclusiveLock") in locks  # the DROP COLUMN would block readers
    assert set(result["timings"]) >= {"clone", "migrations", "drop", "total"}
    assert result["scratch"]["dropped"] is True
    assert fingerprint(pg_cluster, sample_db) == before
    assert count_scratch(pg_cluster) == 0


@pytest.mark.slow
def test_dryrun_error_reported_staging_unchanged_no_scratch(
    pg_cluster: PgCluster, sample_db: str, tmp_path: Path
) -> None:
    directory = write_migrations(
        tmp_path / "m",
        {
            "006_idx.sql": INDEXES,
            "007_broken.sql": "CREATE VIEW v_bad AS\n  SELECT nope FROM orders;\n",
        },
    )
    before = fingerprint(pg_cluster, sample_db)
    result = dryrun(pg_cluster, sample_db, directory)
    assert result.get("failed") is not True, result  # graded, the gate decides
    assert result["check"]["status"] == "FAIL"
    error = result["error"]
    assert (error["file"], error["sqlstate"], error["line"]) == ("007_broken.sql", "42703", 2)
    assert error["statement"].startswith("CREATE VIEW v_bad")
    assert "007_broken.sql" in result["check"]["message"]
    assert fingerprint(pg_cluster, sample_db) == before
    assert count_scratch(pg_cluster) == 0
    strict = dryrun(pg_cluster, sample_db, directory, fail_on_error=True)
    assert strict["failed"] is True
    assert "42703" in strict["msg"]
    assert count_scratch(pg_cluster) == 0


def test_dryrun_check_mode_lists_pending_without_copy(
    pg_cluster: PgCluster, sample_db: str, tmp_path: Path
) -> None:
    directory = write_migrations(tmp_path / "m", {"006_idx.sql": INDEXES})
    result = dryrun(pg_cluster, sample_db, directory, check=True)
    assert result["pending"] == ["006_idx.sql"]
    assert result["check"]["status"] == "SKIP"
    assert count_scratch(pg_cluster) == 0


def test_dryrun_of_a_missing_migrations_dir_fails_naming_it_before_copying(
    pg_cluster: PgCluster, sample_db: str, tmp_path: Path
) -> None:
    missing = tmp_path / "no-migrations"
    result = dryrun(pg_cluster, sample_db, missing)
    assert result["failed"] is True
    assert f"migrations_dir '{missing}' is not a directory" in result["msg"]
    assert count_scratch(pg_cluster) == 0


def test_dryrun_without_createdb_names_the_privilege(pg_cluster: PgCluster, tmp_path: Path) -> None:
    """A database owner without CREATEDB (a common hand-made set-up): the TEMPLATE copy is
    refused by the server; the failure says which role lacks what, and how to grant it."""
    role = unique_name("r_")
    dbname = unique_name("sgtest_")
    pg_cluster.psql(f'CREATE ROLE "{role}" LOGIN NOCREATEDB')
    pg_cluster.psql(f'CREATE DATABASE "{dbname}" OWNER "{role}"')
    try:
        directory = write_migrations(tmp_path / "m", {"006_idx.sql": "CREATE TABLE t (i int);"})
        args = {
            "db": {**db_arg(pg_cluster, dbname), "user": role},
            "migrations_dir": str(directory),
        }
        result = run_module("pg_migrate_dryrun", args)
        assert result["failed"] is True
        assert f"role '{role}' lacks CREATEDB" in result["msg"], result["msg"]
        assert f'ALTER ROLE "{role}" CREATEDB' in result["msg"]
        assert count_scratch(pg_cluster) == 0
    finally:
        pg_cluster.psql(f'DROP DATABASE IF EXISTS "{dbname}"')
        pg_cluster.psql(f'DROP ROLE IF EXISTS "{role}"')


@pytest.mark.slow
def test_busy_source_policies(pg_cluster: PgCluster, sample_db: str, tmp_path: Path) -> None:
    clone = {"db": db_arg(pg_cluster, sample_db), "name": f"{sample_db}_copy"}
    with psycopg.connect(pg_cluster.dsn(sample_db), autocommit=True):
        waited = run_module("pg_clone", {**clone, "when_busy": "wait", "busy_timeout": 1})
        assert waited["failed"] is True
        assert "other session" in waited["msg"]
        refused = run_module(
            "pg_clone", {**clone, "when_busy": "terminate", "environment": "production"}
        )
        assert refused["failed"] is True
        assert "refused" in refused["msg"]
        copied = run_module("pg_clone", {**clone, "when_busy": "dump_restore"})
        assert copied.get("failed") is not True, copied
        assert copied["clone"]["method"] == "dump_restore"
    assert pg_cluster.psql("SELECT count(*) FROM orders", f"{sample_db}_copy") == "1000"
    run_module("pg_clone", {**clone, "state": "absent"})
    session = psycopg.connect(pg_cluster.dsn(sample_db), autocommit=True)
    try:
        ended = run_module("pg_clone", {**clone, "when_busy": "terminate", "strategy": "file_copy"})
        assert ended.get("failed") is not True, ended
        assert ended["clone"]["terminated"] == 1  # one session, counted once
    finally:
        session.close()
        run_module("pg_clone", {**clone, "state": "absent"})
    # environment names compare ignoring case and spaces, as every guard does (_environments.py)
    allowed = run_module(
        "pg_clone", {**clone, "when_busy": "terminate", "environment": " Staging "}
    )
    try:
        assert allowed.get("failed") is not True, allowed
    finally:
        run_module("pg_clone", {**clone, "state": "absent"})


def test_leftovers_dropped_by_prefix(pg_cluster: PgCluster, sample_db: str, tmp_path: Path) -> None:
    pg_cluster.create_database("stagegate_dryrun_leftover1")
    directory = write_migrations(tmp_path / "m", {"006_idx.sql": INDEXES})
    result = dryrun(pg_cluster, sample_db, directory)
    assert result["scratch"]["leftovers_dropped"] == ["stagegate_dryrun_leftover1"]
    assert count_scratch(pg_cluster) == 0


@pytest.mark.slow
def test_interrupted_dryrun_drops_scratch(
    pg_cluster: PgCluster, sample_db: str, tmp_path: Path
) -> None:
    directory = write_migrations(tmp_path / "m", {"001_slow.sql": "SELECT pg_sleep(30);"})
    args_file = tmp_path / "args.json"
    args_file.write_text(
        json.dumps(
            {
                "ANSIBLE_MODULE_ARGS": {
                    "db": db_arg(pg_cluster, sample_db),
                    "migrations_dir": str(directory),
                }
            }
        )
    )
    proc = subprocess.Popen(
        [sys.executable, str(MODULES / "pg_migrate_dryrun.py"), str(args_file)],
        stdout=subprocess.PIPE,
        text=True,
        env=module_env(),
    )
    deadline = time.monotonic() + 30
    while (
        pg_cluster.psql(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%'"
        )
        == "0"
    ):
        assert time.monotonic() < deadline
        assert proc.poll() is None
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert count_scratch(pg_cluster) == 0


@pytest.mark.slow
def test_dryrun_of_the_corpus_passes_and_a_copy_error_names_its_line(
    pg_cluster: PgCluster, pg_database: str, tmp_path: Path
) -> None:
    """The real-world corpus on a TEMPLATE copy: every file applied with its statement count
    and time, the schema diff lists what it makes, the source is untouched; then a broken
    COPY row fails the dry-run with the file and the line of the row."""
    before = fingerprint(pg_cluster, pg_database)
    result = dryrun(pg_cluster, pg_database, CORPUS)
    assert result.get("failed") is not True, result
    assert result["check"]["status"] == "PASS", result["check"]
    assert {m["filename"]: m["statements"] for m in result["migrations"]} == CORPUS_STATEMENTS
    assert all(m["status"] == "applied" and m["seconds"] >= 0 for m in result["migrations"])
    diff = result["schema_diff"]
    assert set(diff["tables"]["added"]) == {
        f"public.{t}" for t in ("accounts", "audit_log", "settings", "plans", "plan_changes")
    }
    assert diff["views"]["added"] == ["public.v_account_overview"]
    assert {"public.idx_audit_log_account_at", "public.idx_accounts_lower_email"} <= set(
        diff["indexes"]["added"]
    )
    assert fingerprint(pg_cluster, pg_database) == before
    assert count_scratch(pg_cluster) == 0

    broken = tmp_path / "m"
    shutil.copytree(CORPUS, broken)
    (broken / "008_more_plans.sql").write_text(
        "-- 008: one bad row\nCOPY plans (code, label, price) FROM stdin;\n"
        "gold\tGold\t90.00\nbad\tBad\tnot-a-price\n\\.\n"
    )
    failed = dryrun(pg_cluster, pg_database, broken)
    assert failed["check"]["status"] == "FAIL"
    error = failed["error"]
    assert (error["file"], error["line"], error["sqlstate"]) == ("008_more_plans.sql", 4, "22P02")
    assert error["statement"] == "COPY plans (code, label, price) FROM stdin"
    assert "008_more_plans.sql line 4" in failed["check"]["message"]
    assert [m["status"] for m in failed["migrations"]][-1] == "failed"
    assert fingerprint(pg_cluster, pg_database) == before
    assert count_scratch(pg_cluster) == 0


def test_dryrun_refuses_own_transaction_control_before_copying(
    pg_cluster: PgCluster, pg_database: str, tmp_path: Path
) -> None:
    directory = write_migrations(
        tmp_path / "m", {"001_own.sql": "BEGIN;\nCREATE TABLE a (id int);\nCOMMIT;\nSELECT 1;\n"}
    )
    result = dryrun(pg_cluster, pg_database, directory)
    assert result["failed"] is True
    assert result["msg"].startswith("001_own.sql line 3: `COMMIT` controls the transaction")
    assert count_scratch(pg_cluster) == 0
