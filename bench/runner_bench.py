"""The same promotion three ways: ansible-playbook, ansible_runner.run, and the AWX job path
(ansible-runner transmit | worker inside the EE container | process).

    .venv/bin/python bench/runner_bench.py [--rounds N]

One isolated sandbox stack on a deploy host container reached over SSH (tests/deployhost/), the
same private data dir (inventory with the secrets vault-encrypted, extravars, machine key) for
all three: v1 then v2 are promoted first (not timed), then each round re-promotes v2 once per
way, so every timed run does the same work (backup, dry-run, build, deploy, validate, gate).
Prints each way's wall time (median over the rounds), its ratio to ansible-playbook (bar: the
runner paths within 1.3x), and the EE container's start on its own (`docker run --rm <ee>
true`, median of 5). Builds the EE with scripts/ee.sh when missing. Everything is removed at
the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))

import ansible_runner  # noqa: E402
from ee_fixtures import (  # noqa: E402 - the test helpers are the AWX path's API
    awx_extravars,
    build_deployhost,
    build_ee,
    deploy_host,
    private_data_dir,
    run_job,
)
from sandbox_fixtures import VENV_BIN, SandboxStack, make_sandbox_repo  # noqa: E402

VAULT_PASSWORD = "bench-vault-password-not-a-secret"  # noqa: S105 - the bench's own vault
BAR = 1.3


def timed_playbook(pdd: Path, key: Path, workdir: Path, name: str) -> float:
    """Plain ansible-playbook on the machine's venv with the private data dir's inputs."""
    password = workdir / "vault-pass"
    password.write_text(VAULT_PASSWORD)
    artifacts = workdir / name
    artifacts.mkdir()
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "AWX_ISOLATED_DATA_DIR": str(artifacts),
    }
    start = time.perf_counter()
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), str(pdd / "project" / "staging.yml"),
         "-i", str(pdd / "inventory"), "-e", f"@{pdd / 'env' / 'extravars'}",
         "--vault-password-file", str(password), "--private-key", str(key)],
        capture_output=True, text=True, env=env, check=False, cwd=pdd / "project",
    )  # fmt: skip
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"ansible-playbook failed ({proc.returncode}):\n{proc.stdout[-3000:]}")
    return seconds


def timed_runner(pdd: Path, name: str) -> float:
    start = time.perf_counter()
    run = ansible_runner.run(
        private_data_dir=str(pdd), playbook="staging.yml", ident=name, quiet=True
    )
    seconds = time.perf_counter() - start
    if run.rc != 0:
        raise SystemExit(f"ansible_runner.run failed ({run.status}, rc {run.rc})")
    return seconds


def timed_awx(pdd: Path, ee_image: str, name: str) -> float:
    job = run_job(pdd, "staging.yml", ee_image, ident=name)
    if job.rc != 0:
        raise SystemExit(f"transmit|worker|process failed (rc {job.rc}):\n{job.stdout[-3000:]}")
    return job.seconds


def ee_start(ee_image: str) -> float:
    times = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run(["docker", "run", "--rm", ee_image, "true"], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    rounds = parser.parse_args().rounds
    # On this machine the collection is the checkout's (in the EE it is the installed one);
    # each way reads the private data dir's project/ansible.cfg.
    os.environ["PATH"] = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ["ANSIBLE_COLLECTIONS_PATH"] = str(REPO_ROOT / "collections")
    os.environ.pop("ANSIBLE_CONFIG", None)
    ee_image = build_ee()
    host_image = build_deployhost()
    tmp = Path(tempfile.mkdtemp(prefix="sgt-bench-runner-", dir="/var/tmp"))
    repo = tmp / "sandbox.git"
    make_sandbox_repo(repo)
    stack = SandboxStack(repo=repo, state_dir=tmp / "state")
    stack.state_dir.mkdir()
    times: dict[str, list[float]] = {"ansible-playbook": [], "ansible_runner.run": [], "awx": []}
    try:
        with deploy_host(host_image, tmp, [tmp]) as host:

            def pdd(release: str, name: str) -> Path:
                return private_data_dir(
                    tmp / name, host, "staging.yml", vault_password=VAULT_PASSWORD,
                    extravars=awx_extravars(stack, stagegate_release=release),
                )  # fmt: skip

            timed_runner(pdd("v1", "setup-v1"), "setup-v1")
            timed_runner(pdd("v2", "setup-v2"), "setup-v2")
            for n in range(rounds):
                times["ansible-playbook"].append(
                    timed_playbook(pdd("v2", f"pb{n}"), host.key, tmp, f"pb{n}-artifacts")
                )
                times["ansible_runner.run"].append(timed_runner(pdd("v2", f"rr{n}"), f"rr{n}"))
                times["awx"].append(timed_awx(pdd("v2", f"awx{n}"), ee_image, f"awx{n}"))
            start = ee_start(ee_image)
    finally:
        stack.teardown()
        shutil.rmtree(tmp, ignore_errors=True)
    base = statistics.median(times["ansible-playbook"])
    print(f"runner bench: staging.yml re-promoting v2 over SSH, {rounds} round(s), median wall")
    labels = {
        "ansible-playbook": "ansible-playbook",
        "ansible_runner.run": "ansible_runner.run",
        "awx": "transmit | worker (EE container) | process",
    }
    rows = {}
    for way, values in times.items():
        median = statistics.median(values)
        ratio = median / base
        rows[way] = {"seconds": round(median, 2), "ratio": round(ratio, 3)}
        verdict = "" if way == "ansible-playbook" else (" ok" if ratio <= BAR else " OVER 1.3x")
        print(f"  {labels[way]:<46} {median:7.2f} s  {ratio:5.2f}x{verdict}")
    print(f"  EE container start (docker run --rm <ee> true)  {start:7.2f} s (included above)")
    print(json.dumps({"rounds": rounds, "ways": rows, "ee_start_seconds": round(start, 2)}))


if __name__ == "__main__":
    main()
