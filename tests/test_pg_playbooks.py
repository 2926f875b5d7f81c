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
from pg_fixtures import INDEXES, count_scratch, db_arg, write_migrations

VENV_BIN = Path(sys.executable).parent
MODULES = [
    "pg_archive_info",
    "pg_backup",
    "pg_clone",
    "pg_migrate",
    "pg_migrate_dryrun",
    "pg_restore",
]


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
    assert "check_mode" in proc.stdout
    assert "EXAMPLES" in proc.stdout


@pytest.mark.slow
def test_ladders_through_ansible_playbook(
    quiet_cluster: PgCluster, quiet_db: str, tmp_path: Path
) -> None:
    # The backup ladder expects its second backup to be reused: that needs a cluster where
    # nothing commits beside the ladder (autovacuum's ANALYZE would make reuse unprovable).
    pg_cluster, sample_db = quiet_cluster, quiet_db
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
        pg_cluster.psql(f"SELECT count(*) FROM pg_database WHERE datname LIKE '{sample_db}_%'")  # noqa: S608
        == "0"
    )


def start_sandbox_postgres(stack: Any) -> None:
    """v1's postgres, healthy. On a heavily loaded machine the first health probes can run
    out before initdb is done (`up --wait` fails while the server keeps starting): wait again."""
    try:
        stack.up("v1", "postgres")
    except subprocess.CalledProcessError as exc:
        retry = stack.compose("up", "--detach", "--wait", "postgres", check=False)
        if retry.returncode != 0:
            pytest.fail(f"sandbox postgres did not start: {exc.stderr}\n{retry.stderr}")


def backup_playbook(stack: Any, run_id: str, running: str = "v2") -> tuple[Any, Path]:
    """backup.yml (the inventory's stagegate_release: v2) as run `run_id`: its archive is named
    by the run and the release that `running` says runs, and the deploy lock was taken and
    released again."""
    from sandbox_fixtures import run_playbook  # noqa: PLC0415 - beside the sandbox imports

    run = run_playbook(
        "backup.yml", stack.extra_vars(stagegate_release="v2", stagegate_run_id=run_id)
    )
    assert run.rc == 0, run.output[-4000:]
    manifest = stack.state_dir / "backups" / f"app-{running}-{run_id}.dump.manifest.json"
    assert json.loads(manifest.read_text())["run_id"] == run_id
    assert json.loads(manifest.read_text())["release"] == running
    # the fact the release manifest records (stagegate_backup) names this run's archive
    assert f"Backup {manifest.parent}/app-{running}-{run_id}.dump" in " ".join(run.output.split())
    assert "Take the deploy lock" in run.output
    assert not (stack.state_dir / "lock.json").exists()
    return run, manifest


def backup_names_the_release_that_runs(stack: Any) -> None:
    """The checkout's marker names the release that runs: backup.yml names the archive after
    it, not after the inventory's stagegate_release (a trial's restore plan said "release v1"
    of a dump of v2's database)."""
    marker = stack.project_dir / ".stagegate-release"
    marker.write_text("v1\n")
    stack.compose(  # a change since the last backup, which is not reused then
        "exec", "-T", "postgres", "psql", "-U", "app", "-d", "app", "-c",
        "INSERT INTO items (name) VALUES ('written before run-c')",
    )  # fmt: skip
    try:
        backup_playbook(stack, "run-c", running="v1")
    finally:
        marker.unlink()


@pytest.mark.slow
@pytest.mark.docker
def test_sandbox_backup_and_dryrun_playbooks(sandbox_stack: Any) -> None:
    """backup.yml and migrate_dryrun.yml on an isolated sandbox, pg_dump through docker exec."""
    from pg_fixtures import run_module  # noqa: PLC0415 - beside the sandbox imports below
    from sandbox_fixtures import run_playbook, sandbox_secrets  # noqa: PLC0415

    password = sandbox_secrets()["sandbox_db_password"]
    start_sandbox_postgres(sandbox_stack)
    db = {
        "host": "127.0.0.1",
        "port": sandbox_stack.pg_port,
        "name": "app",
        "user": "app",
        "password": password,
    }
    migrations = str(sandbox_stack.project_dir / "migrations")
    applied = run_module("pg_migrate", {"db": db, "migrations_dir": migrations})
    assert applied.get("failed") is not True, applied
    sandbox_stack.checkout("v2")
    before = run_module("pg_migrate", {"db": db, "migrations_dir": migrations}, check_mode=True)
    assert before["pending"] == ["006_composite_indexes.sql", "007_reporting_views.sql"]

    dryrun = run_playbook("migrate_dryrun.yml", sandbox_stack.extra_vars(stagegate_release="v2"))
    assert dryrun.rc == 0, dryrun.output[-4000:]
    assert "Migration dry-run PASS: 2 pending" in dryrun.output
    # the checkout holds no marker: v2's files are read from the repository, and it says so
    assert "Dry-run of v2's migrations in /" in dryrun.output
    assert "/release/migrations on a copy of the database" in dryrun.output
    backup, manifest_path = backup_playbook(sandbox_stack, "run-a")
    manifest = json.loads(manifest_path.read_text())
    assert manifest["verified"] is True
    assert "public.items" in manifest["tables"]
    restored = run_module(
        "pg_restore",
        {"db": {**db, "container": "postgres"}, "compose_project": sandbox_stack.project,
         "backup": str(manifest_path.with_suffix("").with_suffix("")), "name": "app_restored"},
    )  # fmt: skip
    assert restored.get("failed") is not True, (restored["msg"], restored.get("stderr"))
    assert restored["verification"]["mismatched"] == {}
    run_module("pg_clone", {"db": db, "name": "app_restored", "state": "absent"})
    # the restore committed (as a rollback's would): the next run's backup is its own, never
    # the earlier one (issue 12 item 4: a re-promotion after a rollback reused an old backup)
    again, _ = backup_playbook(sandbox_stack, "run-b")
    assert "reused" not in again.output

    # a directory-format dump made in parallel inside the container, restored in parallel there
    in_container = {"db": {**db, "container": "postgres"}, "compose_project": sandbox_stack.project}
    directory = run_module(
        "pg_backup",
        {**in_container, "backup_dir": str(sandbox_stack.state_dir / "backups"),
         "name": "app-dir", "format": "directory", "jobs": 2, "verify": "restore"},
    )  # fmt: skip
    assert directory.get("failed") is not True, (directory["msg"], directory.get("stderr"))
    assert (Path(directory["path"]) / "toc.dat").exists()
    assert directory["manifest"]["verification"]["level"] == "restore"
    from_dir = run_module(
        "pg_restore", {**in_container, "backup": directory["path"], "name": "app_dir", "jobs": 2}
    )
    assert from_dir.get("failed") is not True, (from_dir["msg"], from_dir.get("stderr"))
    assert from_dir["verification"]["mismatched"] == {}
    assert (
        from_dir["verification"]["rows"]["public.items"]
        == manifest["tables"]["public.items"]["rows"]
    )
    run_module("pg_clone", {"db": db, "name": "app_dir", "state": "absent"})

    sandbox_stack.checkout("v2-broken-migration")
    broken = run_playbook(
        "migrate_dryrun.yml", sandbox_stack.extra_vars(stagegate_release="v2-broken-migration")
    )
    assert broken.rc != 0
    assert "008_item_owners.sql" in broken.output
    assert "42P01" in broken.output
    assert password not in dryrun.output + backup.output + broken.output
    after = run_module("pg_migrate", {"db": db, "migrations_dir": migrations}, check_mode=True)
    assert after["pending"] == [*before["pending"], "008_item_owners.sql"]  # staging untouched
    leftover = run_module(
        "pg_clone",
        {"db": db, "name": "unused", "state": "absent", "drop_prefix": "stagegate_"},
        check_mode=True,
    )
    assert leftover["leftovers"] == []
    backup_names_the_release_that_runs(sandbox_stack)
