"""rollback_state starts a rollback with the deploy lock and finishes it with the ledger record
and the lock's release, each in one module run, through real `ansible-playbook` runs."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.stagegate.release.plugins.module_utils._lock import DeployLock
from ansible_collections.stagegate.release.plugins.module_utils._rollback import RollbackState
from ansible_collections.stagegate.release.plugins.module_utils._state_files import (
    StateFileError,
)
from preflight_fixtures import REPO_ROOT, VENV_BIN, DeployHost, Run, playbook_env

PLAN = {"current": {"release": "v2"}, "target": {"release": "v1"}, "nothing_to_do": False}
STARTED = {"state": "started", "plan": PLAN, "run_id": "rollback-1", "lock": {"owner": "me@h"}}


def call(host: DeployHost, args: dict[str, Any], *flags: str) -> tuple[Run, dict[str, Any]]:
    result_file = host.root / "result.json"
    result_file.unlink(missing_ok=True)
    run = host.play("rollback_state.yml", *flags, state_args=args, result_file=str(result_file))
    return run, json.loads(result_file.read_text())


def files(host: DeployHost) -> dict[str, str]:
    names = ("lock.json", "rollback.json", "ledger.jsonl")
    return {n: (host.state_dir / n).read_text() for n in names if (host.state_dir / n).exists()}


def test_start_takes_the_lock_first_and_a_live_holder_stops_it_with_nothing_written(
    deploy_host: DeployHost,
) -> None:
    deploy_host.state_dir.mkdir(parents=True)
    DeployLock(str(deploy_host.state_dir)).acquire("staging-7", "ci@runner", 600)
    before = files(deploy_host)

    run, result = call(deploy_host, STARTED)

    assert run.rc != 0
    assert "is held by ci@runner (run staging-7), held for" in result["msg"]
    assert result["holder"]["run_id"] == "staging-7"
    assert files(deploy_host) == before, "no rollback recorded, the lock left alone"

    run, result = call(deploy_host, {**STARTED, "lock": {"owner": "me@h", "break_lock": True}})

    assert run.rc == 0, run.output[-3000:]
    assert result["changed"] is True
    assert result["lock"]["action"] == "broken"
    assert "broke the live deploy lock of ci@runner (run staging-7)" in result["lock"]["msg"]
    assert result["record"]["status"] == "in_progress"
    lock = json.loads((deploy_host.state_dir / "lock.json").read_text())
    assert (lock["run_id"], lock["owner"]) == ("rollback-1", "me@h")


def test_finish_records_once_marks_done_and_releases_the_lock(
    deploy_host: DeployHost, tmp_path: Path
) -> None:
    run, _ = call(deploy_host, STARTED)
    assert run.rc == 0, run.output[-3000:]
    record = {"release": "v1", "verdict": "GO", "kind": "rollback", "run_id": "rollback-1"}
    finish = {
        "state": "finished",
        "run_id": "rollback-1",
        "verdict": "GO",
        "report": str(tmp_path / "report"),
        "ledger_record": record,
        "release_lock": True,
    }
    started = files(deploy_host)

    run, result = call(deploy_host, finish, "--check")

    assert run.rc == 0, run.output[-3000:]
    assert result["changed"] is True
    assert result["ledger"]["appended"] is True
    assert result["lock"]["action"] == "released"
    assert files(deploy_host) == started, "check mode writes nothing"

    run, result = call(deploy_host, finish)

    assert run.rc == 0, run.output[-3000:]
    assert result["changed"] is True
    assert result["record"]["status"] == "done"
    assert not (deploy_host.state_dir / "lock.json").exists()
    ledger = (deploy_host.state_dir / "ledger.jsonl").read_text().splitlines()
    assert [json.loads(line)["run_id"] for line in ledger] == ["rollback-1"]

    done = files(deploy_host)
    run, result = call(deploy_host, finish)

    assert run.rc == 0, run.output[-3000:]
    assert result["changed"] is False
    assert result["ledger"]["appended"] is False
    assert result["lock"]["action"] == "not_held"
    assert files(deploy_host) == done


def test_missing_run_id_is_refused_before_anything_is_written(deploy_host: DeployHost) -> None:
    run, _ = call(deploy_host, STARTED)
    assert run.rc == 0, run.output[-3000:]
    started = files(deploy_host)
    record = {"release": "v1", "verdict": "GO", "run_id": "rollback-1"}
    finish = {"state": "finished", "verdict": "GO", "ledger_record": record, "release_lock": True}

    run, result = call(deploy_host, finish)

    assert run.rc != 0
    assert "release_lock is True but all of the following are missing: run_id" in result["msg"]
    assert files(deploy_host) == started, "no ledger record, state or lock change"


def test_state_file_errors_name_the_file_the_operation_and_the_cause(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state directory should be\n")
    with pytest.raises(StateFileError) as caught:
        RollbackState(str(blocker / "state")).write({"status": "in_progress"})
    message = str(caught.value)
    assert message.startswith(f"cannot create the state directory {blocker / 'state'}: ")
    assert "a part of the path is a file, not a directory (errno 20)" in message
    assert not message.startswith("[Errno")


READ_ONLY_PLAY = """
- name: Every state writer on a read-only state directory
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Start a rollback
      stagegate.release.rollback_state:
        state_dir: "{{ state_dir }}"
        state: started
        run_id: r1
        plan: {current: {release: v2}, target: {release: v1}}
      register: started
      ignore_errors: true
    - name: Take the lock
      stagegate.release.deploy_lock:
        state_dir: "{{ state_dir }}"
        run_id: r1
      register: lock
      ignore_errors: true
    - name: Append to the ledger
      stagegate.release.ledger:
        state_dir: "{{ state_dir }}"
        state: present
        record: {release: v1, verdict: GO}
      register: ledger
      ignore_errors: true
    - name: Write a release manifest
      stagegate.release.release_manifest:
        state_dir: "{{ state_dir }}"
        release: v1
      register: manifest
      ignore_errors: true
    - name: Keep the messages
      ansible.builtin.copy:
        content: "{{ [started, lock, ledger, manifest] | map(attribute='msg') | to_json }}"
        dest: "{{ result_file }}"
        mode: "0600"
"""


@pytest.mark.slow
def test_a_read_only_state_dir_fails_every_writer_with_a_message_naming_it(
    tmp_path: Path,
) -> None:
    state_dir, result_file = tmp_path / "state", tmp_path / "messages.json"
    state_dir.mkdir()
    playbook = tmp_path / "read_only.yml"
    playbook.write_text(READ_ONLY_PLAY)
    play = [
        str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
        "-e", json.dumps({"ansible_python_interpreter": sys.executable,
                          "state_dir": str(state_dir), "result_file": str(result_file)}),
        str(playbook),
    ]  # fmt: skip
    # A read-only file system (errno 30) on the state dir, in a private mount namespace: the
    # mount ends with the command, even when the test fails.
    script = f"mount -t tmpfs -o ro,size=1m stagegate-ro {shlex.quote(str(state_dir))} && exec "
    proc = subprocess.run(
        ["unshare", "--mount", "sh", "-c", script + shlex.join(play)],
        cwd=REPO_ROOT, env=playbook_env(), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    started, lock, ledger, manifest = json.loads(result_file.read_text())
    assert started.startswith(f"cannot write the rollback state {state_dir}/rollback.json: ")
    assert lock.startswith(f"cannot open the deploy lock's guard file {state_dir}/.lock.guard: ")
    assert ledger.startswith(f"cannot open the ledger {state_dir}/ledger.jsonl: ")
    assert manifest.startswith(f"cannot create the release directory {state_dir}/releases/v1: ")
    for message in (started, lock, ledger, manifest):
        assert "the file system is read-only (errno 30" in message
        assert "stagegate_state_dir must be on a writable file system" in message
        assert "Module failed" not in message
