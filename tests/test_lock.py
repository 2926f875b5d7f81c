"""The deploy lock: exactly one winner among concurrent runs, the loser told who holds it and
for how long, expiry takeover, explicit break, release by the owner only, and the
check/real/check/real ladder, through real `ansible-playbook` runs and real processes."""

from __future__ import annotations

import json
import multiprocessing
import re
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.stagegate.release.plugins.module_utils._lock import (
    ACQUIRED,
    DeployLock,
    LockHeldError,
    action_message,
)
from preflight_fixtures import DeployHost, Run

HOLDER_MESSAGE = re.compile(
    r"deploy lock \S+/lock\.json is held by (?P<owner>\S+) \(run (?P<run>[^)]+)\), "
    r"held for (?P<age>\d+(s|m\d\ds|h\d\dm)), expires in"
)


def _contend(state_dir: str, run_id: str, start: Any, results: Any) -> None:
    lock = DeployLock(state_dir)
    start.wait()
    try:
        action, _, _ = lock.acquire(run_id, f"{run_id}@host", 600)
        results.put((run_id, action))
    except LockHeldError as exc:
        results.put((run_id, str(exc)))


def test_many_processes_racing_for_a_free_lock_yield_one_winner(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    start, results = ctx.Event(), ctx.Queue()
    runs = [f"run{i}" for i in range(8)]
    procs = [ctx.Process(target=_contend, args=(str(tmp_path), r, start, results)) for r in runs]
    for proc in procs:
        proc.start()
    start.set()
    outcomes = dict(results.get(timeout=60) for _ in runs)
    for proc in procs:
        proc.join(timeout=30)
    winners = [run for run, outcome in outcomes.items() if outcome == ACQUIRED]
    assert len(winners) == 1
    holder = json.loads((tmp_path / "lock.json").read_text())
    assert holder["run_id"] == winners[0]
    for run, outcome in outcomes.items():
        if run != winners[0]:
            assert f"held by {winners[0]}@host (run {winners[0]})" in outcome


def lock_play(host: DeployHost, tmp_path: Path, *args: str, **extra: Any) -> tuple[Run, dict]:  # type: ignore[type-arg]
    result_file = tmp_path / "result.json"
    result_file.unlink(missing_ok=True)
    run = host.play("preflight_lock.yml", *args, result_file=str(result_file), **extra)
    result = json.loads(result_file.read_text()) if result_file.exists() else {}
    return run, result


def write_lock(host: DeployHost, run_id: str, owner: str, age: int, ttl: int) -> None:
    """A lock taken `age` seconds ago by another run."""
    clock = DeployLock(str(host.state_dir)).clock
    DeployLock(str(host.state_dir), clock=lambda: clock() - age).acquire(run_id, owner, ttl)


@pytest.mark.slow
def test_two_concurrent_runs_one_wins_the_other_names_holder_and_age(
    deploy_host: DeployHost,
) -> None:
    runs = {
        name: deploy_host.start("preflight_lock.yml", lock_run_id=name, lock_owner=f"{name}@ci")
        for name in ("first", "second")
    }
    finished = {name: proc.communicate(timeout=300) for name, proc in runs.items()}
    codes = {name: proc.returncode for name, proc in runs.items()}
    assert sorted(codes.values()) == [0, 2], finished
    winner = next(name for name, code in codes.items() if code == 0)
    loser = next(name for name, code in codes.items() if code != 0)
    match = HOLDER_MESSAGE.search("".join(finished[loser]))
    assert match, finished[loser]
    assert match["owner"] == f"{winner}@ci"
    assert match["run"] == winner
    assert json.loads((deploy_host.state_dir / "lock.json").read_text())["run_id"] == winner


@pytest.mark.slow
def test_acquire_ladder_check_real_check_real(deploy_host: DeployHost, tmp_path: Path) -> None:
    lock_file = deploy_host.state_dir / "lock.json"
    steps = []
    for args in (("--check",), (), ("--check",), ()):
        run, result = lock_play(deploy_host, tmp_path, *args, lock_run_id="r1", lock_owner="me@ci")
        assert run.rc == 0, run.output
        steps.append((result["changed"], result["action"]))
        if len(steps) == 1:
            assert not deploy_host.state_dir.exists()  # check mode wrote nothing
    assert steps == [
        (True, "acquired"),
        (True, "acquired"),
        (False, "already_held"),
        (False, "already_held"),
    ]
    held = json.loads(lock_file.read_text())
    assert held["owner"] == "me@ci"
    assert held["run_id"] == "r1"


@pytest.mark.slow
def test_release_ladder_and_only_the_owner_releases(
    deploy_host: DeployHost, tmp_path: Path
) -> None:
    lock_file = deploy_host.state_dir / "lock.json"
    write_lock(deploy_host, "r1", "me@ci", age=5, ttl=600)
    run, _ = lock_play(deploy_host, tmp_path, lock_state="released", lock_run_id="intruder")
    assert run.rc != 0
    assert "held by me@ci (run r1)" in run.output
    assert "not by run intruder; left in place" in run.output
    assert lock_file.exists()
    steps = []
    for args in (("--check",), (), ("--check",), ()):
        run, result = lock_play(
            deploy_host, tmp_path, *args, lock_state="released", lock_run_id="r1"
        )
        assert run.rc == 0, run.output
        steps.append((result["changed"], result["action"], lock_file.exists()))
    assert steps == [
        (True, "released", True),
        (True, "released", False),
        (False, "not_held", False),
        (False, "not_held", False),
    ]


@pytest.mark.slow
def test_an_expired_lock_is_taken_over_and_says_so(deploy_host: DeployHost, tmp_path: Path) -> None:
    write_lock(deploy_host, "dead-run", "gone@ci", age=7200, ttl=3600)
    run, result = lock_play(deploy_host, tmp_path, "--check", lock_run_id="r2")
    assert (run.rc, result["action"], result["changed"]) == (0, "taken_over_expired", True)
    assert json.loads((deploy_host.state_dir / "lock.json").read_text())["run_id"] == "dead-run"
    run, result = lock_play(deploy_host, tmp_path, lock_run_id="r2", lock_owner="me@ci")
    assert run.rc == 0, run.output
    assert result["action"] == "taken_over_expired"
    assert result["msg"].startswith("took over an expired deploy lock from gone@ci (run dead-run)")
    assert result["previous"]["run_id"] == "dead-run"
    assert json.loads((deploy_host.state_dir / "lock.json").read_text())["run_id"] == "r2"


@pytest.mark.slow
def test_a_live_lock_is_broken_only_when_asked(deploy_host: DeployHost, tmp_path: Path) -> None:
    write_lock(deploy_host, "stuck-run", "other@ci", age=90, ttl=3600)
    run, _ = lock_play(deploy_host, tmp_path, lock_run_id="r3")
    assert run.rc != 0
    match = HOLDER_MESSAGE.search(run.output)
    assert match, run.output
    assert (match["owner"], match["run"], match["age"][:1]) == ("other@ci", "stuck-run", "1")
    assert "set break_lock (stagegate_break_lock=true)" in run.output
    run, result = lock_play(deploy_host, tmp_path, lock_run_id="r3", lock_break=True)
    assert run.rc == 0, run.output
    assert result["action"] == "broken"
    assert "broke the live deploy lock of other@ci (run stuck-run)" in result["msg"]
    assert json.loads((deploy_host.state_dir / "lock.json").read_text())["run_id"] == "r3"


def test_an_unreadable_lock_is_not_silently_replaced(tmp_path: Path) -> None:
    (tmp_path / "lock.json").write_text("{not json")
    lock = DeployLock(str(tmp_path))
    with pytest.raises(LockHeldError, match="held by an unreadable lock file"):
        lock.acquire("r1", "me@ci", 60)
    action, record, previous = lock.acquire("r1", "me@ci", 60, break_lock=True)
    assert (action, record["run_id"], "corrupt" in previous) == ("broken", "r1", True)


GARBLED = {
    # a bad start and an expired end: taken over, then the run failed holding it (before)
    "bad acquired_at, expired": {"acquired_at": "yesterday", "expires_at": "2020-01-01T00:00:00Z"},
    # an end that does not parse: not even break_lock could break it (before)
    "bad expires_at": {"acquired_at": "2026-11-22T12:00:00Z", "expires_at": "2026-11-22 13:00"},
    "numeric expires_at": {"acquired_at": "2026-11-22T12:00:00Z", "expires_at": 1764000000},
}


@pytest.mark.parametrize("times", GARBLED.values(), ids=list(GARBLED))
def test_a_garbled_lock_is_named_broken_only_when_asked_and_releasable(
    tmp_path: Path, times: dict[str, Any]
) -> None:
    garbled = {"owner": "gone@ci", "run_id": "dead-run", "ttl": 3600, **times}
    (tmp_path / "lock.json").write_text(json.dumps(garbled))
    lock = DeployLock(str(tmp_path))
    bad = next(key for key in ("acquired_at", "expires_at") if key in str(lock.read()))

    with pytest.raises(LockHeldError) as refused:
        lock.acquire("r1", "me@ci", 60)
    assert f"held by an unreadable lock file ({bad} {times[bad]!r} is not a UTC time" in str(
        refused.value
    )
    assert "written by gone@ci (run dead-run)" in str(refused.value)
    assert "set break_lock (stagegate_break_lock=true)" in str(refused.value)
    assert json.loads((tmp_path / "lock.json").read_text()) == garbled  # untouched

    action, record, previous = lock.acquire("r1", "me@ci", 60, break_lock=True)
    assert (action, record["run_id"], previous["run_id"]) == ("broken", "r1", "dead-run")
    assert action_message(action, previous, lock.clock()).startswith(
        "broke an unreadable lock file ("
    )
    assert lock.release("r1") == ("released", record)  # what it took, it can release
    assert not (tmp_path / "lock.json").exists()


def test_the_run_named_in_a_garbled_lock_can_still_release_it(tmp_path: Path) -> None:
    (tmp_path / "lock.json").write_text(
        json.dumps({"owner": "me@ci", "run_id": "r1", "acquired_at": "?", "expires_at": "?"})
    )
    lock = DeployLock(str(tmp_path))
    with pytest.raises(LockHeldError, match="not by run r2; left in place"):
        lock.release("r2")
    action, previous = lock.release("r1")
    assert (action, previous["run_id"], "corrupt" in previous) == ("released", "r1", True)


@pytest.mark.slow
def test_the_module_breaks_a_garbled_lock_and_says_so(
    deploy_host: DeployHost, tmp_path: Path
) -> None:
    deploy_host.state_dir.mkdir(parents=True)
    lock_file = deploy_host.state_dir / "lock.json"
    lock_file.write_text(
        json.dumps({"owner": "gone@ci", "run_id": "dead", "acquired_at": "x", "expires_at": "y"})
    )
    run, _ = lock_play(deploy_host, tmp_path, lock_run_id="r4")
    assert run.rc != 0
    assert "held by an unreadable lock file (acquired_at 'x' is not a UTC time" in run.output
    assert "Traceback" not in run.output
    run, result = lock_play(deploy_host, tmp_path, lock_run_id="r4", lock_break=True)
    assert run.rc == 0, run.output
    assert result["action"] == "broken"
    assert result["msg"].startswith("broke an unreadable lock file (acquired_at 'x'")
    assert json.loads(lock_file.read_text())["run_id"] == "r4"
    run, result = lock_play(deploy_host, tmp_path, lock_state="released", lock_run_id="r4")
    assert (run.rc, result["action"], lock_file.exists()) == (0, "released", False)
