"""The whole playbooks/staging.yml run on the sandbox, with its time per phase.

    .venv/bin/python bench/staging_bench.py

On an isolated sandbox stack: v1 is promoted from nothing (not timed beyond its total), then
v2 (backup, migration dry-run, build, deploy with migrations 006/007, validation, gate). Prints
each phase's seconds from the v2 run's report.json, their sum, the wall time of the
ansible-playbook process, and the share of it spent outside the phases (validation of the
configuration, the gate and reports, Ansible's own start-up). Everything is removed at the end.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))

from sandbox_fixtures import (  # noqa: E402 - the test helpers are the sandbox's API
    SandboxStack,
    make_sandbox_repo,
    run_playbook,
)


def promote(stack: SandboxStack, release: str) -> tuple[float, dict[str, object]]:
    report_dir = stack.state_dir / "reports" / release
    container = f"{stack.project}-postgres-1"
    variables = stack.extra_vars(stagegate_release=release, stagegate_report_dir=str(report_dir))
    variables["stagegate_db"] = {
        "host": "127.0.0.1",
        "port": stack.pg_port,
        "name": "app",
        "user": "app",
        "password": stack.env()["POSTGRES_PASSWORD"],
        "container": container,
    }
    start = time.perf_counter()
    run = run_playbook("staging.yml", variables)
    wall = time.perf_counter() - start
    if run.rc != 0:
        raise SystemExit(f"staging.yml {release} failed (rc {run.rc}):\n{run.output[-3000:]}")
    return wall, json.loads((report_dir / "report.json").read_text())


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="sgt-bench-staging-", dir="/var/tmp") as tmp:
        repo = Path(tmp) / "sandbox.git"
        make_sandbox_repo(repo)
        stack = SandboxStack(repo=repo, state_dir=Path(tmp) / "state")
        try:
            first, _ = promote(stack, "v1")
            wall, report = promote(stack, "v2")
        finally:
            stack.teardown()
    phases = report["phases"]
    assert isinstance(phases, list)
    print(f"v1 from nothing: {first:.1f} s wall")
    print(f"v2 (verdict {report['verdict']}):")
    for phase in phases:
        print(f"  {phase['name']:<17} {phase['seconds']:7.1f} s  {phase['status']}")
    total = sum(float(p["seconds"]) for p in phases)
    print(f"  {'phases':<17} {total:7.1f} s")
    outside = wall - total
    print(f"  {'ansible-playbook':<17} {wall:7.1f} s wall ({outside:.1f} s outside the phases)")


if __name__ == "__main__":
    main()
