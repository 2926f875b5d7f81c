"""Bugs a new user's trial found (an application stagegate had never seen), each on real components.

- The time stamps stagegate takes with Ansible's `now(utc=true).isoformat()` (the deploy phase's
  `deploy_started_at`, which a `logs` check reads as `since`) carry no UTC offset. Read as the
  controller's local time, on a controller west of UTC the time lies in the future, Docker
  returns no log line, and the logs check passed while the release logged errors.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import unique_name
from sandbox_fixtures import run_playbook

BUSYBOX = "stagegate/busybox:latest"


@pytest.mark.docker
def test_logs_since_a_utc_time_stamp_reads_the_lines_logged_after_it_west_of_utc(
    tmp_path: Path, docker_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = unique_name("sgtu20")
    result_file = tmp_path / "result.json"
    playbook = tmp_path / "logs_since.yml"
    playbook.write_text(
        textwrap.dedent(
            f"""\
            - hosts: localhost
              gather_facts: false
              tasks:
                - name: Note the time as the deploy phase does
                  ansible.builtin.set_fact:
                    started: "{{{{ now(utc=true).isoformat() }}}}"
                - name: Start a service that logs an error
                  ansible.builtin.command: >-
                    docker run -d --name {project}-web-1
                    --label com.docker.compose.project={project}
                    --label com.docker.compose.service=web
                    {BUSYBOX} sh -c 'echo "ERROR release broke"; sleep 300'
                  changed_when: true
                - name: Wait until the line is logged
                  ansible.builtin.command: docker logs {project}-web-1
                  register: logged
                  until: "'ERROR release broke' in logged.stdout"
                  retries: 30
                  delay: 1
                  changed_when: false
                - name: Scan the logs since the deploy started
                  stagegate.release.checks:
                    checks:
                      - name: logs_clean
                        type: logs
                        group: observability
                        options: {{project: {project}, since: "{{{{ started }}}}"}}
                  register: validation
                - name: Keep the result
                  ansible.builtin.copy:
                    content: "{{{{ validation.results | to_json }}}}"
                    dest: {result_file}
                    mode: "0600"
            """
        )
    )
    monkeypatch.setenv("TZ", "America/New_York")  # a controller five hours behind UTC
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n")
    try:
        run = run_playbook(str(playbook), {"ansible_python_interpreter": sys.executable}, inventory)
        assert run.rc == 0, run.output[-3000:]
        (check,) = json.loads(result_file.read_text())
    finally:
        subprocess.run(["docker", "rm", "-f", f"{project}-web-1"], capture_output=True, check=False)
    assert check["status"] == "FAIL", check
    assert check["metrics"]["matches"] == 1, check
