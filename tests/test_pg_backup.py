"""pg_backup on a real PostgreSQL 15 server: verified dumps, faults, retention."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import PgCluster
from pg_fixtures import db_arg, run_module


def test_backup_verified_with_manifest_and_idempotent(pg_cluster: PgCluster, sample_db: str, tmp_path: Path) -> None:
    args = {"db": db_arg(pg_cluster, sample_db), "backup_dir": str(tmp_path), "release": "v1", "verify": "restore"}
    first = run_module("pg_backup", args)
    assert first.get("failed") is not True, first
    assert first["changed"] is True
    manifest = json.loads(Path(first["manifest_path"]).read_text())
    assert manifest["verified"] is True
    assert manifest["verification"]["level"] == "restore"
    assert manifest["tables"]["public.orders"]["rows"] == 1000
    assert manifest["tables"]["public.customers"]["rows"] == 200
    assert manifest["server_version"].startswith("15")
    assert len(manifest["sha256"]) == 64
    assert [e["table"] for e in first["progress"]]  # table-by-table progress parsed
    again = run_module("pg_backup", args)
    assert again["changed"] is False
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".stagegate")]
    scratch = pg_cluster.psql("SELECT count(*) FROM pg_database WHERE datname LIKE 'stagegate_verify_%'")
    assert scratch == "0"
