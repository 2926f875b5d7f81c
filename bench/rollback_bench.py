"""Wall time of playbooks/rollback.yml against the raw commands it performs, in one run.

    .venv/bin/python bench/rollback_bench.py [--rounds 1]

On an isolated sandbox stack deployed v1 -> v2 (tests/playbooks/rollback_deploy.yml, real
modules: backup before migrating, migrations, manifest, ledger), each round times:

1. `ansible-playbook playbooks/rollback.yml` with no input (plan, lock, stop, checkout, restore,
   tiered start, checks, report, ledger) back to v1;
2. after v2 is deployed again, the raw sequence an engineer would type for the same rollback:
   `docker compose stop api worker`, `git checkout v1`, drop/create the database and
   `pg_restore -j2` (as the superuser) of the same backup inside the database container,
   `docker compose up -d`, and a curl loop on /health/ready until it answers 200.

Prints both times and the ratio playbook/raw (bar: <= 1.5). The deploys in between are not
timed. Everything the bench creates is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
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

    def sh(self, *argv: str, env: dict[str, str] | None = None) -> None:
        done = subprocess.run(
            argv, capture_output=True, text=True, env=env, cwd=self.stack.project_dir, check=False
        )
        if done.returncode:
            sys.exit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr[-2000:]}")

    def rollback_raw(self) -> float:
        backup = self.stack.state_dir / "backups" / "app-before-v2.dump"
        psql = ["docker", "exec", self.postgres, "psql", "-X", "-q", "-U", "postgres", "-c"]
        compose_env = {**os.environ, **self.stack.env()}
        compose = ["docker", "compose", "--project-name", self.stack.project]
        started = time.perf_counter()
        self.sh(*compose, "stop", "api", "worker", env=compose_env)
        self.sh("git", "checkout", "--quiet", "--force", "v1")
        self.sh("docker", "cp", str(backup), f"{self.postgres}:/tmp/bench.dump")
        self.sh(*psql, "DROP DATABASE app WITH (FORCE)")
        self.sh(*psql, "CREATE DATABASE app OWNER app")
        self.sh("docker", "exec", self.postgres, "pg_restore", "-U", "postgres", "-d", "app",
                "--exit-on-error", "--jobs=2", "/tmp/bench.dump")  # fmt: skip
        self.sh(*compose, "up", "--detach", env=compose_env)
        while subprocess.run(
            ["curl", "-sf", "-o", "/dev/null", f"{self.stack.base_url}/health/ready"],
            check=False,
        ).returncode:
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
        # Leave the checkout as the deploy playbook expects it (its release marker).
        (self.stack.project_dir / ".stagegate-release").write_text("v1\n")
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
        playbook_times, raw_times = [], []
        for _ in range(args.rounds):
            bench.deploy("v2")
            elapsed, slowest = bench.rollback_playbook(args.top)
            playbook_times.append(elapsed)
            bench.deploy("v2")
            raw_times.append(bench.rollback_raw())
        best_playbook, best_raw = min(playbook_times), min(raw_times)
        print("slowest tasks of the last rollback.yml run:")
        for seconds, name in slowest:
            print(f"  {seconds:6.2f} s  {name}")
        print(f"rollback.yml (v2 -> v1, restore, tiers, checks, report): {best_playbook:7.2f} s")
        print(f"raw stop + checkout + pg_restore + compose up + curl loop: {best_raw:7.2f} s")
        ratio = best_playbook / best_raw
        print(f"ratio playbook/raw: {ratio:.2f} (bar <= {BAR}) {'OK' if ratio <= BAR else 'OVER'}")
    finally:
        stack.teardown()
        subprocess.run(["rm", "-rf", str(workdir)], check=False)


if __name__ == "__main__":
    main()
