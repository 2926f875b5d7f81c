"""playbooks/rollback.yml against one isolated sandbox stack, in the order of an incident.

The stack is deployed v1 -> v2 with the real modules (tests/playbooks/rollback_deploy.yml), then:
`--check` prints the plan and changes nothing; a rollback over an expired lock is SIGKILLed after
its database step and the re-run (through ansible_runner) finishes it; a second re-run changes
nothing. Then v2-crashloop is deployed on top (NO_GO, it migrated): production refuses without
confirmation, a live lock refuses naming its holder, break-lock proceeds and brings v1 back.
Then v2 again, rolled back by downgrade; and twice more, rollbacks SIGKILLed during the restore
itself and during the tiered start, each finished by a re-run whose report says it resumed.
The tests share the stack (a deploy costs ~20 s) and run in file order.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import ansible_runner
import psycopg
import pytest
from ansible_collections.stagegate.release.plugins.module_utils._rollback import STEPS
from conftest import REPO_ROOT
from psycopg import sql
from sandbox_fixtures import (
    INVENTORY,
    VENV_BIN,
    SandboxStack,
    isolated_stack,
    run_playbook,
    sandbox_secrets,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

V2_OBJECTS = {"v_item_status_summary", "item_events"}
# Under load the sandbox catalog's latency checks may warn; both verdicts verify the rollback.
GOOD = ("GO", "GO_WITH_WARNINGS")


class Rollout:
    """The stack plus the `-e` variables that point inventory/sandbox at it."""

    def __init__(self, stack: SandboxStack) -> None:
        self.stack = stack
        secrets = sandbox_secrets()
        self.password = secrets["sandbox_db_password"]
        self.vars = stack.extra_vars(
            stagegate_db={
                "host": "127.0.0.1",
                "port": stack.pg_port,
                "name": "app",
                "user": "app",
                "password": self.password,
                # the container itself: other sandbox stacks also have a `postgres` service
                "container": f"{stack.project}-postgres-1",
            },
            stagegate_report_dir=str(stack.state_dir / "reports"),
        )

    @property
    def state_dir(self) -> Path:
        return self.stack.state_dir

    def deploy(self, release: str) -> None:
        run = run_playbook(
            "../tests/playbooks/rollback_deploy.yml", {**self.vars, "stagegate_release": release}
        )
        assert run.rc == 0, run.output[-4000:]

    def rollback(self, *args: str, **extra: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.rollback_argv(*args, **extra),
            cwd=REPO_ROOT,
            env=playbook_env(),
            capture_output=True,
            text=True,
            check=False,
        )

    def rollback_argv(self, *args: str, **extra: Any) -> list[str]:
        return [
            str(VENV_BIN / "ansible-playbook"),
            "playbooks/rollback.yml",
            "-i",
            str(INVENTORY),
            "-e",
            json.dumps({**self.vars, **extra}),
            *args,
        ]

    def sql(self, query: str | sql.Composed) -> list[tuple[Any, ...]]:
        with psycopg.connect(
            host="127.0.0.1",
            port=self.stack.pg_port,
            dbname="app",
            user="app",
            password=self.password,
            connect_timeout=10,
        ) as conn:
            return conn.execute(query).fetchall()

    def schema(self) -> set[str]:
        rows = self.sql(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'i', 'm')"
        )
        return {name for (name,) in rows}

    def row_counts(self) -> dict[str, int]:
        tables = self.sql(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'stagegate_schema_migrations'"
        )
        count = sql.SQL("SELECT count(*) FROM {}")
        return {t: self.sql(count.format(sql.Identifier(t)))[0][0] for (t,) in tables}

    def containers(self) -> list[tuple[str, str, str]]:
        out = self.stack.compose("ps", "--all", "--format", "json").stdout
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        return sorted((r["Name"], r["ID"], r["Image"]) for r in rows)

    def images(self) -> list[str]:
        return subprocess.run(
            ["docker", "image", "ls", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}",
             "--filter", f"reference={self.stack.image_prefix}/*"],
            capture_output=True, text=True, check=True,
        ).stdout.split("\n")  # fmt: skip

    def ledger(self) -> list[dict[str, Any]]:
        path = self.state_dir / "ledger.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def rollback_state(self) -> dict[str, Any]:
        path = self.state_dir / "rollback.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def snapshot(self) -> dict[str, Any]:
        return {
            "containers": self.containers(),
            "images": sorted(self.images()),
            "schema": sorted(self.schema()),
            "rows": self.row_counts(),
            "ledger": (self.state_dir / "ledger.jsonl").read_text(),
            "rollback.json": self.rollback_state(),
            "lock": (self.state_dir / "lock.json").exists(),
        }

    def api_version(self) -> str:
        reply = self.stack.wait_for("/version")
        return str(reply.json()["version"])

    def kill_rollback_when(self, moment: Callable[[int], bool], what: str) -> dict[str, Any]:
        """Start rollback.yml, SIGKILL its whole process group the moment `moment(its pid)` is
        true; returns the rollback state the killed run left."""
        proc = subprocess.Popen(
            self.rollback_argv(),
            cwd=REPO_ROOT,
            env=playbook_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 240
            while not moment(proc.pid):
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline, f"the rollback never reached {what}"
                time.sleep(0.02)
            os.killpg(proc.pid, signal.SIGKILL)
        finally:
            proc.communicate()
        interrupted = self.rollback_state()
        assert interrupted["status"] == "in_progress"
        lock = json.loads((self.state_dir / "lock.json").read_text())
        assert lock["run_id"] == interrupted["run_id"], "the killed run still holds the lock"
        return interrupted

    def rerun_as_awx(self, interrupted: dict[str, Any]) -> dict[str, Any]:
        """The re-run through ansible_runner, as AWX runs it: it resumes the interrupted rollback
        (adopting the dead run's lock), converges to the target, and its report says it resumed;
        returns that report."""
        private_data_dir = self.state_dir / f"runner-{interrupted['run_id']}"
        private_data_dir.mkdir()
        runner = ansible_runner.run(
            private_data_dir=str(private_data_dir),
            project_dir=str(REPO_ROOT),
            playbook=str(REPO_ROOT / "playbooks" / "rollback.yml"),
            inventory=str(INVENTORY),
            extravars=self.vars,
            envvars={k: playbook_env()[k] for k in ("ANSIBLE_CONFIG", "PATH")},
            quiet=True,
        )
        stdout = runner.stdout.read()
        assert runner.rc == 0, stdout[-4000:]
        assert "Resuming the rollback " + interrupted["run_id"] in stdout
        finished = self.rollback_state()
        assert finished["status"] == "done"
        assert finished["verdict"] in GOOD
        assert not (self.state_dir / "lock.json").exists()
        report: dict[str, Any] = json.loads((Path(finished["report"]) / "report.json").read_text())
        assert report["verdict"] in GOOD
        resumed = report["rollback_plan"]["resumed"]
        assert resumed["run_id"] == interrupted["run_id"]
        assert resumed["steps_done"] == [s for s in STEPS if s in interrupted["steps_done"]]
        assert "resumed" in (Path(finished["report"]) / "report.md").read_text()
        self.assert_awx_record(runner, interrupted)
        return report

    def assert_awx_record(self, runner: Any, interrupted: dict[str, Any]) -> None:
        """The job's set_stats artifacts name the rollback's outcome, and its reports have a
        durable copy in the state dir that its ledger record points at."""
        stats = next(
            e["event_data"].get("artifact_data") or {}
            for e in runner.events
            if e.get("event") == "playbook_on_stats"
        )
        record = [r for r in self.ledger() if r.get("kind") == "rollback"][-1]
        kept = self.state_dir / "runs" / interrupted["run_id"] / "rollback"
        controller_dir = Path(self.vars["stagegate_report_dir"]) / "rollback"
        assert stats["stagegate_verdict"] == record["verdict"]
        assert stats["stagegate_score"] == record["score"]
        assert stats["stagegate_release"] == record["release"]
        assert stats["stagegate_rolled_back_from"] == record["rolled_back_from"]
        assert stats["stagegate_report"] == str(controller_dir / "report.json")
        assert stats["stagegate_rollback"]["run_id"] == interrupted["run_id"]
        assert stats["stagegate_rollback"]["kept_report_dir"] == str(kept)
        assert record["run_id"] == interrupted["run_id"]
        assert record["report_dir"] == str(kept)
        assert record["controller_report_dir"] == str(controller_dir)
        assert record["reports"]["report.json"] == str(kept / "report.json")
        kept_report = json.loads((kept / "report.json").read_text())
        assert kept_report == json.loads((controller_dir / "report.json").read_text())
        assert {p.name for p in kept.iterdir()} >= {"report.json", "report.md", "junit.xml"}

    def backup_rows(self, release: str) -> dict[str, int]:
        """Row counts the backup taken before `release` recorded (what a restore brings back)."""
        manifest = json.loads((self.state_dir / "releases" / release / "manifest.json").read_text())
        backup = json.loads(Path(manifest["backup"]["manifest_path"]).read_text())
        rows = {name.split(".")[-1]: info["rows"] for name, info in backup["tables"].items()}
        rows.pop("stagegate_schema_migrations", None)
        return rows

    def restoring(self, pid: int) -> bool:
        """pg_restore is filling the database: the `docker exec ... pg_restore --exit-on-error`
        that the run `pid` started (pg_restore's module, after it dropped and re-created the
        database; its `--list` call comes earlier and does not count)."""
        for child in descendants(pid):
            try:
                argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            except OSError:  # gone
                continue
            words = {word.decode(errors="replace") for word in argv}
            if {"exec", "pg_restore", "--exit-on-error"} <= words:
                return True
        return False

    def write_lock(self, owner: str, age: timedelta, ttl: timedelta) -> None:
        now = datetime.now(UTC)
        fmt = "%Y-%m-%dT%H:%M:%SZ"
        record = {
            "owner": owner,
            "run_id": "staging-20261122-dead",
            "acquired_at": (now - age).strftime(fmt),
            "expires_at": (now - age + ttl).strftime(fmt),
            "ttl": int(ttl.total_seconds()),
        }
        (self.state_dir / "lock.json").write_text(json.dumps(record))


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (from /proc/<pid>/task/*/children), nearest first."""
    found, todo = [], [pid]
    while todo:
        for children in Path(f"/proc/{todo.pop(0)}/task").glob("*/children"):
            try:
                kids = [int(k) for k in children.read_text().split()]
            except OSError:
                continue
            found += kids
            todo += kids
    return found


def playbook_env() -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
    }


@pytest.fixture(scope="module")
def rollout(sandbox_repo: Path) -> Iterator[Rollout]:
    with isolated_stack(sandbox_repo, "rollback") as stack:
        out = Rollout(stack)
        out.deploy("v1")
        out.v1_rows = out.row_counts()  # type: ignore[attr-defined]
        out.deploy("v2")
        yield out


def test_check_mode_prints_the_plan_and_changes_nothing(rollout: Rollout) -> None:
    assert rollout.schema() >= V2_OBJECTS, "v2 deployed its migrations"
    before = rollout.snapshot()

    run = rollout.rollback("--check")

    assert run.returncode == 0, run.stdout[-4000:]
    assert "Current release:  v2" in run.stdout
    assert "Rollback target:  v1" in run.stdout
    assert "migrations/007_reporting_views.sql" in run.stdout  # files that differ
    assert "backups/app-before-v2.dump" in run.stdout
    assert "migrations reverted: 006_composite_indexes.sql, 007_reporting_views.sql" in run.stdout
    # Seed 004's estimated rollback time: the dump's own duration for the restore; this module's
    # deploys (tests/playbooks/rollback_deploy.yml) record no phases, so the rest is named.
    assert "Estimated time:   ~" in run.stdout
    assert "plus stop, checkout, start, verify (not measured)" in run.stdout
    assert "database: restore of the dump: ~" in run.stdout
    assert rollout.snapshot() == before


def test_rollback_killed_half_way_is_finished_by_a_rerun(rollout: Rollout) -> None:
    # A dead staging run left its lock behind, already expired: the rollback takes it over.
    rollout.write_lock("deploy@ci-7", age=timedelta(hours=2), ttl=timedelta(hours=1))
    interrupted = rollout.kill_rollback_when(
        lambda _: "database" in rollout.rollback_state().get("steps_done", {}),
        "its database step",
    )
    assert "start" not in interrupted["steps_done"]

    # The killed run's controller was another AWX pod: its host and pid mean nothing here.
    state_file = rollout.state_dir / "rollback.json"
    moved = {**interrupted, "controller": {"host": "awx-job-41-x7k2p", "pid": 7, "pid_start": "1"}}
    state_file.write_text(json.dumps(moved))
    report = rollout.rerun_as_awx(interrupted)

    assert rollout.api_version() == "v1"
    assert not V2_OBJECTS & rollout.schema(), "v2's table and view are gone"
    assert rollout.row_counts() == rollout.v1_rows  # type: ignore[attr-defined]
    records = [r for r in rollout.ledger() if r.get("kind") == "rollback"]
    assert [(r["release"], r["rolled_back_from"]) for r in records] == [("v1", "v2")]
    assert records[0]["verdict"] in GOOD
    assert report["rollback_plan"]["database"]["action"] == "restore"


def test_rerun_after_success_changes_nothing(rollout: Rollout) -> None:
    before = rollout.snapshot()

    run = rollout.rollback()

    assert run.returncode == 0, run.stdout[-4000:]
    assert "Nothing to roll back: v1 runs (already rolled back from v2)" in run.stdout
    assert "changed=0" in run.stdout
    assert rollout.snapshot() == before


def test_crash_looping_release_is_rolled_back_despite_a_live_lock(rollout: Rollout) -> None:
    rollout.deploy("v2-crashloop")  # migrates, then the API crash-loops: recorded NO_GO
    assert rollout.ledger()[-1]["verdict"] == "NO_GO"
    assert rollout.schema() >= V2_OBJECTS
    before = rollout.snapshot()

    refused = rollout.rollback(stagegate_environment="PRODUCTION")  # any case counts
    assert refused.returncode != 0
    assert "re-run with -e stagegate_confirm_production=true" in refused.stdout
    rollout.write_lock("oncall@bastion", age=timedelta(minutes=5), ttl=timedelta(hours=1))
    locked = rollout.rollback()
    assert locked.returncode != 0
    assert "held by oncall@bastion (run staging-20261122-dead), held for 5m" in locked.stdout
    after = rollout.snapshot()
    assert {k: v for k, v in after.items() if k != "lock"} == {
        k: v for k, v in before.items() if k != "lock"
    }

    run = rollout.rollback(stagegate_break_lock=True)

    assert run.returncode == 0, run.stdout[-4000:]
    assert "Current release:  v2-crashloop" in run.stdout
    assert "Rollback target:  v1" in run.stdout
    assert not (rollout.state_dir / "lock.json").exists(), "broke the lock, released its own"
    assert rollout.api_version() == "v1"
    assert not V2_OBJECTS & rollout.schema()
    assert rollout.row_counts() == rollout.v1_rows  # type: ignore[attr-defined]
    assert rollout.ledger()[-1]["rolled_back_from"] == "v2-crashloop"


def test_downgrade_reverts_the_migrations_and_keeps_data_written_since(rollout: Rollout) -> None:
    rollout.deploy("v2")
    assert rollout.schema() >= V2_OBJECTS
    with psycopg.connect(
        host="127.0.0.1", port=rollout.stack.pg_port, dbname="app", user="app",
        password=rollout.password, autocommit=True,
    ) as conn:  # fmt: skip
        conn.execute("INSERT INTO items (name) VALUES ('written under v2')")

    plan = rollout.rollback("--check", stagegate_rollback_database="downgrade")
    assert plan.returncode == 0, plan.stdout[-4000:]
    assert "Database:         downgrade (down scripts revert the 2 migration(s) v2 applied)" in (
        plan.stdout
    )
    assert "down scripts: " in plan.stdout
    assert "plus database: down scripts (not measured)" in plan.stdout

    run = rollout.rollback(stagegate_rollback_database="downgrade")

    assert run.returncode == 0, run.stdout[-4000:]
    assert rollout.api_version() == "v1"
    assert not V2_OBJECTS & rollout.schema(), "006 and 007 reverted"
    assert rollout.sql("SELECT count(*) FROM items WHERE name = 'written under v2'") == [(1,)]
    applied = {v for (v,) in rollout.sql("SELECT version FROM stagegate_schema_migrations")}
    assert not applied & {"006_composite_indexes", "007_reporting_views"}
    record = rollout.ledger()[-1]
    assert (record["kind"], record["release"], record["rolled_back_from"]) == (
        "rollback", "v1", "v2",
    )  # fmt: skip
    finished = rollout.rollback_state()
    report = json.loads((Path(finished["report"]) / "report.json").read_text())
    assert report["rollback_plan"]["database"]["action"] == "downgrade"


@pytest.mark.timeout(600)  # a deploy, a killed rollback and its re-run
def test_killed_during_the_restore_a_rerun_restores_and_verifies(rollout: Rollout) -> None:
    if V2_OBJECTS & rollout.schema():  # run alone (-k): start from v1, as the tests above leave it
        run = rollout.rollback()
        assert run.returncode == 0, run.stdout[-4000:]
    rollout.deploy("v2")  # migrates again: its rollback restores the backup taken before it
    assert rollout.schema() >= V2_OBJECTS
    # Killed while pg_restore fills the re-created database.
    interrupted = rollout.kill_rollback_when(rollout.restoring, "the restore")
    assert "database" not in interrupted["steps_done"]  # so the re-run restores again
    marks = rollout.sql(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = 'app'"
    )
    assert "stagegate-restore" not in str(marks), "the killed restore never finished"

    report = rollout.rerun_as_awx(interrupted)

    assert report["rollback_plan"]["database"]["action"] == "restore"
    assert rollout.api_version() == "v1"
    assert not V2_OBJECTS & rollout.schema()
    assert rollout.row_counts() == rollout.backup_rows("v2")


@pytest.mark.timeout(600)
def test_killed_during_the_tiered_start_a_rerun_starts_and_verifies(rollout: Rollout) -> None:
    rollout.deploy("v2")
    assert rollout.api_version() == "v2"

    def starting(_: int) -> bool:
        """The database step is done and the first container of v1 has been created: only the
        tiered start (after the checkout and the images) makes one."""
        if "database" not in rollout.rollback_state().get("steps_done", {}):
            return False
        return any(image.endswith(":v1") for _, _, image in rollout.containers())

    interrupted = rollout.kill_rollback_when(starting, "the tiered start")
    assert "database" in interrupted["steps_done"]  # the re-run does not restore again

    report = rollout.rerun_as_awx(interrupted)

    assert rollout.api_version() == "v1"
    assert not V2_OBJECTS & rollout.schema()
    assert rollout.row_counts() == rollout.backup_rows("v2")
    assert report["release"]["version"] == "v1"
