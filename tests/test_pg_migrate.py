"""pg_migrate on a real PostgreSQL 15 server: SQL files in order, tracking, errors, Alembic."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import psycopg
import pytest
from conftest import PgCluster
from pg_fixtures import db_arg, run_module

INDEXES = """
-- 006: composite indexes (seed 002 style)
CREATE INDEX idx_orders_customer_created ON orders (customer_id, created_at);
CREATE INDEX idx_customers_name ON customers (name);
"""
VIEWS = """
CREATE VIEW v_customer_orders AS
  SELECT c.id, c.name, count(o.id) AS orders
  FROM customers c LEFT JOIN orders o ON o.customer_id = c.id
  GROUP BY c.id, c.name;
"""
CONCURRENT = """-- stagegate: no-transaction
CREATE INDEX CONCURRENTLY idx_orders_total ON orders (total);
"""


def write_migrations(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(textwrap.dedent(text))
    return directory


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


ALEMBIC_ENV = """
import os
from alembic import context
from sqlalchemy import create_engine

url = os.environ["DATABASE_URL"]
if context.is_offline_mode():
    context.configure(url=url, literal_binds=True, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()
else:
    with create_engine(url).connect() as connection:
        context.configure(connection=connection, target_metadata=None)
        with context.begin_transaction():
            context.run_migrations()
"""
ALEMBIC_REVISION = """
from alembic import op
revision = "{rev}"
down_revision = {down}
branch_labels = None
depends_on = None

def upgrade():
    op.execute("{sql}")

def downgrade():
    pass
"""


@pytest.fixture
def alembic_project(tmp_path: Path) -> Path:
    root = tmp_path / "alembic"
    (root / "versions").mkdir(parents=True)
    (root / "alembic.ini").write_text("[alembic]\nscript_location = .\n")
    (root / "env.py").write_text(ALEMBIC_ENV)
    (root / "script.py.mako").write_text("")
    (root / "versions" / "a1.py").write_text(
        ALEMBIC_REVISION.format(rev="a1", down="None", sql="CREATE TABLE alembic_made (id int)")
    )
    (root / "versions" / "b2.py").write_text(
        ALEMBIC_REVISION.format(
            rev="b2", down='"a1"', sql="CREATE INDEX idx_alembic ON alembic_made (id)"
        )
    )
    return root / "alembic.ini"


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
