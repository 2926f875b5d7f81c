"""Ansible's own cost on this machine: the floor under every playbook's wall time.

    .venv/bin/python bench/ansible_floor.py [--modules 10]

Times, in one run: `ansible-playbook` with one `debug` task (start-up, no module), the same
play with N+1 `ansible.builtin.ping` tasks against one (the cost of one module run on the
local connection), the one-ping play against the debug play (a module's first run in a
playbook, which also builds its AnsiballZ payload: Ansible caches that per run, not across
runs), and, raw, a Python process that only imports `ansible.module_utils.basic` (what every
module process does first) against an empty one. A playbook that runs M modules, D of them
distinct, cannot take less than start-up + M x module run + D x payload build.

Last, what a task that uses a stagegate filter adds to a plain one, with the progress callback
(which imports stagegate's filter and action plugins in ansible-playbook's own process, so the
worker Ansible forks for each task finds them imported) and without it (every worker imports
them again).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
COLLECTIONS = REPO_ROOT / "collections"


def play(name: str, tasks: list[str], workdir: Path) -> Path:
    path = workdir / f"{name}.yml"
    body = "".join(f"    - {task}\n" for task in tasks)
    path.write_text(f"- hosts: localhost\n  gather_facts: false\n  tasks:\n{body}")
    return path


def best(argv: list[str], repeat: int, env: dict[str, str] | None = None) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        done = subprocess.run(
            argv, cwd=REPO_ROOT, capture_output=True, text=True, check=False, env=env
        )
        if done.returncode:
            output = done.stdout[-2000:] + done.stderr[-2000:]
            sys.exit(f"{' '.join(argv)} exited {done.returncode}:\n{output}")
        times.append(time.perf_counter() - started)
    return min(times)  # noise on a shared machine only ever adds time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    playbook = [
        str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
        "-e", f"ansible_python_interpreter={sys.executable}",
    ]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="sgt-floor-") as work:
        workdir = Path(work)
        debug = play("debug", ["ansible.builtin.debug: {msg: hi}"], workdir)
        one = play("one", ["ansible.builtin.ping:"], workdir)
        many = play("many", ["ansible.builtin.ping:"] * (args.modules + 1), workdir)
        start = best([*playbook, str(debug)], args.repeat)
        one_module = best([*playbook, str(one)], args.repeat)
        per_module = (best([*playbook, str(many)], args.repeat) - one_module) / args.modules
        build = one_module - start - per_module
        tasks = args.modules + 1
        plain = play("plain", ["ansible.builtin.debug: {msg: hi}"] * tasks, workdir)
        uses_filter = (
            "ansible.builtin.debug: "
            "{msg: \"{{ 'compose' | stagegate.release.deploy_strategy({}) }}\"}"
        )
        filtered = play("filtered", [uses_filter] * tasks, workdir)

        def filter_cost(env: dict[str, str] | None) -> float:
            with_filter = best([*playbook, str(filtered)], args.repeat, env)
            return (with_filter - best([*playbook, str(plain)], args.repeat, env)) / tasks

        imported = filter_cost(None)
        # the project's ansible.cfg left out: no callback enabled, the collection still found
        (workdir / "bare.cfg").write_text("[defaults]\n")
        bare = {
            "ANSIBLE_CONFIG": str(workdir / "bare.cfg"),
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
        }
        not_imported = filter_cost({**os.environ, **bare})
    python = [sys.executable, "-c"]
    empty = best([*python, "pass"], args.repeat)
    basic = best([*python, "import ansible.module_utils.basic"], args.repeat)
    print(f"ansible-playbook, one debug task (start-up):     {start:6.2f} s")
    print(f"one module run (ansible.builtin.ping, local):    {per_module:6.2f} s")
    print(f"its payload build, once per module and run:      {build:6.2f} s")
    print(f"raw python -c pass:                              {empty:6.2f} s")
    print(f"raw python importing ansible.module_utils.basic: {basic:6.2f} s")
    print(f"  the import's share of a module run:            {(basic - empty) / per_module:6.0%}")
    print(
        f"a task using a stagegate filter, over a plain one: {imported:6.2f} s (progress callback)"
    )
    print(f"  the same without the progress callback:        {not_imported:6.2f} s")


if __name__ == "__main__":
    main()
