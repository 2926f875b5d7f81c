"""The pg_* modules through real `ansible-playbook`: ladders, ansible-doc, the sandbox playbooks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO_ROOT, PgCluster
from pg_fixtures import count_scratch, db_arg
from test_pg_migrate import INDEXES, write_migrations

VENV_BIN = Path(sys.executable).parent
MODULES = ["pg_backup", "pg_clone", "pg_migrate", "pg_migrate_dryrun", "pg_restore"]


def ansible_env() -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
    }


def playbook(
    path: Path, extra_vars: dict[str, Any], *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), str(path), "-i", "localhost,", "-c", "local",
         "-e", json.dumps({"ansible_python_interpreter": sys.executable, **extra_vars}), *args],
        cwd=REPO_ROOT, env=ansible_env(), capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc(module: str) -> None:
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-doc"), f"stagegate.release.{module}"],
        env=ansible_env(), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "check_mode" in proc.stdout and "EXAMPLES" in proc.stdout


@pytest.mark.slow
def test_ladders_through_ansible_playbook(
    pg_cluster: PgCluster, sample_db: str, tmp_path: Path
) -> None:
    write_migrations(
        tmp_path / "migrations", {"001_idx.sql": "CREATE INDEX idx_ladder ON orders (total);"}
    )
    write_migrations(tmp_path / "dryrun", {"101_dry.sql": INDEXES})
    server = {k: v for k, v in db_arg(pg_cluster, sample_db).items() if k != "name"}
    proc = playbook(
        REPO_ROOT / "tests" / "playbooks" / "pg_ladder.yml",
        {"ladder_server": server, "ladder_db": sample_db, "ladder_dir": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "failed=0" in proc.stdout
    assert count_scratch(pg_cluster) == 0
    assert (
        pg_cluster.psql(f"SELECT count(*) FROM pg_database WHERE datname LIKE '{sample_db}_%'")
        == "0"
    )
