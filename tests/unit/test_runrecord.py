"""The run record (src/stagegate/runrecord.py): phases, status per host, where a run stopped."""

from __future__ import annotations

from pathlib import Path

from ansible_collections.stagegate.release.plugins.module_utils._checks_common import Outcome

from stagegate.runrecord import ENV_VAR, RunRecord, load_current, phase_of, save


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def run(record: RunRecord, tags: list[str], host: str = "web", status: str = "ok") -> None:
    record.task_started(tags)
    record.task_result(host, status, task=f"task {tags}", msg="boom" if status == "failed" else "")


def test_a_task_belongs_to_the_phase_of_its_playbook_step() -> None:
    # tags as Ansible lists them: the task's own first, then those it inherits
    assert phase_of(["deploy", "deploy_start", "deploy"]) == "deploy"
    # the backup role's tasks, included by the adopt step (include_tasks, apply: tags [adopt])
    assert phase_of(["backup", "backup_dump", "adopt"]) == "adopt"
    # the include itself, `tags: [adopt, preflight]`: it belongs to preflight
    assert phase_of(["adopt", "preflight"]) == "preflight"
    # preflight's task file imported by the source step
    assert phase_of(["preflight", "source"]) == "source"
    assert phase_of(["own", "always"]) == ""


def test_phases_end_when_another_starts_or_a_task_outside_phases_runs() -> None:
    record = RunRecord(Clock())
    run(record, ["always"])  # before the phases: not a phase
    run(record, ["preflight"])
    run(record, ["preflight", "preflight_lock"])
    run(record, ["backup"], status="skipped")  # a first deploy: every backup task skipped
    run(record, ["backup"], status="skipped")
    run(record, ["build"])
    run(record, ["always"])  # the play's own step ends the build phase
    phases = record.phases_for("web")
    assert [(p["name"], p["status"]) for p in phases] == [
        ("preflight", "ok"),
        ("backup", "skipped"),
        ("build", "ok"),
    ]
    assert all(p["seconds"] > 0 for p in phases)
    assert record.stopped_for("web") is None
    assert not record.refused("web")


def test_a_run_limited_by_tags_records_only_its_phases() -> None:
    # --tags backup: Ansible still runs each role's argument check, tagged [always, <phase>]
    record = RunRecord(Clock())
    run(record, ["always"])
    run(record, ["always", "source"])
    run(record, ["always", "backup"])
    run(record, ["backup", "backup_dump", "backup"])
    run(record, ["always", "migration_dryrun"])
    run(record, ["always", "deploy"])
    run(record, ["always"])
    assert [p["name"] for p in record.phases_for("web")] == ["backup"]


def test_an_optional_phase_that_did_not_happen_is_left_out() -> None:
    record = RunRecord(Clock())
    run(record, ["preflight"])
    run(record, ["preflight", "adopt"], status="skipped")  # not adopting: the include is skipped
    run(record, ["source"])
    run(record, ["always"])
    assert [p["name"] for p in record.phases_for("web")] == ["preflight", "source"]
    adopting = RunRecord(Clock())
    run(adopting, ["preflight"])
    run(adopting, ["backup", "backup_dump", "adopt"])  # the backup role, included by adopt
    run(adopting, ["source"])
    run(adopting, ["always"])
    assert [p["name"] for p in adopting.phases_for("web")] == ["preflight", "adopt", "source"]


def test_the_failed_phase_is_known_and_reported_once() -> None:
    record = RunRecord(Clock())
    run(record, ["preflight"])
    run(record, ["deploy"])
    run(record, ["deploy"], status="failed")
    run(record, ["always"])  # the rescue starts
    assert record.phases_for("web")[-1]["status"] == "failed"
    assert record.stopped_for("web") == {
        "phase": "deploy",
        "reason": "task 'task ['deploy']' failed: boom",
    }
    assert not record.refused("web")
    assert record.summary("web")["before_deploy"] is False  # the deploy changed the release
    assert record.stopped_for("other-host") is None
    record.reported()  # the promotion's gate wrote its report
    run(record, ["rollback"])  # the automatic rollback's gate starts a new story
    assert record.stopped_for("web") is None
    assert record.phases_for("web") == []


def test_a_failure_before_preflight_ends_is_a_refusal() -> None:
    record = RunRecord(Clock())
    run(record, ["always"], status="failed")  # the release ref does not exist
    assert record.refused("web")
    assert record.stopped_for("web") == {
        "phase": "task ['always']",
        "reason": "task 'task ['always']' failed: boom",
    }
    locked = RunRecord(Clock())
    run(locked, ["preflight"], status="failed")  # the deploy lock is held by another run
    assert locked.refused("web")


def test_a_failure_before_the_deploy_left_the_release_that_ran() -> None:
    for phase in ("source", "backup", "migration_dryrun", "build"):
        record = RunRecord(Clock())
        run(record, ["preflight"])
        run(record, [phase], status="failed")
        run(record, ["always"])
        summary = record.summary("web")
        assert (summary["before_deploy"], summary["refused"]) == (True, False), phase
        assert record.fleet_summary(["web"])["before_deploy"] is True
    refused = RunRecord(Clock())
    run(refused, ["preflight"], status="failed")
    assert refused.summary("web")["before_deploy"] is True
    assert RunRecord(Clock()).summary("web")["before_deploy"] is False  # nothing failed


def test_a_phase_failed_for_one_host_only() -> None:
    record = RunRecord(Clock())
    record.task_started(["deploy"])
    record.task_result("a", "ok")
    record.task_result("b", "failed", task="start", msg="unhealthy")
    record.task_started(["validate"])
    assert record.phases_for("a")[0]["status"] == "ok"
    assert record.phases_for("b")[0]["status"] == "failed"
    assert record.stopped_for("a") is None


def test_the_record_round_trips_through_its_file(tmp_path: Path) -> None:
    record = RunRecord(Clock())
    run(record, ["preflight"])
    run(record, ["deploy"], status="failed")
    record.task_started(["always"])
    path = tmp_path / "run.json"
    save(record, path)
    loaded = load_current({ENV_VAR: str(path)})
    assert loaded is not None
    assert loaded.summary("web") == record.summary("web")
    assert load_current({}) is None
    assert load_current({ENV_VAR: str(tmp_path / "missing.json")}) is None


def test_a_phase_skipped_with_a_reason_keeps_it() -> None:
    # The build phase of a strategy without images: its note task counts as skipped, the
    # image tasks are skipped, and the phase carries the reason (for the report).
    record = RunRecord(Clock())
    record.task_started(["build"])
    record.task_result("web", "ok", task="say", skip_note="strategy symlink builds no images")
    record.task_result("web", "skipped", task="build")
    record.task_started(["deploy"])
    record.task_result("web", "ok", task="deploy")
    record.task_started(["always"])
    phases = record.phases_for("web")
    assert phases[0] == {
        "name": "build",
        "status": "skipped",
        "seconds": phases[0]["seconds"],
        "note": "strategy symlink builds no images",
    }
    assert "note" not in phases[1]
    assert RunRecord.from_dict(record.as_dict()).phases_for("web")[0]["note"] == phases[0]["note"]


def test_a_fleet_summary_has_each_phase_once_over_every_host() -> None:
    """A serial rollout runs deploy and validate once per batch: one entry each, their time
    added up; a phase failed on any host is failed; skipped only where every host skipped it;
    the stop names its host."""
    record = RunRecord(Clock())
    run(record, ["preflight"], host="app1")
    run(record, ["preflight"], host="db1")
    run(record, ["backup"], host="db1", status="skipped")  # a first deploy
    for host, status in (("app1", "ok"), ("app2", "failed")):  # two batches
        run(record, ["deploy"], host=host, status=status)
        run(record, ["validate"], host=host)
    run(record, ["always"])
    summary = record.fleet_summary(["app1", "app2", "db1"])
    assert [(p["name"], p["status"]) for p in summary["phases"]] == [
        ("preflight", "ok"),
        ("backup", "skipped"),
        ("deploy", "failed"),
        ("validate", "ok"),
    ]
    deploy_runs = [p for p in record.phases if p.name == "deploy"]
    assert len(deploy_runs) == 2
    assert summary["phases"][2]["seconds"] == sum(p.ended - p.started for p in deploy_runs)
    assert summary["stopped"] == {
        "phase": "deploy",
        "reason": "task 'task ['deploy']' failed on app2: boom",
    }
    assert summary["refused"] is False
    # the hosts asked about only: app2's failure is not db1's
    assert record.fleet_summary(["db1"])["stopped"] is None


def test_a_stop_reason_and_a_check_message_are_one_line() -> None:
    """libpq's messages hold newlines and tabs; a trial saw them break the progress lines and
    report.md's lists."""
    libpq = "connection failed: port 5432 failed: Connection refused\n\tIs the server running?"
    record = RunRecord(Clock())
    record.task_started(["deploy"])
    record.task_result("web", "failed", task="migrate", msg=libpq)
    assert record.stopped_for("web") == {
        "phase": "deploy",
        "reason": "task 'migrate' failed: connection failed: port 5432 failed: Connection "
        "refused Is the server running?",
    }
    message = Outcome("ERROR", f"cannot connect to PostgreSQL: {libpq}").to_dict()["message"]
    assert message.endswith("Connection refused Is the server running?")
