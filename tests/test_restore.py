"""playbooks/restore.yml on one isolated sandbox stack (v1: postgres, redis, api, worker).

A dump made by hand with `pg_dump -Fc` (no manifest: stagegate did not make it) is restored
for real and verified; a garbage file is refused before anything stops; production is
refused without confirmation; `--check` says what it would restore and stop, changing nothing;
with no name the newest archive of the backup dir is restored (through `stagegate restore`,
i.e. ansible-runner as AWX runs it), a newer non-dump passed over.
No secret appears in any output. The steps share the stack (starting it costs ~20 s).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import REPO_ROOT
from rollback_fixtures import playbook_env
from sandbox_fixtures import (
    INVENTORY,
    VENV_BIN,
    PlaybookRun,
    SandboxStack,
    isolated_stack,
    run_playbook,
    sandbox_secrets,
)

from stagegate import ledger

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.timeout(600)]
GOOD = ("GO", "GO_WITH_WARNINGS")  # under load the latency checks may warn


class Restore:
    def __init__(self, stack: SandboxStack) -> None:
        self.stack = stack
        self.password = sandbox_secrets()["sandbox_db_password"]
        self.container = f"{stack.project}-postgres-1"
        self.backups = stack.state_dir / "backups"
        self.runs: list[str] = []
        self.before: list[str] = []
        self.foreign = Path()
        self.vars = stack.extra_vars(
            stagegate_release="v1",
            stagegate_db={
                "host": "127.0.0.1",
                "port": stack.pg_port,
                "name": "app",
                "user": "app",
                "password": self.password,
                "container": self.container,
            },
        )

    def run(self, *args: str, **extra: Any) -> PlaybookRun:
        """restore.yml against this stack; `args` go to ansible-playbook (e.g. --check)."""
        proc = subprocess.run(
            [str(VENV_BIN / "ansible-playbook"), "playbooks/restore.yml", "-i", str(INVENTORY),
             "-e", json.dumps({**self.vars, **extra}), *args],
            cwd=REPO_ROOT, env=playbook_env(), capture_output=True, text=True, check=False,
        )  # fmt: skip
        run = PlaybookRun(proc.returncode, proc.stdout, proc.stderr)
        self.runs.append(run.output)
        return run

    def sql(self, query: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(
            host="127.0.0.1", port=self.stack.pg_port, dbname="app", user="app",
            password=self.password, connect_timeout=10, autocommit=True,
        ) as conn:  # fmt: skip
            cur = conn.execute(query)
            return cur.fetchall() if cur.description else []

    def items(self) -> list[str]:
        return [name for (name,) in self.sql("SELECT name FROM items ORDER BY id")]

    def dump_by_hand(self, dest: Path) -> Path:
        """pg_dump -Fc as a person runs it in the database container: no manifest beside it."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        with dest.open("wb") as out:
            subprocess.run(
                ["docker", "exec", self.container, "pg_dump", "-Fc", "-U", "app", "-d", "app"],
                stdout=out, check=True,
            )  # fmt: skip
        return dest

    def ledger(self) -> list[dict[str, Any]]:
        return ledger.read(ledger.ledger_path(self.stack.state_dir))

    def running(self) -> dict[str, str]:
        return {r["Service"]: r["State"] for r in self.stack.containers()}


ALL_RUNNING = dict.fromkeys(("postgres", "redis", "api", "worker"), "running")


@pytest.fixture(scope="module")
def restore(sandbox_repo: Path) -> Any:
    """v1 running; a dump made by hand (with a row only it has); then the database changed."""
    with isolated_stack(sandbox_repo, "restore") as stack:
        stack.checkout("v1")
        stack.compose("build")
        # under load the database's first health probes can run out before initdb is done;
        # its healthcheck keeps probing, so a later `up --wait` sees it healthy
        deadline = time.monotonic() + 300  # a shared 2-core host under load: minutes
        while time.monotonic() < deadline:
            if stack.compose("up", "--detach", "--wait", check=False).returncode == 0:
                break
            time.sleep(15)
        else:
            stack.compose("up", "--detach", "--wait")
        stack.migrate()
        out = Restore(stack)
        assert out.items(), "the sandbox seeds items"
        out.sql("INSERT INTO items (name) VALUES ('kept-by-the-dump')")
        out.before = out.items()
        out.foreign = out.dump_by_hand(stack.state_dir / "elsewhere" / "by-hand.dump")
        assert not Path(f"{out.foreign}.manifest.json").exists()
        out.sql("DELETE FROM items")
        out.sql("INSERT INTO items (name) VALUES ('written-after-the-dump')")
        yield out
        for run in out.runs:  # every output of the file, and the reports: no secret value
            for value in sandbox_secrets().values():
                assert value not in run
        for report in stack.report_dir.glob("**/restore/report.*"):
            for value in sandbox_secrets().values():
                assert value not in report.read_text()


def stagegate_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "stagegate"), *args],
        cwd=REPO_ROOT, env=playbook_env(), capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_garbage_is_refused_before_anything_stops(restore: Restore) -> None:
    stack = restore.stack
    garbage = stack.state_dir / "elsewhere" / "garbage.dump"
    garbage.write_bytes(b"\x00\x13this is not a dump at all" * 40)
    refused = restore.run(stagegate_restore_from=str(garbage))
    assert refused.rc != 0
    said = " ".join(refused.output.split())
    assert f"{garbage} is not a PostgreSQL dump" in said
    assert "custom format (pg_dump -Fc" in said
    assert "Stop the app tier" not in refused.output
    assert restore.running() == ALL_RUNNING
    assert not (stack.state_dir / "lock.json").exists()
    assert restore.ledger() == []  # refused before the lock: nothing changed, nothing recorded


def test_check_says_what_it_would_restore_and_stop_and_changes_nothing(restore: Restore) -> None:
    planned = restore.run("--check", stagegate_restore_from=str(restore.foreign))
    assert planned.rc == 0, planned.output[-4000:]
    plan = " ".join(planned.stdout.split())
    assert f"Restore: {restore.foreign}" in plan
    assert "not stagegate (no manifest)" in plan
    assert "dumped from database app" in plan
    assert "public.items" in plan
    assert "Stops: api, worker (the database keeps running)" in plan
    assert "Data lost: everything written to app since the dump was taken" in plan
    assert restore.items() == ["written-after-the-dump"]
    assert restore.running() == ALL_RUNNING
    assert restore.ledger() == []  # check mode, like the refusals before it, records nothing


def test_production_is_refused_without_confirmation(restore: Restore) -> None:
    prod = restore.run(stagegate_restore_from=str(restore.foreign), stagegate_environment="PROD")
    assert prod.rc != 0
    assert "stagegate_confirm_production=true" in " ".join(prod.output.split())
    assert restore.items() == ["written-after-the-dump"]
    assert restore.running() == ALL_RUNNING
    assert not (restore.stack.state_dir / "lock.json").exists()
    assert restore.ledger() == []


def test_a_dump_made_by_hand_is_restored_and_verified(restore: Restore) -> None:
    stack = restore.stack
    done = restore.run(stagegate_restore_from=str(restore.foreign))
    assert done.rc == 0, done.output[-5000:]
    assert restore.items() == restore.before
    assert "none missing (checked against the listing)" in " ".join(done.output.split())
    report = json.loads((stack.report_dir / "restore" / "report.json").read_text())
    assert report["verdict"] in GOOD
    assert report["kind"] == "restore"
    assert report["rollback_plan"]["restore"]["path"] == str(restore.foreign)
    assert report["rollback_plan"]["restore"]["made_by_stagegate"] is False
    # the report says what the restore lost, as the plan printed it
    assert report["rollback_plan"]["database"]["data_lost"].startswith(
        "everything written since the dump was taken"
    )
    verification = report["rollback_plan"]["database"]["verification"]
    assert verification["against"] == "listing"
    assert verification["mismatched"] == {}
    assert verification["rows"]["public.items"] == len(restore.before)
    assert restore.running() == ALL_RUNNING
    assert not (stack.state_dir / "lock.json").exists()
    kept = list(stack.state_dir.glob("runs/*/restore/report.json"))
    assert kept

    # The ledger says that the database changed: which dump, who, when and the result.
    [record] = restore.ledger()
    assert record["kind"] == "restore"
    assert record["verdict"] == report["verdict"]
    assert record["restore"]["path"] == str(restore.foreign)
    assert record["restore"]["dumped_from"] == "app"
    assert record["release"] == record["previous"] == "v1"
    assert record["run_by"]
    assert record["started"]
    assert record["finished"]
    assert record["reports"]["report.json"] == str(kept[0])
    listed = stagegate_cli("ledger", "list", "--state-dir", str(stack.state_dir))
    assert listed.returncode == 0, listed.stderr
    [row] = [line for line in listed.stdout.splitlines() if " restore " in line]
    assert " v1 " in row, listed.stdout
    assert record["verdict"] in row, listed.stdout
    # It moved no release: never the baseline a promotion compares with.
    last_good = stagegate_cli("ledger", "last-good", "--state-dir", str(stack.state_dir))
    assert last_good.returncode == 1, last_good.stdout


def test_with_no_name_the_newest_dump_is_restored(restore: Restore) -> None:
    restore.dump_by_hand(restore.backups / "older.dump")
    restore.sql("INSERT INTO items (name) VALUES ('only-in-the-newest')")
    newest = restore.dump_by_hand(restore.backups / "newest.dump")
    (restore.backups / "README.txt").write_text("dumps of the shop database\n")
    restore.sql("DELETE FROM items WHERE name = 'only-in-the-newest'")
    # through the CLI, i.e. ansible-runner as AWX runs it: the outcome from the job's artifacts
    vars_file = restore.stack.state_dir / "vars.json"
    vars_file.write_text(json.dumps(restore.vars))
    proc = subprocess.run(
        [str(VENV_BIN / "stagegate"), "restore", "-i", str(INVENTORY), "-e", f"@{vars_file}",
         "--json"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=900,
        env={**playbook_env(), "STAGEGATE_RUNNER_DIR": str(restore.stack.state_dir / "runner")},
    )  # fmt: skip
    chosen = PlaybookRun(proc.returncode, proc.stdout, proc.stderr)
    restore.runs.append(chosen.output)
    assert chosen.rc == 0, chosen.output[-5000:]
    outcome = json.loads(chosen.stdout)
    assert outcome["verdict"] in GOOD
    job_stdout = Path(outcome["artifact_dir"]) / "stdout"
    restore.runs.append(job_stdout.read_text())
    text = " ".join(job_stdout.read_text().split())
    assert f"Restore: {newest}" in text
    assert f"Passed over: {restore.backups / 'README.txt'}: " in text
    assert "only-in-the-newest" in restore.items()
    # The command's progress: the restore phase once, started and ended with status and time.
    assert chosen.stderr.count("stagegate: phase restore started\n") == 1, chosen.stderr
    assert re.search(r"stagegate: phase restore ok \(\d+\.\d s\)\n", chosen.stderr), chosen.stderr
    assert [r["restore"]["path"] for r in restore.ledger()][-1] == str(newest)


def test_a_stagegate_backup_named_is_verified_against_its_manifest(restore: Restore) -> None:
    backup = run_playbook("backup.yml", {**restore.vars, "stagegate_run_id": "run-b"})
    restore.runs.append(backup.output)
    assert backup.rc == 0, backup.output[-4000:]
    kept = restore.items()
    restore.sql("DELETE FROM items")
    done = restore.run(stagegate_restore_from="app-v1-run-b")  # a name, `.dump` left out
    assert done.rc == 0, done.output[-5000:]
    said = " ".join(done.output.split())
    assert f"Restore: {restore.backups / 'app-v1-run-b.dump'}" in said
    assert "made by stagegate backup, run run-b (release v1), verified" in said
    assert "none missing (checked against the manifest)" in said
    assert restore.items() == kept
