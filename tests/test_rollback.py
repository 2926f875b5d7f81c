"""playbooks/rollback.yml against one isolated sandbox stack, in the order of an incident.

The stack is deployed v1 -> v2 with the real modules (tests/playbooks/rollback_deploy.yml), then:
`--check` prints the plan and changes nothing; a rollback over an expired lock is SIGKILLed after
its database step and the re-run (through ansible_runner) finishes it; a second re-run changes
nothing. Then v2-crashloop is deployed on top (NO_GO, it migrated): production refuses without
confirmation, a live lock refuses naming its holder, break-lock proceeds and brings v1 back.
Then v2 again, rolled back by downgrade; and twice more, rollbacks SIGKILLed during the restore
itself and during the tiered start, each finished by a re-run whose report says it resumed.
The tests share the stack (a deploy costs ~20 s) and run in file order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from rollback_fixtures import GOOD, V2_OBJECTS, Rollout
from sandbox_fixtures import isolated_stack, run_playbook

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]


@pytest.fixture(scope="module")
def rollout(sandbox_repo: Path) -> Iterator[Rollout]:
    with isolated_stack(sandbox_repo, "rollback") as stack:
        out = Rollout(stack)
        out.deploy("v1")
        out.v1_rows = out.row_counts()  # type: ignore[attr-defined]
        out.deploy("v2")
        yield out


def test_check_mode_prints_the_plan_and_changes_nothing(rollout: Rollout) -> None:
    assert rollout.schema() >= V2_OBJECTS, "v2 deployed its migrations"
    before = rollout.snapshot()

    run = rollout.rollback("--check")

    assert run.returncode == 0, run.stdout[-4000:]
    assert "Current release:  v2" in run.stdout
    assert "Rollback target:  v1" in run.stdout
    assert "migrations/007_reporting_views.sql" in run.stdout  # files that differ
    assert "backups/app-before-v2.dump" in run.stdout
    assert "migrations reverted: 006_composite_indexes.sql, 007_reporting_views.sql" in run.stdout
    # Seed 004's estimated rollback time: the dump's own duration for the restore; this module's
    # deploys (tests/playbooks/rollback_deploy.yml) record no phases, so the rest is named.
    assert "Estimated time:   ~" in run.stdout
    assert "plus stop, checkout, start, verify (not measured)" in run.stdout
    assert "database: restore of the dump: ~" in run.stdout
    assert rollout.snapshot() == before


def test_rollback_killed_half_way_is_finished_by_a_rerun(rollout: Rollout) -> None:
    # A dead staging run left its lock behind, already expired: the rollback takes it over.
    rollout.write_lock("deploy@ci-7", age=timedelta(hours=2), ttl=timedelta(hours=1))
    interrupted = rollout.kill_rollback_when(
        lambda _: "database" in rollout.rollback_state().get("steps_done", {}),
        "its database step",
    )
    assert "start" not in interrupted["steps_done"]

    # The killed run's controller was another AWX pod: its host and pid mean nothing here.
    state_file = rollout.state_dir / "rollback.json"
    moved = {**interrupted, "controller": {"host": "awx-job-41-x7k2p", "pid": 7, "pid_start": "1"}}
    state_file.write_text(json.dumps(moved))

    # A promotion may not run over it, even breaking the lock (an on-call trial did, and the
    # rollback resumed two promotions later over newer data): refused, naming the rollback.
    promote = run_playbook(
        "staging.yml", {**rollout.vars, "stagegate_release": "v2", "stagegate_break_lock": True}
    )
    assert promote.rc != 0
    assert "Refused in preflight, before anything changed" in promote.stdout, promote.output[-3000:]
    assert f"the rollback {interrupted['run_id']} from v2 to v1" in promote.stdout
    assert "finish it first with playbooks/rollback.yml" in promote.stdout
    assert json.loads(state_file.read_text()) == moved
    report = rollout.rerun_as_awx(interrupted)

    assert rollout.api_version() == "v1"
    assert not V2_OBJECTS & rollout.schema(), "v2's table and view are gone"
    assert rollout.row_counts() == rollout.v1_rows  # type: ignore[attr-defined]
    records = [r for r in rollout.ledger() if r.get("kind") == "rollback"]
    assert [(r["release"], r["rolled_back_from"]) for r in records] == [("v1", "v2")]
    assert records[0]["verdict"] in GOOD
    assert report["rollback_plan"]["database"]["action"] == "restore"


def test_rerun_after_success_changes_nothing(rollout: Rollout) -> None:
    before = rollout.snapshot()

    run = rollout.rollback()

    assert run.returncode == 0, run.stdout[-4000:]
    assert "Nothing to roll back: v1 runs (already rolled back from v2)" in run.stdout
    assert "changed=0" in run.stdout
    assert rollout.snapshot() == before


def test_crash_looping_release_is_rolled_back_despite_a_live_lock(rollout: Rollout) -> None:
    rollout.deploy("v2-crashloop")  # migrates, then the API crash-loops: recorded NO_GO
    assert rollout.ledger()[-1]["verdict"] == "NO_GO"
    assert rollout.schema() >= V2_OBJECTS
    before = rollout.snapshot()

    refused = rollout.rollback(stagegate_environment="PRODUCTION")  # any case counts
    assert refused.returncode != 0
    assert "re-run with -e stagegate_confirm_production=true" in refused.stdout
    rollout.write_lock("oncall@bastion", age=timedelta(minutes=5), ttl=timedelta(hours=1))
    locked = rollout.rollback()
    assert locked.returncode != 0
    assert "held by oncall@bastion (run staging-20261122-dead), held for 5m" in locked.stdout
    after = rollout.snapshot()
    assert {k: v for k, v in after.items() if k != "lock"} == {
        k: v for k, v in before.items() if k != "lock"
    }

    run = rollout.rollback(stagegate_break_lock=True)

    assert run.returncode == 0, run.stdout[-4000:]
    assert "Current release:  v2-crashloop" in run.stdout
    assert "Rollback target:  v1" in run.stdout
    assert not (rollout.state_dir / "lock.json").exists(), "broke the lock, released its own"
    assert rollout.api_version() == "v1"
    assert not V2_OBJECTS & rollout.schema()
    assert rollout.row_counts() == rollout.v1_rows  # type: ignore[attr-defined]
    assert rollout.ledger()[-1]["rolled_back_from"] == "v2-crashloop"


def test_downgrade_reverts_the_migrations_and_keeps_data_written_since(rollout: Rollout) -> None:
    rollout.deploy("v2")
    assert rollout.schema() >= V2_OBJECTS
    with rollout.connect(autocommit=True) as conn:
        conn.execute("INSERT INTO items (name) VALUES ('written under v2')")

    plan = rollout.rollback("--check", stagegate_rollback_database="downgrade")
    assert plan.returncode == 0, plan.stdout[-4000:]
    assert "Database:         downgrade (down scripts revert the 2 migration(s) v2 applied)" in (
        plan.stdout
    )
    assert "down scripts: " in plan.stdout
    assert "plus database: down scripts (not measured)" in plan.stdout

    run = rollout.rollback(stagegate_rollback_database="downgrade")

    assert run.returncode == 0, run.stdout[-4000:]
    assert rollout.api_version() == "v1"
    assert not V2_OBJECTS & rollout.schema(), "006 and 007 reverted"
    assert rollout.sql("SELECT count(*) FROM items WHERE name = 'written under v2'") == [(1,)]
    applied = {v for (v,) in rollout.sql("SELECT version FROM stagegate_schema_migrations")}
    assert not applied & {"006_composite_indexes", "007_reporting_views"}
    record = rollout.ledger()[-1]
    assert (record["kind"], record["release"], record["rolled_back_from"]) == (
        "rollback", "v1", "v2",
    )  # fmt: skip
    # timed, so the next downgrade's estimate rests on it (a trial's records had no `database`)
    assert record["database"]["method"] == "downgrade"
    assert record["database"]["seconds"] > 0
    finished = rollout.rollback_state()
    report = json.loads((Path(finished["report"]) / "report.json").read_text())
    assert report["rollback_plan"]["database"]["action"] == "downgrade"
    # the plan as the run printed it (a trial found the data-loss words only in the output)
    assert any(line.startswith("Database:         downgrade") for line in
               report["rollback_plan"]["summary"])  # fmt: skip
    assert report["kind"] == "rollback"
    md = (Path(finished["report"]) / "report.md").read_text()
    assert md.startswith("# Rollback Report: v1 (rolled back from v2)\n"), md[:300]


@pytest.mark.timeout(600)  # a deploy, a killed rollback and its re-run
def test_killed_during_the_restore_a_rerun_restores_and_verifies(rollout: Rollout) -> None:
    if V2_OBJECTS & rollout.schema():  # run alone (-k): start from v1, as the tests above leave it
        run = rollout.rollback()
        assert run.returncode == 0, run.stdout[-4000:]
    rollout.deploy("v2")  # migrates again: its rollback restores the backup taken before it
    assert rollout.schema() >= V2_OBJECTS
    # Killed while pg_restore fills the re-created database.
    interrupted = rollout.kill_rollback_when(rollout.restoring, "the restore")
    assert "database" not in interrupted["steps_done"]  # so the re-run restores again
    marks = rollout.sql(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = 'app'"
    )
    assert "stagegate-restore" not in str(marks), "the killed restore never finished"

    report = rollout.rerun_as_awx(interrupted)

    assert report["rollback_plan"]["database"]["action"] == "restore"
    assert rollout.api_version() == "v1"
    assert not V2_OBJECTS & rollout.schema()
    assert rollout.row_counts() == rollout.backup_rows("v2")


@pytest.mark.timeout(600)
def test_killed_during_the_tiered_start_a_rerun_starts_and_verifies(rollout: Rollout) -> None:
    rollout.deploy("v2")
    assert rollout.api_version() == "v2"

    def starting(_: int) -> bool:
        """The database step is done and the first container of v1 has been created: only the
        tiered start (after the checkout and the images) makes one."""
        if "database" not in rollout.rollback_state().get("steps_done", {}):
            return False
        return any(image.endswith(":v1") for _, _, image in rollout.containers())

    interrupted = rollout.kill_rollback_when(starting, "the tiered start")
    assert "database" in interrupted["steps_done"]  # the re-run does not restore again

    report = rollout.rerun_as_awx(interrupted)

    assert rollout.api_version() == "v1"
    assert not V2_OBJECTS & rollout.schema()
    assert rollout.row_counts() == rollout.backup_rows("v2")
    assert report["release"]["version"] == "v1"
