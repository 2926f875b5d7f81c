"""staging.yml --check plans the target release from a copy read from the repository
(playbooks/tasks/check_target.yml): that copy must be plannable like the real checkout."""

from __future__ import annotations

import os
import re
import subprocess
import textwrap
from pathlib import Path

import pytest
from conftest import REPO_ROOT

VENV_BIN = REPO_ROOT / ".venv" / "bin"
SECRET = "tok-check-target-9fJ2pWq81"
COMPOSE = """\
services:
  app:
    image: stagegate/busybox:latest
    environment:
      API_TOKEN: ${API_TOKEN:?set API_TOKEN in .env}
"""
PLAY = """\
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Plan the target
      ansible.builtin.include_tasks: {tasks}/check_target.yml
    - name: Validate the target's compose files as the source phase does
      stagegate.release.compose_config:
        project_src: "{{{{ stagegate_project_dir }}}}"
        project_name: sgt-check-target
        files: [compose.yaml]
      register: target_config
    - name: Say which directory was planned
      ansible.builtin.debug:
        msg: "planned {{{{ stagegate_project_dir }}}}"
    - name: Back to the release that runs
      ansible.builtin.include_tasks: {tasks}/export_release_cleanup.yml
"""


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.mark.docker
def test_check_mode_plans_the_target_with_the_checkouts_untracked_env(tmp_path: Path) -> None:
    # Found as a new user: the team keeps secrets in an untracked .env beside compose.yaml;
    # `--check -e stagegate_release=r1.1` failed "required variable API_TOKEN is missing a
    # value" in the copy read from the repository, while the real promotion works.
    repo = tmp_path / "repo"
    repo.mkdir()
    git("init", "-q", "-b", "main", cwd=repo)
    (repo / ".gitignore").write_text(".env\n")
    (repo / "compose.yaml").write_text(COMPOSE)
    (repo / "migrations").mkdir()
    (repo / "migrations" / "001_init.sql").write_text("CREATE TABLE t (id int);\n")
    git("add", "-A", cwd=repo)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "r1", cwd=repo)
    git("tag", "r1.1", cwd=repo)
    checkout = tmp_path / "checkout"
    git("clone", "-q", str(repo), str(checkout), cwd=tmp_path)
    (checkout / ".env").write_text(f"API_TOKEN={SECRET}\n")
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY.format(tasks=REPO_ROOT / "playbooks" / "tasks"))
    # in the inventory, as users set them: extra vars could not be pointed at the copy
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        textwrap.dedent(f"""\
            all:
              hosts:
                localhost:
                  ansible_connection: local
                  ansible_python_interpreter: {VENV_BIN / "python"}
              vars:
                stagegate_source_repo: {repo}
                stagegate_project_dir: {checkout}
                stagegate_migrations_dir: {checkout}/migrations
            """)
    )
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "TMPDIR": str(tmp_path),  # the copy goes there, so a failed run leaves nothing behind
    }
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-vv", "--check", "--diff", str(playbook),
         "-i", str(inventory), "-e", "stagegate_release=r1.1"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    planned = re.search(r'"msg": "planned (\S+)"', output)
    assert planned, output
    assert "/stagegate-release-" in planned.group(1)  # the copy, not the checkout
    assert not Path(planned.group(1)).exists()  # removed at the end
    assert SECRET not in output
    expected = [".env", ".git", ".gitignore", "compose.yaml", "migrations"]
    assert sorted(p.name for p in checkout.iterdir()) == expected
