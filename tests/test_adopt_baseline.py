"""release_adopt on a real PostgreSQL cluster, run as Ansible runs a module: what runs (fresh,
unmanaged, managed) and the migration baseline (schema check, an existing tracking table read and
never written, a half-applied migration refused)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import PgCluster, unique_name
from pg_fixtures import db_arg, run_module

MIGRATIONS = {
    "001_accounts.sql": "CREATE TABLE accounts (id serial PRIMARY KEY, name text);\n"
    "CREATE INDEX idx_accounts_name ON accounts (name);\n",
    "002_accounts_email.sql": "ALTER TABLE accounts ADD COLUMN email text;\n",
    "003_seed.sql": "INSERT INTO accounts (name) VALUES ('admin');\n",
    "004_audit.sql": "CREATE TABLE audit (id serial PRIMARY KEY);\n"
    "CREATE VIEW v_audit AS SELECT id FROM audit;\n",
}


@pytest.fixture
def hand_deployed(pg_cluster: PgCluster, tmp_path: Path) -> tuple[str, Path]:
    """A database with 001-003 applied by hand (psql, no tracking table); 004 is new."""
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    for name, text in MIGRATIONS.items():
        (migrations / name).write_text(text)
    name = pg_cluster.create_database()
    for applied in list(MIGRATIONS)[:3]:
        pg_cluster.psql(MIGRATIONS[applied], name)
    return name, migrations


def test_baseline_checks_the_schema_and_records_the_applied_files(
    pg_cluster: PgCluster, hand_deployed: tuple[str, Path]
) -> None:
    name, migrations = hand_deployed
    args = {"step": "baseline", "db": db_arg(pg_cluster, name), "migrations_dir": str(migrations)}

    planned = run_module("release_adopt", args, check_mode=True)
    assert planned["changed"], planned
    assert planned["applied"] == ["001_accounts.sql", "002_accounts_email.sql", "003_seed.sql"]
    assert planned["pending"] == ["004_audit.sql"]
    evidence = {m["filename"]: m["evidence"] for m in planned["migrations"]}
    assert evidence["001_accounts.sql"] == "verified: accounts, idx_accounts_name"
    assert evidence["002_accounts_email.sql"] == "verified: accounts.email"
    assert evidence["003_seed.sql"].startswith("assumed")
    assert evidence["004_audit.sql"] == "the schema has none of audit, v_audit"
    # check mode wrote nothing
    assert pg_cluster.psql("SELECT to_regclass('stagegate_schema_migrations')", name) == ""

    done = run_module("release_adopt", args)
    assert (done["changed"], done["applied"]) == (True, planned["applied"])
    rows = pg_cluster.psql("SELECT version FROM stagegate_schema_migrations ORDER BY 1", name)
    assert rows.split() == ["001_accounts", "002_accounts_email", "003_seed"]

    again = run_module("release_adopt", args)
    assert not again["changed"]
    assert again["source"] == "existing tracking table (read, not written)"
    assert again["pending"] == ["004_audit.sql"]


def test_an_existing_tracking_table_is_read_not_replaced(
    pg_cluster: PgCluster, hand_deployed: tuple[str, Path]
) -> None:
    name, migrations = hand_deployed
    # a Rails-style table that lists versions by number
    pg_cluster.psql(
        "CREATE TABLE schema_migrations (version varchar PRIMARY KEY);"
        "INSERT INTO schema_migrations VALUES ('001'), ('002'), ('003');",
        name,
    )
    args = {
        "step": "baseline",
        "db": db_arg(pg_cluster, name),
        "migrations_dir": str(migrations),
        "tracking_table": "public.schema_migrations",
    }
    result = run_module("release_adopt", args)
    assert not result["changed"], result
    assert result["source"] == "existing tracking table (read, not written)"
    assert result["pending"] == ["004_audit.sql"]
    assert pg_cluster.psql("SELECT count(*) FROM schema_migrations", name) == "3"
    assert pg_cluster.psql("SELECT to_regclass('stagegate_schema_migrations')", name) == ""


def test_a_half_applied_migration_is_refused_naming_what_is_missing(
    pg_cluster: PgCluster, hand_deployed: tuple[str, Path]
) -> None:
    name, migrations = hand_deployed
    pg_cluster.psql("CREATE TABLE audit (id serial PRIMARY KEY);", name)  # no v_audit
    args = {"step": "baseline", "db": db_arg(pg_cluster, name), "migrations_dir": str(migrations)}
    result = run_module("release_adopt", args)
    assert result.get("failed"), result
    assert "004_audit.sql (present: audit; missing: v_audit)" in result["msg"]
    assert pg_cluster.psql("SELECT to_regclass('stagegate_schema_migrations')", name) == ""


@pytest.mark.docker
def test_inspect_tells_fresh_unmanaged_and_managed_apart(
    pg_cluster: PgCluster, hand_deployed: tuple[str, Path], tmp_path: Path
) -> None:
    name, _ = hand_deployed
    project_dir = tmp_path / "checkout"
    project_dir.mkdir()
    base = {
        "step": "inspect",
        "project_dir": str(project_dir),
        "compose_project": unique_name("sgt-none"),  # no container runs for it
        "inventory": "inventory/staging",
    }

    refused = run_module("release_adopt", {**base, "db": db_arg(pg_cluster, name)})
    assert refused.get("failed"), refused
    assert refused["status"] == "unmanaged"
    assert f"database {name!r} holds 1 table(s)" in refused["msg"]
    assert (
        "ansible-playbook playbooks/adopt.yml -i inventory/staging "
        "-e stagegate_adopt_release=<the tag that runs>" in refused["msg"]
    )

    adopting = run_module(
        "release_adopt", {**base, "db": db_arg(pg_cluster, name), "adopt_release": "v1"}
    )
    assert (adopting["status"], adopting["adopt"]) == ("unmanaged", True)

    empty = pg_cluster.create_database()
    fresh = run_module("release_adopt", {**base, "db": db_arg(pg_cluster, empty)})
    assert (fresh["status"], fresh["first_deploy"], fresh["adopt"]) == ("fresh", True, False)
    absent = run_module("release_adopt", {**base, "db": db_arg(pg_cluster, "no_such_db")})
    assert absent["first_deploy"]
    assert not absent["database"]["reachable"]
    nothing = run_module(
        "release_adopt", {**base, "db": db_arg(pg_cluster, empty), "adopt_release": "v1"}
    )
    assert "nothing runs to adopt" in nothing["msg"]

    (project_dir / ".stagegate-release").write_text("v2\n")
    managed = run_module("release_adopt", {**base, "db": db_arg(pg_cluster, name)})
    assert (managed["status"], managed["marker"], managed["adopt"]) == ("managed", "v2", False)
    other = run_module(
        "release_adopt", {**base, "db": db_arg(pg_cluster, name), "adopt_release": "v1"}
    )
    assert "stagegate deployed this environment already" in other["msg"]


def test_ledger_list_shows_the_record_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from stagegate import ledger  # noqa: PLC0415
    from stagegate.cli import main as cli_main  # noqa: PLC0415

    path = ledger.ledger_path(tmp_path)
    ledger.append(path, {"release": "v1", "verdict": "ADOPTED", "kind": "adopt"})
    ledger.append(path, {"release": "v2", "verdict": "GO"})
    ledger.append(path, {"release": "v1", "verdict": "GO", "kind": "rollback"})
    assert cli_main(["ledger", "list", "--state-dir", str(tmp_path)]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    column = header.split().index("kind")
    assert [row.split()[column] for row in rows] == ["adopt", "promote", "rollback"]
