"""Preflight over a fleet on real SSH hosts: an app host that cannot be reached is named, with
why, and the run stops on every host before anything changes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fleet_fixtures import fleet

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow

PLAYBOOK = """
- name: Preflight, then the first change
  hosts: staging
  gather_facts: false
  tasks:
    - name: Every host of the fleet answers
      ansible.builtin.import_role:
        name: stagegate.release.preflight
        tasks_from: fleet_hosts
    - name: The first change
      ansible.builtin.copy:
        content: changed
        dest: /srv/stagegate/changed
        mode: "0644"
"""


def play(playbook: Path, inventory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "ansible-playbook"), str(playbook), "-i", str(inventory)],
        capture_output=True, text=True, check=False,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
             "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
    )  # fmt: skip


def test_an_unreachable_app_host_is_named_before_anything_changes(tmp_path: Path) -> None:
    playbook = tmp_path / "preflight.yml"
    playbook.write_text(PLAYBOOK)
    with fleet(tmp_path / "hosts", apps=3) as hosts:
        inventory = hosts.write_inventory(tmp_path / "hosts.yml")
        hosts.stop(hosts.apps[1])
        run = play(playbook, inventory)
        assert run.returncode != 0
        assert "1 host(s) of staging cannot be reached, nothing was changed: app2 (" in run.stdout
        assert "TASK [The first change]" not in run.stdout
        assert not any((h.root / "changed").exists() for h in hosts.hosts)
        # every host back: the same play goes on to the change
        hosts.apps.pop(1)
        run = play(playbook, hosts.write_inventory(tmp_path / "hosts-ok.yml"))
        assert run.returncode == 0, run.stdout[-3000:]
        assert all((h.root / "changed").exists() for h in hosts.hosts)
