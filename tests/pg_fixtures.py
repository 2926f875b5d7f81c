"""Fixtures for the pg_* module tests: run a module for real, databases with data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO_ROOT, PgCluster, start_pg_cluster, stop_pg_cluster, unique_name

MODULES = REPO_ROOT / "plugins" / "modules"

# Migrations the pg_migrate, pg_migrate_dryrun and playbook tests share.
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
CORPUS = REPO_ROOT / "tests" / "fixtures" / "migrations_corpus"
# Statements each corpus file sends; 006's own BEGIN/COMMIT wrap is its transaction, not sent.
CORPUS_STATEMENTS = {
    "001_accounts.sql": 5,
    "002_functions.sql": 5,
    "003_sql_standard_bodies.sql": 3,
    "004_seed_copy.sql": 4,
    "005_concurrent_indexes.sql": 3,
    "006_account_flags.sql": 2,
    "007_plan_rules.sql": 3,
}


def write_migrations(directory: Path, files: dict[str, str]) -> Path:
    """`files` (name: SQL, dedented) written into `directory`, made when missing."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(textwrap.dedent(text))
    return directory


def module_env() -> dict[str, str]:
    """The environment a module process needs outside Ansible: the collection's module_utils
    importable as `ansible_collections.stagegate.release...` (Ansible's payload carries them)."""
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT / "collections")}


def run_module(
    name: str, args: dict[str, Any], check_mode: bool = False, tmp: Path | None = None
) -> dict[str, Any]:
    """Run plugins/modules/<name>.py as Ansible runs it (its own process, JSON args file; the
    collection's module_utils importable, as Ansible's module payload makes them)."""
    payload = {"ANSIBLE_MODULE_ARGS": {**args, "_ansible_check_mode": check_mode}}
    args_file = (tmp or Path("/tmp")) / f"{unique_name('args')}.json"
    args_file.write_text(json.dumps(payload))
    try:
        proc = subprocess.run(
            [sys.executable, str(MODULES / f"{name}.py"), str(args_file)],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
            env=module_env(),
        )
    finally:
        args_file.unlink()
    try:
        result: dict[str, Any] = json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"{name} printed no JSON (rc={proc.returncode}): {proc.stdout}\n{proc.stderr}")
    return result


def db_arg(cluster: PgCluster, name: str, **extra: Any) -> dict[str, Any]:
    return {"host": cluster.host, "port": cluster.port, "name": name, "user": cluster.user, **extra}


SAMPLE_SCHEMA = """
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text UNIQUE);
CREATE TABLE orders (id serial PRIMARY KEY, customer_id int REFERENCES customers(id),
                     total numeric(10,2), created_at timestamptz DEFAULT now());
INSERT INTO customers (name, email) SELECT 'c' || g, 'c' || g || '@example.invalid'
  FROM generate_series(1, 200) g;
INSERT INTO orders (customer_id, total) SELECT 1 + g % 200, g FROM generate_series(1, 1000) g;
CREATE VIEW v_order_totals AS SELECT customer_id, sum(total) AS total FROM orders GROUP BY 1;
ANALYZE;
"""


@contextmanager
def sample_database(cluster: PgCluster) -> Iterator[str]:
    """A database with two tables (200 and 1000 rows), an index and a view; dropped after."""
    name = cluster.create_database()
    cluster.psql(SAMPLE_SCHEMA, name)
    try:
        yield name
    finally:
        cluster.drop_database(name)


@pytest.fixture
def sample_db(pg_cluster: PgCluster) -> Iterator[str]:
    """The sample database on the session cluster."""
    with sample_database(pg_cluster) as name:
        yield name


def count_scratch(cluster: PgCluster, prefix: str = "stagegate_") -> int:
    """Databases a pg_* module created as scratch (verify/dry-run copies) still present."""
    query = f"SELECT count(*) FROM pg_database WHERE datname LIKE '{prefix}%'"  # noqa: S608 - test-made prefix
    return int(cluster.psql(query))


def fingerprint(cluster: PgCluster, dbname: str) -> tuple[str, str]:
    """Schema (pg_dump --schema-only) and per-table exact row counts of a database."""
    schema = subprocess.run(
        [str(cluster.bindir / "pg_dump"), "--schema-only", "-d", cluster.dsn(dbname)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # pg_dump 15.14+ brackets the script with \restrict/\unrestrict and a random key per run
    schema = "\n".join(
        line for line in schema.splitlines() if not line.startswith(("\\restrict", "\\unrestrict"))
    )
    counts = cluster.psql(
        "SELECT string_agg(t, ',' ORDER BY t) FROM (SELECT table_name || '=' || "
        "(xpath('/row/c/text()', query_to_xml('SELECT count(*) AS c FROM ' || "
        "quote_ident(table_schema) || '.' || quote_ident(table_name), false, true, '')))[1]::text "
        "AS t FROM information_schema.tables "
        "WHERE table_schema = 'public' AND table_type = 'BASE TABLE') s",
        dbname,
    )
    return schema, counts


@pytest.fixture(scope="module")
def password_cluster() -> Iterator[PgCluster]:
    """A cluster of its own with scram-sha-256 on TCP and a role `app` (password `s3cret-pw`)."""
    cluster = start_pg_cluster()
    try:
        cluster.psql("CREATE ROLE app LOGIN CREATEDB PASSWORD 's3cret-pw'")
        hba = cluster.datadir / "pg_hba.conf"
        hba.write_text(
            "local all all trust\nhost all postgres 127.0.0.1/32 trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
        )
        cluster.pg_ctl("reload")
        yield cluster
    finally:
        stop_pg_cluster(cluster)


@pytest.fixture(scope="module")
def quiet_cluster() -> Iterator[PgCluster]:
    """A cluster of its own without autovacuum: nothing commits unless a test does, so whether
    a backup is provably of the current database state is decided by the test alone."""
    cluster = start_pg_cluster({"autovacuum": "off"})
    try:
        yield cluster
    finally:
        stop_pg_cluster(cluster)


@pytest.fixture
def quiet_db(quiet_cluster: PgCluster) -> Iterator[str]:
    """The sample database on the quiet cluster (no autovacuum commits beside the test's)."""
    with sample_database(quiet_cluster) as name:
        yield name


def backup_dir_entries(directory: Path) -> list[str]:
    """Names in a backup directory, less the directory's lock file (it stays, by design)."""
    return sorted(p.name for p in directory.iterdir() if p.name != ".stagegate-backup.lock")


# An Alembic project (alembic.ini, env.py reading the URL from DATABASE_URL, revisions a1 and
# b2 with real downgrade()s) for the migration and dry-run tests.
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
    op.execute("{down_sql}")
"""


@pytest.fixture
def alembic_project(tmp_path: Path) -> Path:
    root = tmp_path / "alembic"
    (root / "versions").mkdir(parents=True)
    (root / "alembic.ini").write_text("[alembic]\nscript_location = .\n")
    (root / "env.py").write_text(ALEMBIC_ENV)
    (root / "script.py.mako").write_text("")
    (root / "versions" / "a1.py").write_text(
        ALEMBIC_REVISION.format(
            rev="a1",
            down="None",
            sql="CREATE TABLE alembic_made (id int)",
            down_sql="DROP TABLE alembic_made",
        )
    )
    (root / "versions" / "b2.py").write_text(
        ALEMBIC_REVISION.format(
            rev="b2",
            down='"a1"',
            sql="CREATE INDEX idx_alembic ON alembic_made (id)",
            down_sql="DROP INDEX idx_alembic",
        )
    )
    return root / "alembic.ini"
