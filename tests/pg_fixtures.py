"""Fixtures for the pg_* module tests: run a module for real, databases with data."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO_ROOT, PgCluster, unique_name

MODULES = REPO_ROOT / "plugins" / "modules"


def run_module(name: str, args: dict[str, Any], check_mode: bool = False, tmp: Path | None = None) -> dict[str, Any]:
    """Run plugins/modules/<name>.py as Ansible runs it (its own process, JSON args file)."""
    payload = {"ANSIBLE_MODULE_ARGS": {**args, "_ansible_check_mode": check_mode}}
    args_file = (tmp or Path("/tmp")) / f"{unique_name('args')}.json"
    args_file.write_text(json.dumps(payload))
    try:
        proc = subprocess.run(
            [sys.executable, str(MODULES / f"{name}.py"), str(args_file)],
            capture_output=True, text=True, check=False, timeout=300,
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


@pytest.fixture
def sample_db(pg_cluster: PgCluster) -> Iterator[str]:
    """A database with two tables (200 and 1000 rows), an index and a view."""
    name = pg_cluster.create_database()
    pg_cluster.psql(SAMPLE_SCHEMA, name)
    try:
        yield name
    finally:
        pg_cluster.drop_database(name)
