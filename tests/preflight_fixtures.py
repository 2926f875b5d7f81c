"""A throwaway deploy host on localhost for the preflight, lock and source tests.

`DeployHost` owns a state directory, a compose project directory with a migration, and
an inventory file (group `deploy`, localhost over the local connection) whose vars the
test sets; `play()` runs a real `ansible-playbook` on it as a user would.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sandbox_fixtures import REPO_ROOT, VENV_BIN, playbook_env

PLAYBOOKS = REPO_ROOT / "tests" / "playbooks"

COMPOSE_FILE = """\
services:
  app:
    image: stagegate/busybox:latest
    command: ["sleep", "3600"]
"""


@dataclass(frozen=True)
class Run:
    rc: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def changed(self) -> int:
        """`changed=` of the play recap (one host)."""
        match = re.search(r"changed=(\d+)", self.stdout)
        assert match, self.output
        return int(match.group(1))


class DeployHost:
    """State and project directories plus an inventory for one test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state_dir = root / "state"
        self.project_dir = root / "project"
        self.inventory = root / "inventory.yml"
        self.hosts = ["localhost"]  # more names are aliases of this machine
        self.vars: dict[str, Any] = {
            "stagegate_state_dir": str(self.state_dir),
            "stagegate_project_dir": str(self.project_dir),
        }

    def make_project(self) -> None:
        """A compose project with one migration, as a checked-out release would be."""
        (self.project_dir / "migrations").mkdir(parents=True, exist_ok=True)
        (self.project_dir / "compose.yaml").write_text(COMPOSE_FILE)
        (self.project_dir / "migrations" / "001_init.sql").write_text("CREATE TABLE t (i int);\n")

    def write_inventory(self) -> Path:
        host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
        hosts = dict.fromkeys(self.hosts, host)
        data = {"all": {"children": {"deploy": {"hosts": hosts}}, "vars": self.vars}}
        self.inventory.write_text(json.dumps(data, indent=2))
        return self.inventory

    def command(self, playbook: str, *args: str, **extra_vars: Any) -> list[str]:
        self.write_inventory()
        cmd = [str(VENV_BIN / "ansible-playbook"), "-i", str(self.inventory)]
        cmd.append(str(PLAYBOOKS / playbook))
        if extra_vars:
            cmd += ["-e", json.dumps(extra_vars)]
        return [*cmd, *args]

    def play(self, playbook: str, *args: str, **extra_vars: Any) -> Run:
        proc = subprocess.run(
            self.command(playbook, *args, **extra_vars),
            cwd=REPO_ROOT,
            env=playbook_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        return Run(proc.returncode, proc.stdout, proc.stderr)

    def start(self, playbook: str, *args: str, **extra_vars: Any) -> subprocess.Popen[str]:
        """The same run in the background (for concurrent runs)."""
        return subprocess.Popen(
            self.command(playbook, *args, **extra_vars),
            cwd=REPO_ROOT,
            env=playbook_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def tree(path: Path) -> dict[str, float]:
    """Every file and directory under `path` with its mtime: a snapshot to compare."""
    if not path.exists():
        return {}
    return {str(p.relative_to(path)): p.stat().st_mtime for p in sorted(path.rglob("*"))}


@pytest.fixture
def deploy_host(tmp_path: Path) -> DeployHost:
    return DeployHost(tmp_path)
