"""pg_restore on a real PostgreSQL 15 server: round trip against the manifest, guards."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from ansible_collections.stagegate.release.plugins.module_utils._pg import other_sessions
from conftest import PgCluster, unique_name
from pg_fixtures import SAMPLE_SCHEMA, db_arg, fingerprint, run_module


@pytest.fixture
def exact_backup(pg_cluster: PgCluster, sample_db: str, tmp_path: Path) -> Path:
    result = run_module(
        "pg_backup",
        {"db": db_arg(pg_cluster, sample_db), "backup_dir": str(tmp_path), "name": "rt"},
    )
    assert result.get("failed") is not True, (result.get("msg"), result.get("stderr"))
    return Path(result["path"])


def test_other_sessions_leave_out_this_process_own_backends(
    pg_cluster: PgCluster, sample_db: str
) -> None:
    # A backend whose client just closed may still be listed while it exits; the restore counts
    # its own such backends out instead of refusing to restore over "other sessions".
    with (
        psycopg.connect(pg_cluster.dsn("postgres"), autocommit=True) as admin,
        psycopg.connect(pg_cluster.dsn(sample_db)) as own,
    ):
        assert other_sessions(admin, sample_db) == 1
        assert other_sessions(admin, sample_db, {own.info.backend_pid}) == 0


@pytest.mark.slow
def test_round_trip_equals_manifest_and_is_idempotent(
    pg_cluster: PgCluster, sample_db: str, exact_backup: Path
) -> None:
    target = f"{sample_db}_restored"
    args = {
        "db": db_arg(pg_cluster, "postgres"),
        "backup": str(exact_backup),
        "name": target,
        "jobs": 2,
    }
    try:
        restored = run_module("pg_restore", args)
        assert restored.get("failed") is not True, (restored.get("msg"), restored.get("stderr"))
        manifest = json.loads(Path(f"{exact_backup}.manifest.json").read_text())
        assert restored["verification"]["exact"] is True
        assert restored["verification"]["rows"] == {
            t: i["rows"] for t, i in manifest["tables"].items()
        }
        assert restored["verification"]["mismatched"] == {}
        assert {e["table"] for e in restored["progress"]} >= {"public.orders", "public.customers"}
        assert fingerprint(pg_cluster, target)[1] == fingerprint(pg_cluster, sample_db)[1]
        assert run_module("pg_restore", args, check_mode=True)["changed"] is False
        assert run_module("pg_restore", args)["changed"] is False
        pg_cluster.psql("DELETE FROM orders WHERE id <= 10", target)  # drifted: restore again
        assert run_module("pg_restore", args, check_mode=True)["changed"] is True
        again = run_module("pg_restore", {**args, "mode": "clean"})
        assert again.get("failed") is not True, (again.get("msg"), again.get("stderr"))
        assert again["changed"] is True
        assert again["verification"]["mismatched"] == {}
    finally:
        pg_cluster.drop_database(target)


# Names are case-insensitive; `Production`, `PRODUCTION` and `prod` were restored unasked before.
@pytest.mark.parametrize("environment", ["production", "Production", "PRODUCTION", "prod", "Live"])
def test_production_refused_without_confirmation(
    pg_cluster: PgCluster, exact_backup: Path, environment: str
) -> None:
    args = {
        "db": db_arg(pg_cluster, "postgres"),
        "backup": str(exact_backup),
        "name": "sgt_prod_never",
        "environment": environment,
    }
    refused = run_module("pg_restore", args)
    assert refused["failed"] is True
    assert f"environment {environment!r} counts as production" in refused["msg"]
    assert "confirm_production" in refused["msg"]
    assert (
        pg_cluster.psql("SELECT count(*) FROM pg_database WHERE datname = 'sgt_prod_never'") == "0"
    )


@pytest.mark.slow
def test_sessions_ended_only_where_allowed(
    pg_cluster: PgCluster, sample_db: str, exact_backup: Path
) -> None:
    args = {"db": db_arg(pg_cluster, "postgres"), "backup": str(exact_backup), "name": sample_db}
    session = psycopg.connect(pg_cluster.dsn(sample_db), autocommit=True)
    try:
        busy = run_module("pg_restore", {**args, "force": True})
        assert busy["failed"] is True
        assert "other session" in busy["msg"]
        not_here = run_module(
            "pg_restore", {**args, "force": True, "terminate_sessions": True, "environment": "qa"}
        )
        assert not_here["failed"] is True
        done = run_module("pg_restore", {**args, "force": True, "terminate_sessions": True})
        assert done.get("failed") is not True, (done.get("msg"), done.get("stderr"))
        assert done["terminated"] == 1
    finally:
        session.close()


def test_missing_manifest_refused(pg_cluster: PgCluster, exact_backup: Path) -> None:
    Path(f"{exact_backup}.manifest.json").unlink()
    result = run_module(
        "pg_restore", {"db": db_arg(pg_cluster, "postgres"), "backup": str(exact_backup)}
    )
    assert result["failed"] is True
    assert "no manifest" in result["msg"]


def test_non_superuser_skips_extensions_it_cannot_create(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    role = unique_name("r_")
    dbname = unique_name("sgtest_")
    pg_cluster.psql(f'CREATE ROLE "{role}" LOGIN CREATEDB')
    pg_cluster.psql(f'CREATE DATABASE "{dbname}" OWNER "{role}"')
    pg_cluster.psql(f'SET ROLE "{role}"; {SAMPLE_SCHEMA}', dbname)
    pg_cluster.psql("CREATE EXTENSION pg_stat_statements", dbname)  # made by the superuser
    try:
        db = {**db_arg(pg_cluster, dbname), "user": role}
        backup = run_module(
            "pg_backup", {"db": db, "backup_dir": str(tmp_path), "name": "ext", "verify": "restore"}
        )
        assert backup.get("failed") is not True, (backup["msg"], backup.get("stderr"))
        assert backup["manifest"]["verification"]["skipped_extensions"] == ["pg_stat_statements"]
        restore_args = {"db": {**db, "name": "postgres"}, "backup": backup["path"], "mode": "clean"}
        restored = run_module("pg_restore", {**restore_args, "name": dbname, "force": True})
        assert restored.get("failed") is not True, (restored["msg"], restored.get("stderr"))
        assert restored["skipped_extensions"] == ["pg_stat_statements"]
        assert restored["verification"]["mismatched"] == {}
        installed = "SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'"
        assert pg_cluster.psql(installed, dbname) == "1"
    finally:
        pg_cluster.drop_database(dbname)
        pg_cluster.psql(f'DROP ROLE "{role}"')
