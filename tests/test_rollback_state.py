"""rollback_state starts a rollback with the deploy lock and finishes it with the ledger record
and the lock's release, each in one module run, through real `ansible-playbook` runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ansible_collections.stagegate.release.plugins.module_utils._lock import DeployLock
from preflight_fixtures import DeployHost, Run

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
