"""playbooks/validate.yml over 1, 5 and 20 app hosts, and where a host's time goes.

    .venv/bin/python bench/fleet_bench.py [--sizes 1,5,20] [--rounds 2]

Starts 20 app hosts and a database host (tests/fleet_fixtures.py: containers with sshd reached
over real SSH, each app host answering the catalog on its own port), seeds the state host's
ledger with a GO record, then times validate.yml through `ansible_runner.run` on the first 1, 5
and 20 app hosts with the project's ansible.cfg (forks = 10, pipelining on; nothing tuned for
the bench), each size the best of the rounds. Each run must end GO. Bar: 20 hosts in <= 3x
the time of one host.

Where a host's time goes, from the runner's per-task events of the 20-host run and from
measurements beside it:
- SSH connection set-up: a fresh `ssh ... true` to each host (Ansible pays it once per host per
  run; ControlPersist keeps the connection for the following tasks);
- module transfer and start on the host: `ansible.builtin.ping` against `raw true` over the
  same, already open connection (tests/fleet: the deploy host image, Python 3.11);
- the checks: the catalog's own time per host (report.json `details.hosts[].duration_ms`);
- each task's mean time per host in the 20-host run.
Everything is removed at the end (containers, temp dirs).

    .venv/bin/python bench/fleet_bench.py --promotion

times staging.yml instead (docs/fleet.md "Promoting a fleet"): the sandbox on a runtime fleet
(tests/fleet_fixtures.py SandboxFleet: each app host its own compose project on this machine's
engine), v1 promoted first, then v2 timed, on 3 app hosts with `-e stagegate_serial=1` and on 1
app host, each with the database host; both must end GO. Printed, no bar yet (issue 16).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import ansible_runner

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))

from fleet_fixtures import (  # noqa: E402 - the tests' fleet
    CATALOG,
    SSH_OPTIONS,
    Fleet,
    SandboxFleet,
    fleet,
    run_on_fleet,
)
from sandbox_fixtures import make_sandbox_repo  # noqa: E402

BAR = 3.0
BIN = Path(sys.executable).parent
ENV = {"ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"), "PATH": f"{BIN}:{os.environ['PATH']}"}


def subset(hosts: Fleet, size: int) -> Fleet:
    return Fleet(hosts.apps[:size], hosts.db, hosts.key, hosts.image)


def run(playbook: Path, inventory: Path, workdir: Path, **extra: Any) -> tuple[float, Any]:
    workdir.mkdir(parents=True)
    start = time.perf_counter()
    job = ansible_runner.run(
        private_data_dir=str(workdir), playbook=str(playbook), inventory=str(inventory),
        envvars=ENV, extravars=extra, quiet=True,
    )  # fmt: skip
    return time.perf_counter() - start, job


def validate(hosts: Fleet, size: int, workdir: Path) -> tuple[float, Any, dict[str, Any]]:
    reports = workdir / "reports"
    workdir.mkdir(parents=True)
    inventory = subset(hosts, size).write_inventory(
        workdir / f"hosts-{size}.yml",
        stagegate_release="v2",
        stagegate_checks=CATALOG,
        stagegate_gates={"key_checks": ["api_ready"]},
        stagegate_report_dir=str(reports),
    )
    seconds, job = run(REPO_ROOT / "playbooks" / "validate.yml", inventory, workdir / "runner")
    report = json.loads((reports / "report.json").read_text())
    if job.rc != 0 or report["verdict"] != "GO":
        raise SystemExit(f"validate.yml on {size} hosts: rc {job.rc}, {report['verdict']}")
    return seconds, job, report


def _seconds(data: dict[str, Any]) -> float | None:
    """A task's time on one host from its event's start and end stamps."""
    if data.get("duration") is not None:
        return float(data["duration"])
    if not data.get("start") or not data.get("end"):
        return None
    start, end = (datetime.fromisoformat(str(data[k])) for k in ("start", "end"))
    return (end - start).total_seconds()


def task_times(job: Any, kinds: tuple[str, ...] = ("runner_on_ok",)) -> dict[str, list[float]]:
    """Each task's duration per host, from the runner's events."""
    times: dict[str, list[float]] = {}
    for event in job.events:
        data = event.get("event_data") or {}
        seconds = _seconds(data) if event.get("event") in kinds else None
        if seconds is not None:
            times.setdefault(data.get("task", "?"), []).append(seconds)
    return times


def ssh_setup_ms(hosts: Fleet) -> float:
    samples = []
    for host in hosts.apps:
        start = time.perf_counter()
        subprocess.run(
            ["ssh", "-i", str(hosts.key), "-p", str(host.ssh_port), *SSH_OPTIONS.split(),
             "-o", "BatchMode=yes", "-o", "ControlMaster=no", "root@127.0.0.1", "true"],
            check=True, capture_output=True,
        )  # fmt: skip
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


PROBE = """
- name: Module cost over an open connection
  hosts: stagegate_app
  gather_facts: false
  tasks:
    - {name: open the connection, ansible.builtin.raw: "true", changed_when: false}
    - {name: raw, ansible.builtin.raw: "true", changed_when: false, loop: [1, 2, 3]}
    - {name: module, ansible.builtin.ping: {}, loop: [1, 2, 3]}
"""


def module_cost_ms(hosts: Fleet, workdir: Path) -> tuple[float, float]:
    """(raw command, ping module) median ms per call on one host, connection already open."""
    playbook = workdir / "probe.yml"
    playbook.write_text(PROBE)
    inventory = subset(hosts, 1).write_inventory(workdir / "probe-hosts.yml")
    _, job = run(playbook, inventory, workdir / "probe")
    times = task_times(job)
    return times["raw"][0] / 3 * 1000, times["module"][0] / 3 * 1000


def promote(work: Path, repo: Path, apps: int, serial: int) -> float:
    """staging.yml over `apps` app hosts and the database host: v1 (a first deploy), then v2
    with `serial` hosts per batch; the v2 run's wall time. Both must end GO."""
    with fleet(work / f"promote-{apps}", apps=apps, runtime=True, shared=[repo]) as made:
        laid_out = SandboxFleet(made, repo)
        try:
            seconds = 0.0
            for release in ("v1", "v2"):
                where = work / f"promote-{apps}-{release}"
                start = time.perf_counter()
                run, stats = run_on_fleet(
                    "staging.yml",
                    laid_out.promotion_inventory(where, release),
                    where / "runner",
                    stagegate_serial=serial,
                )
                seconds = time.perf_counter() - start
                if run.rc != 0 or stats.get("stagegate_verdict") != "GO":
                    where_from = f"staging.yml {release} on {apps} app hosts: rc {run.rc}"
                    raise SystemExit(f"{where_from}\n{run.output[-3000:]}")
            return seconds
        finally:
            made.remove_projects()
            laid_out.remove_images()


def promotion() -> None:
    with tempfile.TemporaryDirectory(prefix="sgt-fleet-bench-") as tmp:
        work = Path(tmp)
        repo = work / "sandbox.git"
        make_sandbox_repo(repo)
        one = promote(work, repo, apps=1, serial=1)
        three = promote(work, repo, apps=3, serial=1)
    print("\nstaging.yml v2 after v1 (ansible_runner.run, project ansible.cfg), with the db host")
    print(f"{'app hosts':>10} {'serial':>7} {'wall s':>8} {'x 1 host':>9}")
    print(f"{1:>10} {1:>7} {one:>8.1f} {1.0:>9.2f}")
    print(f"{3:>10} {1:>7} {three:>8.1f} {three / one:>9.2f}")
    print("no bar yet (issue 16): three batches of one host each run deploy and checks in turn")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,5,20")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--promotion", action="store_true", help="time staging.yml instead")
    args = parser.parse_args()
    if args.promotion:
        promotion()
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="sgt-fleet-bench-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        with fleet(work / "hosts", apps=max(sizes)) as hosts:
            print(f"{max(sizes)} app hosts + db host up in {time.perf_counter() - started:.1f} s")
            hosts.seed_ledger("v2", previous="v1")
            walls: dict[int, float] = {}
            jobs: dict[int, tuple[Any, dict[str, Any]]] = {}
            for round_ in range(args.rounds):
                for size in sizes:
                    seconds, job, report = validate(hosts, size, work / f"r{round_}-{size}")
                    walls[size] = min(walls.get(size, seconds), seconds)
                    jobs[size] = (job, report)
            ssh_ms = ssh_setup_ms(hosts)
            raw_ms, ping_ms = module_cost_ms(hosts, work)
        print("\nvalidate.yml (ansible_runner.run, project ansible.cfg: forks 10, pipelining)")
        print(f"{'hosts':>6} {'wall s':>8} {'x 1 host':>9} {'s per host':>11}")
        for size in sizes:
            ratio = walls[size] / walls[sizes[0]]
            print(f"{size:>6} {walls[size]:>8.2f} {ratio:>9.2f} {walls[size] / size:>11.2f}")
        big = max(sizes)
        ratio = walls[big] / walls[sizes[0]]
        verdict = "PASS" if ratio <= BAR else "FAIL"
        print(f"bar: {big} hosts <= {BAR:g}x one host: {ratio:.2f}x {verdict}")
        marginal = (walls[big] - walls[sizes[0]]) / (big - sizes[0])
        print(f"each host beyond the first adds {marginal:.2f} s of wall time")
        job, report = jobs[big]
        print(f"\nwhere a host's time goes ({big}-host run)")
        print(f"  SSH connection set-up (fresh ssh true, median):   {ssh_ms:6.0f} ms")
        print(f"  raw command over the open connection (mean of 3): {raw_ms:6.0f} ms")
        print(f"  a module call (ping, mean of 3):                  {ping_ms:6.0f} ms")
        print(f"  module transfer + start (ping - raw):             {ping_ms - raw_ms:6.0f} ms")
        checks = [e["duration_ms"] for c in report["checks"] for e in c["details"].get("hosts", [])]
        per_host = sum(checks) / big
        print(f"  the checks' own time per host (sum, 4 checks):    {per_host:6.0f} ms")
        print("  mean time per host of each task (runner events):")
        for task, times in task_times(job).items():
            print(f"    {statistics.mean(times) * 1000:7.0f} ms x{len(times):<3} {task}")


if __name__ == "__main__":
    main()
