"""Wall time of playbooks/rollback.yml against the raw commands it performs, in one run.

    .venv/bin/python bench/rollback_bench.py [--rounds 1]

On an isolated sandbox stack deployed v1 -> v2 (tests/playbooks/rollback_deploy.yml, real
modules: backup before migrating, migrations, manifest, ledger), each round times:

1. `ansible-playbook playbooks/rollback.yml` with no input (plan, lock, stop, checkout, restore,
   tiered start, checks, report, ledger) back to v1;
2. after v2 is deployed again, the raw sequence an engineer would type for the same rollback
   (issue 14's fair raw): `docker compose stop api worker`, `git checkout v1`, drop/create the
   database and `pg_restore -j2` (as the superuser) of the same backup inside the database
   container, `docker compose up --detach --wait`, and the same verification as rollback.yml's
   checks: the catalog's checks by curl, psql, redis-cli and docker (bench/staging_bench.py's
   `raw_checks`, one bash script);
3. after v2 is deployed again, bench/rollback_floor.yml: the same raw commands up to `up --wait`
   as one shell task, between rollback.yml's own plan, checks, report and a ledger record. No
   playbook that plans, verifies (GO) and records a rollback as rollback.yml does can be faster
   than this floor.

Prints the times, the raw commands' own times and the ratios playbook/raw (bar: <= 1.5) and
floor/raw. The deploys in between are not timed. Everything the bench creates is removed
at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))

from sandbox_fixtures import (  # noqa: E402 - the test helpers are the sandbox's API
    INVENTORY,
    VENV_BIN,
    SandboxStack,
    make_sandbox_repo,
    run_playbook,
    sandbox_secrets,
)
from staging_bench import raw_checks  # noqa: E402 - the catalog's checks as raw commands

BAR = 1.5


def playbook_env() -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
    }


class Bench:
    def __init__(self, stack: SandboxStack) -> None:
        self.stack = stack
        self.password = sandbox_secrets()["sandbox_db_password"]
        self.postgres = f"{stack.project}-postgres-1"
        self.vars = stack.extra_vars(
            stagegate_db={
                "host": "127.0.0.1",
                "port": stack.pg_port,
                "name": "app",
                "user": "app",
                "password": self.password,
                "container": self.postgres,
            },
            stagegate_report_dir=str(stack.state_dir / "reports"),
        )
        self.report_dir = stack.state_dir / "reports" / "rollback"

    def deploy(self, release: str) -> None:
        run = run_playbook(
            "../tests/playbooks/rollback_deploy.yml", {**self.vars, "stagegate_release": release}
        )
        if run.rc:
            sys.exit(f"deploy {release} failed:\n{run.output[-3000:]}")

    def rollback_playbook(self, top: int) -> tuple[float, list[tuple[float, str]]]:
        """Wall time, and the slowest tasks (time from one task header to the next)."""
        started = time.perf_counter()
        proc = subprocess.Popen(
            [str(VENV_BIN / "ansible-playbook"), "playbooks/rollback.yml", "-i", str(INVENTORY),
             "-e", json.dumps(self.vars)],
            cwd=REPO_ROOT, env=playbook_env(), stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        tasks: list[tuple[float, str]] = []
        output = []
        for line in proc.stdout or []:
            output.append(line)
            if line.startswith("TASK ["):
                tasks.append((time.perf_counter(), line.strip(" *\n")))
        rc = proc.wait()
        elapsed = time.perf_counter() - started
        if rc:
            sys.exit(f"rollback.yml failed:\n{''.join(output)[-3000:]}")
        ends = [t for t, _ in tasks[1:]] + [time.perf_counter()]
        spans = [(end - t, name) for (t, name), end in zip(tasks, ends, strict=True)]
        spans.sort(reverse=True)
        return elapsed, spans[:top]

    def raw_commands(self) -> list[list[str]]:
        """The rollback an engineer would type, up to the verification."""
        backup = self.stack.state_dir / "backups" / "app-before-v2.dump"
        psql = ["docker", "exec", self.postgres, "psql", "-X", "-q", "-U", "postgres", "-c"]
        compose = ["docker", "compose", "--project-name", self.stack.project]
        return [
            [*compose, "stop", "api", "worker"],
            ["git", "checkout", "--quiet", "--force", "v1"],
            ["docker", "cp", str(backup), f"{self.postgres}:/tmp/bench.dump"],
            [*psql, "DROP DATABASE app WITH (FORCE)"],
            [*psql, "CREATE DATABASE app OWNER app"],
            ["docker", "exec", self.postgres, "pg_restore", "-U", "postgres", "-d", "app",
             "--exit-on-error", "--jobs=2", "/tmp/bench.dump"],
            [*compose, "up", "--detach", "--wait"],
        ]  # fmt: skip

    def rollback_raw(self) -> tuple[float, list[tuple[float, str]]]:
        """Wall time, and the time of each command (the checks last)."""
        compose_env = {**os.environ, **self.stack.env()}
        steps: list[tuple[float, str]] = []
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())  # the logs check's window
        started = time.perf_counter()
        for argv in self.raw_commands():
            step_started = time.perf_counter()
            done = subprocess.run(
                argv, capture_output=True, text=True, env=compose_env,
                cwd=self.stack.project_dir, check=False,
            )  # fmt: skip
            if done.returncode:
                sys.exit(f"{shlex.join(argv)} exited {done.returncode}:\n{done.stderr[-2000:]}")
            steps.append((time.perf_counter() - step_started, shlex.join(argv[:5])))
        checks_started = time.perf_counter()
        script = raw_checks(self.stack, "v1", since, release_checks=False)
        done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=False)
        if done.returncode:
            sys.exit(f"the raw checks failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        steps.append((time.perf_counter() - checks_started, "the catalog's checks (raw)"))
        elapsed = time.perf_counter() - started
        # Leave the checkout as the deploy playbook expects it (its release marker).
        (self.stack.project_dir / ".stagegate-release").write_text("v1\n")
        return elapsed, steps

    def rollback_floor(self) -> float:
        """bench/rollback_floor.yml: the raw commands in one task, between rollback.yml's plan,
        verification, report and ledger record."""
        script = "set -e\n" + "".join(f"{shlex.join(argv)}\n" for argv in self.raw_commands())
        script += "echo v1 > .stagegate-release\n"
        started = time.perf_counter()
        extra_vars = {**self.vars, "rollback_floor_raw": script}
        run = run_playbook("../bench/rollback_floor.yml", extra_vars)
        elapsed = time.perf_counter() - started
        if run.rc:
            sys.exit(f"rollback_floor.yml failed:\n{run.output[-3000:]}")
        verdict = json.loads((self.report_dir / "report.json").read_text())["verdict"]
        if verdict == "NO_GO":
            sys.exit(f"rollback_floor.yml graded NO_GO (report: {self.report_dir})")
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--top", type=int, default=6, help="slowest tasks to list")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="sgt-rollback-bench-", dir="/var/tmp"))
    make_sandbox_repo(workdir / "sandbox.git")
    stack = SandboxStack(repo=workdir / "sandbox.git", state_dir=workdir / "state")
    bench = Bench(stack)
    try:
        bench.deploy("v1")
        playbook_times, raw_times, floor_times = [], [], []
        for _ in range(args.rounds):
            bench.deploy("v2")
            elapsed, slowest = bench.rollback_playbook(args.top)
            playbook_times.append(elapsed)
            bench.deploy("v2")
            elapsed, raw_steps = bench.rollback_raw()
            raw_times.append(elapsed)
            bench.deploy("v2")
            floor_times.append(bench.rollback_floor())
        best_playbook, best_raw, best_floor = min(playbook_times), min(raw_times), min(floor_times)
        print("slowest tasks of the last rollback.yml run:")
        for seconds, name in slowest:
            print(f"  {seconds:6.2f} s  {name}")
        print("commands of the last raw run:")
        for seconds, name in raw_steps:
            print(f"  {seconds:6.2f} s  {name}")
        print(f"rollback.yml (v2 -> v1, restore, tiers, checks, report): {best_playbook:7.2f} s")
        print(f"raw stop, checkout, pg_restore, up --wait, checks:        {best_raw:7.2f} s")
        print(f"floor (raw in one task; plan, checks, report, ledger):     {best_floor:7.2f} s")
        ratio = best_playbook / best_raw
        print(f"ratio playbook/raw: {ratio:.2f} (bar <= {BAR}) {'OK' if ratio <= BAR else 'OVER'}")
        floor_ratio = best_floor / best_raw
        print(f"ratio floor/raw:    {floor_ratio:.2f} (the least any such playbook reaches)")
    finally:
        stack.teardown()
        subprocess.run(["rm", "-rf", str(workdir)], check=False)


if __name__ == "__main__":
    main()
