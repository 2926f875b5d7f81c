"""The sandbox stack as the rollback, staging and adoption tests drive it: `Rollout` (the stack
plus the `-e` variables that point inventory/sandbox at it, the deploy, rollback and AWX-style
re-run helpers and what they read back), `Staging` (staging.yml runs on top), `descendants` and
`kill_tree` (SIGKILL a run the way a lost node does), `playbook_env` (ansible-playbook's
environment as a user has it). Test files import these from here, never from each other."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import ansible_runner
import psycopg
from ansible_collections.stagegate.release.plugins.module_utils._rollback import STEPS
from conftest import REPO_ROOT
from psycopg import sql
from sandbox_fixtures import (
    INVENTORY,
    VENV_BIN,
    PlaybookRun,
    SandboxStack,
    playbook_env,
    run_playbook,
    sandbox_secrets,
)

__all__ = [
    "GOOD",
    "REPORT_FILES",
    "V2_OBJECTS",
    "V2_SCHEMA",
    "Rollout",
    "Staging",
    "assert_no_secret_printed",
    "descendants",
    "kill_tree",
    "phases",
    "playbook_env",
    "project_containers",
]

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

    def connect(self, dbname: str = "app", autocommit: bool = False) -> psycopg.Connection[Any]:
        """A session as `app` (owner, CREATEDB, no superuser) over the stack's TCP port."""
        return psycopg.connect(
            host="127.0.0.1",
            port=self.stack.pg_port,
            dbname=dbname,
            user="app",
            password=self.password,
            autocommit=autocommit,
            connect_timeout=10,
        )

    def sql(self, query: str | sql.Composed) -> list[tuple[Any, ...]]:
        with self.connect() as conn:
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
        return sorted((r["Name"], r["ID"], r["Image"]) for r in self.stack.containers())

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
        """Start rollback.yml, SIGKILL it (`kill_tree`: its process group and every process
        below it) the moment `moment(its pid)` is true; returns the rollback state the killed
        run left."""
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
        finally:  # also when waiting failed: never leave the run going
            kill_tree(proc)
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
        # the CLI's "failed checks:" line reads it (a trial's NO_GO rollback said "none")
        assert stats["stagegate_failed_checks"] == record["failed_checks"]
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
        try:
            # a process that exits while it is read is simply not there any more
            lists = list(Path(f"/proc/{todo.pop(0)}/task").glob("*/children"))
        except OSError:
            continue
        for children in lists:
            try:
                kids = [int(k) for k in children.read_text().split()]
            except OSError:
                continue
            found += kids
            todo += kids
    return found


def kill_tree(proc: subprocess.Popen[str]) -> str:
    """SIGKILL `proc` (started with `start_new_session=True`) as a lost node or an OOM kill
    would: its process group and every process below it. Ansible's workers run in sessions of
    their own (setsid), so killing the group alone leaves the module running to its end in the
    background (where it changes what the next test sees); returns the output so far."""
    below = descendants(proc.pid)
    with contextlib.suppress(ProcessLookupError):  # it ended on its own
        os.killpg(proc.pid, signal.SIGKILL)
    for pid in below:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    out, _ = proc.communicate()
    return out


# What staging asserts of v2: its objects and its index.
V2_SCHEMA = V2_OBJECTS | {"idx_item_events_item_created"}
REPORT_FILES = ("report.json", "report.md", "junit.xml", "report.html")


class Staging(Rollout):
    """The shared stack, with staging.yml runs on top of the rollback tests' helpers."""

    def __init__(self, stack: SandboxStack) -> None:
        super().__init__(stack)
        # Latency is graded, but tests never assert timings (bench/ does): wide bands here.
        self.vars["sandbox_latency_bands"] = {"p95": {"pass": "<= 60s"}}

    def staging(self, release: str, *args: str, **extra: Any) -> PlaybookRun:
        variables = {**self.vars, "stagegate_release": release, **extra}
        return run_playbook("staging.yml", variables, options=args)

    def last(self) -> dict[str, Any]:
        return self.ledger()[-1]

    def report(self, record: dict[str, Any]) -> dict[str, Any]:
        return json.loads(Path(record["reports"]["report.json"]).read_text())


def project_containers(project: str) -> list[str]:
    return subprocess.run(
        ["docker", "ps", "--all", "--quiet",
         "--filter", f"label=com.docker.compose.project={project}"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip


def assert_no_secret_printed(run: PlaybookRun) -> None:
    for name, value in sandbox_secrets().items():
        if "password" in name or "secret" in name:
            assert value not in run.output, f"{name} printed"


def phases(report: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["status"] for p in report["phases"]}
