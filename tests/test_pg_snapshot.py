"""pg_snapshot on a real PostgreSQL 15 server: the snapshot and its properties, the swap and
its re-runs (also half done), the fall back to the dump, retention, names, the disk check."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from ansible_collections.stagegate.release.plugins.module_utils._pg_snapshot import (
    derived_name,
    read_properties,
    split_guc_list,
)
from ansible_collections.stagegate.release.plugins.module_utils._rollback_time import (
    database_estimate as estimate,
)
from conftest import PgCluster, unique_name
from pg_fixtures import db_arg, run_module


def props(cluster: PgCluster, name: str) -> dict[str, Any]:
    with psycopg.connect(cluster.dsn("postgres"), autocommit=True) as conn:
        return read_properties(conn, name)


def names(cluster: PgCluster, source: str) -> set[str]:
    out = cluster.psql(
        f"SELECT string_agg(datname, ',') FROM pg_database WHERE datname LIKE '{source}%'"  # noqa: S608 - test-made name
    )
    return set(out.split(",")) if out else set()


def ok(result: dict[str, Any]) -> dict[str, Any]:
    assert result.get("failed") is not True, (result.get("msg"), result.get("exception"))
    return result


@pytest.fixture
def app_db(pg_cluster: PgCluster, sample_db: str) -> Iterator[str]:
    """The sample database with what a TEMPLATE copy does not copy: owner, grants, settings
    (database-wide and per role, a list GUC among them), connection limit, comment."""
    role = unique_name("sgt_reader_")
    pg_cluster.psql(f"CREATE ROLE {role} LOGIN")
    pg_cluster.psql(
        f"ALTER DATABASE {sample_db} SET work_mem = '7MB';"
        f"ALTER DATABASE {sample_db} SET search_path = '$user', public, \"Odd, schema\";"
        f"ALTER ROLE {role} IN DATABASE {sample_db} SET statement_timeout = '5s';"
        f"ALTER DATABASE {sample_db} CONNECTION LIMIT 40;"
        f"REVOKE ALL ON DATABASE {sample_db} FROM PUBLIC;"
        f"GRANT CONNECT, TEMPORARY ON DATABASE {sample_db} TO {role};"
        f"COMMENT ON DATABASE {sample_db} IS 'the app database'"
    )
    try:
        yield sample_db
    finally:
        for name in names(pg_cluster, sample_db) - {sample_db}:
            pg_cluster.drop_database(name)
        pg_cluster.drop_database(sample_db)
        pg_cluster.psql(f"DROP ROLE {role}")


def test_snapshot_swap_rerun_and_fallback(pg_cluster: PgCluster, app_db: str) -> None:
    db = db_arg(pg_cluster, app_db)
    before = props(pg_cluster, app_db)
    snap = derived_name(app_db, "run1")

    planned = ok(run_module("pg_snapshot", {"db": db, "run_id": "run1"}, check_mode=True))
    assert planned["changed"] is True
    assert planned["disk"]["free_bytes"] > planned["disk"]["needed_bytes"]
    assert snap not in names(pg_cluster, app_db)

    made = ok(run_module("pg_snapshot", {"db": db, "run_id": "run1"}))
    record = made["snapshot"]
    assert made["changed"] is True
    assert record["name"] == snap
    assert record["tables"]["public.orders"]["rows"] == 1000
    assert record["size_bytes"] > 0
    assert record["seconds"] >= record["copy_seconds"] > 0
    assert record["properties_problems"] == []
    on_snapshot = props(pg_cluster, snap)
    assert on_snapshot["allow_connections"] is False  # nobody changes it until the rollback
    for key in ("owner", "acl", "settings", "connection_limit"):
        assert on_snapshot[key] == before[key], key

    again = ok(run_module("pg_snapshot", {"db": db, "run_id": "run1"}))
    assert (again["changed"], again["reused"]) == (False, True)
    assert again["snapshot"]["fingerprint"] == record["fingerprint"]

    # The release migrates and writes.
    pg_cluster.psql("CREATE TABLE v2_things (id int); INSERT INTO orders VALUES (9999)", app_db)
    pg_cluster.psql(f"ALTER DATABASE {app_db} SET work_mem = '99MB'")

    info = ok(run_module("pg_snapshot", {"db": db, "state": "planned", "expect": record}))
    assert (info["method"], info["changed"]) == ("snapshot", False)

    swap_args = {"db": db, "state": "swapped", "expect": record}
    would = ok(run_module("pg_snapshot", swap_args, check_mode=True))
    assert would["changed"] is True
    assert snap in names(pg_cluster, app_db)

    swapped = ok(run_module("pg_snapshot", swap_args))
    failed = derived_name(app_db, "run1", "failed")
    assert swapped["method"] == "snapshot"
    assert swapped["swap"]["found"] == "ready"
    assert names(pg_cluster, app_db) == {app_db, failed}
    assert pg_cluster.psql("SELECT count(*) FROM orders", app_db) == "1000"
    assert pg_cluster.psql("SELECT to_regclass('v2_things') IS NULL", app_db) == "t"
    after = props(pg_cluster, app_db)
    assert after == before  # owner, grants, settings (work_mem 7MB again), limit, comment
    assert swapped["properties"]["differ"] == []
    assert swapped["properties"]["problems"] == []
    assert pg_cluster.psql("SELECT count(*) FROM v2_things", failed) == "0"  # kept, readable

    rerun = ok(run_module("pg_snapshot", swap_args))
    assert (rerun["method"], rerun["changed"]) == ("snapshot", False)
    assert rerun["swap"]["found"] == "done"
    assert_half_swap_and_fallback(pg_cluster, app_db, before, failed)


def assert_half_swap_and_fallback(
    pg_cluster: PgCluster, app_db: str, before: dict[str, Any], failed: str
) -> None:
    db = db_arg(pg_cluster, app_db)

    # A second snapshot, swapped in after a first rename done on its own (a swap made of two
    # separate renames, interrupted between them): the re-run finishes it.
    second = ok(run_module("pg_snapshot", {"db": db, "run_id": "run2"}))["snapshot"]
    failed2 = derived_name(app_db, "run2", "failed")
    pg_cluster.psql(f'ALTER DATABASE "{app_db}" RENAME TO "{failed2}"')
    half = ok(run_module("pg_snapshot", {"db": db, "state": "swapped", "expect": second}))
    assert (half["method"], half["swap"]["found"]) == ("snapshot", "half")
    assert app_db in names(pg_cluster, app_db)
    assert props(pg_cluster, app_db) == before
    # failed_keep=1: the older set-aside database went, the newer stays
    assert half["removed"] == [failed]
    assert names(pg_cluster, app_db) == {app_db, failed2}

    # The snapshot dropped since: the swap changes nothing and says to restore the dump.
    third = ok(run_module("pg_snapshot", {"db": db, "run_id": "run3"}))["snapshot"]
    dropped = ok(run_module("pg_snapshot", {"db": db, "state": "absent", "name": third["name"]}))
    assert dropped["removed"] == [third["name"]]
    gone = ok(run_module("pg_snapshot", {"db": db, "state": "swapped", "expect": third}))
    assert (gone["method"], gone["changed"]) == ("dump", False)
    assert "gone" in gone["reason"]
    info = ok(run_module("pg_snapshot", {"db": db, "state": "planned", "expect": third}))
    assert info["method"] == "dump"


def test_changed_snapshot_fails_verification(pg_cluster: PgCluster, app_db: str) -> None:
    db = db_arg(pg_cluster, app_db)
    record = ok(run_module("pg_snapshot", {"db": db, "run_id": "v"}))["snapshot"]
    pg_cluster.psql(f'ALTER DATABASE "{record["name"]}" ALLOW_CONNECTIONS true')
    grow = "INSERT INTO orders (total) SELECT 1 FROM generate_series(1, 500)"
    pg_cluster.psql(grow, record["name"])
    result = ok(run_module("pg_snapshot", {"db": db, "state": "swapped", "expect": record}))
    assert (result["method"], result["changed"]) == ("dump", False)
    assert "failed verification" in result["reason"]
    assert names(pg_cluster, app_db) == {app_db, record["name"]}  # nothing renamed


def test_swap_ends_sessions_where_the_environment_allows(
    pg_cluster: PgCluster, app_db: str
) -> None:
    """The environment is compared as everywhere else (case and spaces aside): a session left
    open on the database is ended for the swap in " Staging ", not waited for until it fails."""
    db = db_arg(pg_cluster, app_db)
    record = ok(run_module("pg_snapshot", {"db": db, "run_id": "busy"}))["snapshot"]
    swap_args = {
        "db": db,
        "state": "swapped",
        "expect": record,
        "environment": " Staging ",
        "busy_timeout": 3.0,
    }
    with psycopg.connect(pg_cluster.dsn(app_db), autocommit=True) as session:
        session.execute("SELECT 1")
        swapped = ok(run_module("pg_snapshot", swap_args))
    assert swapped["method"] == "snapshot"
    assert swapped["swap"]["sessions_ended"] >= 1
    assert swapped["swap"]["found"] == "ready"


def test_setting_values_are_neither_returned_nor_recorded(
    pg_cluster: PgCluster, app_db: str
) -> None:
    """A database setting can hold a secret (PostgREST's `app.jwt_secret`): the record and the
    swap's result name it without its value, and the swap still brings the value back."""
    secret = "s3cret-" + unique_name("v")
    pg_cluster.psql(f"ALTER DATABASE {app_db} SET app.jwt_secret = '{secret}'")
    before = props(pg_cluster, app_db)
    db = db_arg(pg_cluster, app_db)
    made = ok(run_module("pg_snapshot", {"db": db, "run_id": "sec"}))
    pg_cluster.psql(f"ALTER DATABASE {app_db} SET app.jwt_secret = 'release-two'")
    swapped = ok(
        run_module("pg_snapshot", {"db": db, "state": "swapped", "expect": made["snapshot"]})
    )
    assert swapped["method"] == "snapshot"
    assert props(pg_cluster, app_db) == before  # the value is back
    assert swapped["properties"]["differ"] == []
    for result in (made, swapped):
        assert secret not in json.dumps(result)
    assert "app.jwt_secret" in json.dumps(made["snapshot"]["properties"]["settings"])


def test_retention_names_and_disk(pg_cluster: PgCluster, app_db: str) -> None:
    db = db_arg(pg_cluster, app_db)
    for run in ("r1", "r2", "r3"):
        ok(run_module("pg_snapshot", {"db": db, "run_id": run, "keep": 2, "row_counts": "none"}))
    assert names(pg_cluster, app_db) == {app_db, *(derived_name(app_db, r) for r in ("r2", "r3"))}
    protected = ok(
        run_module(
            "pg_snapshot",
            {"db": db, "run_id": "r4", "keep": 1, "protect": [derived_name(app_db, "r2")]},
        )
    )
    assert protected["removed"] == [derived_name(app_db, "r3")]

    # A user database with a snapshot's name is neither taken over nor dropped.
    taken = derived_name(app_db, "r5")
    pg_cluster.create_database(taken)
    refused = run_module("pg_snapshot", {"db": db, "run_id": "r5"})
    assert refused["failed"] is True
    assert "is not a stagegate snapshot" in refused["msg"]
    refused = run_module("pg_snapshot", {"db": db, "state": "absent", "name": taken})
    assert refused["failed"] is True
    assert taken in names(pg_cluster, app_db)
    kept = ok(run_module("pg_snapshot", {"db": db, "run_id": "r6", "keep": 1}))
    assert taken not in kept["removed"]

    short = run_module("pg_snapshot", {"db": db, "run_id": "r7", "free_reserve_mb": 10**9})
    assert short["failed"] is True
    assert "not enough free disk" in short["msg"]
    assert derived_name(app_db, "r7") not in names(pg_cluster, app_db)


def test_names_fit_and_never_collide() -> None:
    long = "a" * 60
    one, two = derived_name(long, "run-1"), derived_name(long, "run-2")
    assert one != two
    assert len(one.encode()) <= 63
    assert derived_name(long, "run-1", "failed").count("_stagegate_failed_") == 1
    assert derived_name("app", "r1") == "app_stagegate_r1"
    assert derived_name("app", "r1", "failed") == "app_stagegate_failed_r1"


def test_list_settings_are_split_as_pg_dump_does() -> None:
    assert split_guc_list('"$user", public, "Odd, schema"') == ["$user", "public", "Odd, schema"]
    assert split_guc_list('"a""b"') == ['a"b']


def test_estimates_come_from_the_ledger() -> None:
    records: list[dict[str, Any]] = [
        {"release": "v2", "verdict": "GO"},
        {"kind": "rollback", "database": {"method": "snapshot", "seconds": 0.5}},
        {"kind": "rollback", "database": {"method": "snapshot", "seconds": 0.7}},
    ]
    out = estimate(records, backup_bytes=10_000_000, dump_seconds=4.0)
    assert out["snapshot"]["seconds"] == 0.6
    assert out["dump"]["seconds"] == 4.0
    assert "as long as the dump took" in out["dump"]["basis"]
    records.append(
        {"kind": "rollback", "database": {"method": "dump", "seconds": 2.0, "bytes": 20_000_000}}
    )
    # one small restore: its time is mostly fixed cost, not a throughput to scale (a trial's
    # 9 MB came out "~960 s" from 4 KB restores); at least it, and the dump's own time
    one = estimate(records, backup_bytes=10_000_000, dump_seconds=4.0)["dump"]
    assert one["seconds"] == 4.0
    assert one["basis"].startswith("at least 4 s: the quickest of 1 dump rollback(s)")
    records.append(
        {"kind": "rollback", "database": {"method": "dump", "seconds": 12.0, "bytes": 100_000_000}}
    )
    # 2 s fixed + 10 MB at the 10 MB/s the bigger restore showed beyond it
    assert estimate(records, backup_bytes=10_000_000, dump_seconds=4.0)["dump"]["seconds"] == 3.0
    assert estimate([], backup_bytes=None, dump_seconds=None) == {"snapshot": None, "dump": None}
