"""The run record through real ansible-playbook runs: the callback stagegate.release.progress
keeps it from the phase tags, the gate and stagegate.release.run_record read it. A failure in a
phase names that phase in report.json without the playbook naming it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT

BIN = Path(sys.executable).parent

PLAYBOOK = """
- name: A run whose deploy phase fails after a skipped backup
  hosts: deploy
  gather_facts: false
  tasks:
    - name: The record is kept
      stagegate.release.run_record:
      tags: [always]

    - name: Phases
      block:
        - name: Preflight
          ansible.builtin.debug:
            msg: preflight
          tags: [preflight]

        - name: Back up (nothing runs yet)
          ansible.builtin.debug:
            msg: backup
          when: false
          tags: [backup]

        - name: Start the app tier
          ansible.builtin.fail:
            msg: "{{ fail_msg }}"
          tags: [deploy]
      rescue:
        - name: Read where the run stopped
          stagegate.release.run_record:
          register: run
          tags: [always]

        - name: Write the reports of the stopped run
          stagegate.release.gate:
            release: v9
            report_dir: "{{ report_dir }}"
          tags: [always]

        # An automatic rollback's gate: the promotion's failure is already reported.
        - name: The next gate starts a new story
          stagegate.release.gate:
            release: v8
            report_dir: "{{ report_dir }}/rollback"
          tags: [always]

        - name: Keep what the record said
          ansible.builtin.copy:
            content: "{{ run | to_json }}"
            dest: "{{ report_dir }}/run.json"
            mode: "0600"
          tags: [always]
"""


def play(tmp_path: Path, *, fail_msg: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    (tmp_path / "pb.yml").write_text(PLAYBOOK)
    (tmp_path / "hosts.ini").write_text("[deploy]\nlocalhost ansible_connection=local\n")
    variables = {
        "ansible_python_interpreter": sys.executable,
        "report_dir": str(tmp_path / "reports"),
        "fail_msg": fail_msg,
    }
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(tmp_path / "hosts.ini"),
         "-e", json.dumps(variables), str(tmp_path / "pb.yml")],
        capture_output=True, text=True, cwd=REPO_ROOT, check=False,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"), **env},
    )  # fmt: skip


def test_a_failed_phase_is_named_in_the_report_from_the_run_record(tmp_path: Path) -> None:
    kept = tmp_path / "record.json"
    proc = play(
        tmp_path, fail_msg="api did not become healthy", env={"STAGEGATE_RUN_RECORD": str(kept)}
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    report = json.loads((tmp_path / "reports" / "report.json").read_text())
    assert report["verdict"] == "NO_GO"
    assert report["stopped"] == {
        "phase": "deploy",
        "reason": "task 'Start the app tier' failed: api did not become healthy",
    }
    assert [(p["name"], p["status"]) for p in report["phases"]] == [
        ("preflight", "ok"),
        ("backup", "skipped"),
        ("deploy", "failed"),
    ]
    markdown = (tmp_path / "reports" / "report.md").read_text()
    assert "The run **stopped in phase `deploy`**" in markdown
    run = json.loads((tmp_path / "reports" / "run.json").read_text())
    assert run["stopped"]["phase"] == "deploy"
    assert run["refused"] is False
    # the rollback's gate did not take the promotion's failure for its own
    rollback = json.loads((tmp_path / "reports" / "rollback" / "report.json").read_text())
    assert rollback["stopped"] is None
    assert rollback["phases"] == []
    # STAGEGATE_RUN_RECORD set by the caller: the file is kept after the run
    assert json.loads(kept.read_text())["failures"][0]["phase"] == "deploy"


def test_without_the_callback_the_run_record_names_the_setting(tmp_path: Path) -> None:
    other = {"ANSIBLE_CALLBACKS_ENABLED": "ansible.builtin.tree",
             "ANSIBLE_CALLBACK_TREE_DIR": str(tmp_path / "tree")}  # fmt: skip
    proc = play(tmp_path, fail_msg="x", env=other)
    assert proc.returncode != 0
    assert "callbacks_enabled = stagegate.release.progress" in proc.stdout
    assert not (tmp_path / "reports").exists()
