"""The rollback plan from a real ledger, real manifests and a real git repository (no Docker)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.stagegate.release.plugins.module_utils._ledger import append
from ansible_collections.stagegate.release.plugins.module_utils._rollback import (
    PlanInputs,
    RollbackError,
    build_plan,
    image_action,
    summary_lines,
)
from conftest import REPO_ROOT
from sandbox_fixtures import local_inventory, run_playbook

IMAGES = {"sha256:v1api": {"id": "sha256:v1api"}, "app/api:v1": {"id": "sha256:v1api"}}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture
def host(tmp_path: Path) -> PlanInputs:
    """A deploy host after v1 (GO) and v2 (migrated, checked out), as the deploy phase leaves it."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    git(checkout, "init", "-q")
    for release, files in (("v1", ["app.py"]), ("v2", ["app.py", "migrations/006_x.sql"])):
        for name in files:
            (checkout / name).parent.mkdir(exist_ok=True)
            (checkout / name).write_text(f"{release} {name}\n")
        git(checkout, "add", ".")
        git(checkout, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", release)
        git(checkout, "tag", release)
    state = tmp_path / "state"
    backup = state / "backups" / "app-before-v2.dump"
    backup.parent.mkdir(parents=True)
    backup.write_bytes(b"dump")
    write_manifest(state, "v1", images={"api": {"id": "sha256:v1api", "image": "app/api:v1"}})
    write_manifest(
        state,
        "v2",
        images={"api": "sha256:v2api"},
        backup={"path": str(backup)},
        migrations_applied=["006_x.sql"],
    )
    for release in ("v1", "v2"):
        append(str(state / "ledger.jsonl"), {"release": release, "verdict": "GO"})
    return PlanInputs(state_dir=str(state), project_dir=str(checkout))


def write_manifest(state: Path, release: str, **fields: Any) -> None:
    path = state / "releases" / release / "manifest.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"release": release, **fields}))


def inspect(ref: str) -> dict[str, str] | None:
    return IMAGES.get(ref)


def test_plan_goes_back_to_the_previous_good_release_and_restores(host: PlanInputs) -> None:
    plan = build_plan(host, inspect)

    assert plan["current"]["release"] == "v2"
    assert plan["target"]["release"] == "v1"
    assert plan["target"]["reason"].startswith("last good release in the ledger")
    assert plan["files_changed"] == ["app.py", "migrations/006_x.sql"]
    assert "2 files changed" in plan["diff_stat"]
    assert plan["images"]["api"]["action"] == "present"
    assert plan["database"]["action"] == "restore"
    assert plan["database"]["migrations_reverted"] == ["006_x.sql"]
    lines = summary_lines(plan, ["api"])
    assert lines[0].startswith("Current release:  v2")
    assert any("backup: " in line and "app-before-v2.dump" in line for line in lines)


def test_marker_names_the_current_release_and_rolled_back_ones_are_skipped(
    host: PlanInputs,
) -> None:
    # v2 was rolled back to v1: from v1, v2 is no candidate, and v1 is the current release.
    append(
        str(Path(host.state_dir) / "ledger.jsonl"),
        {"release": "v1", "verdict": "GO", "kind": "rollback", "rolled_back_from": "v2"},
    )
    Path(host.project_dir, ".stagegate-release").write_text("v1\n")

    with pytest.raises(
        RollbackError, match="no previous good release to roll back to from v1"
    ) as err:
        build_plan(host, inspect)
    assert "v2: rolled back from since" in str(err.value)
    with pytest.raises(RollbackError, match="adopt a release that ran before stagegate"):
        build_plan(host, inspect)


def test_finished_rollback_leaves_nothing_to_do(host: PlanInputs) -> None:
    git(Path(host.project_dir), "checkout", "-q", "v1")
    append(
        str(Path(host.state_dir) / "ledger.jsonl"),
        {"release": "v1", "verdict": "GO", "kind": "rollback", "rolled_back_from": "v2"},
    )
    plan = build_plan(host, inspect, state={"status": "done", "from": "v2", "to": "v1"})

    assert plan["nothing_to_do"]
    lines = summary_lines(plan, [])
    assert lines[0] == "Nothing to roll back: v1 runs (already rolled back from v2)."
    assert "No good release further back in the ledger." in lines

    # v1 promoted again since (a re-run): the finished rollback no longer says why v1 runs
    append(str(Path(host.state_dir) / "ledger.jsonl"), {"release": "v1", "verdict": "GO"})
    with pytest.raises(RollbackError, match="no previous good release to roll back to from v1"):
        build_plan(host, inspect, state={"status": "done", "from": "v2", "to": "v1"})


def test_rerun_after_an_automatic_rollback_says_why_and_how_to_go_further_back(
    host: PlanInputs,
) -> None:
    # make demo + make demo-faulty: v1, v2 GO; v2-crashloop NO_GO, rolled back to v2 by the
    # same run (automatic). A re-run is a no-op that names v1 and the command that goes there.
    ledger = str(Path(host.state_dir) / "ledger.jsonl")
    append(ledger, {"release": "v2-crashloop", "verdict": "NO_GO", "run_id": "r3"})
    rollback = {"release": "v2", "verdict": "GO", "kind": "rollback", "run_id": "r3"}
    append(ledger, {**rollback, "rolled_back_from": "v2-crashloop", "finished": "2026-11-30T08:00"})
    Path(host.project_dir, ".stagegate-release").write_text("v2\n")
    inputs = PlanInputs(state_dir=host.state_dir, project_dir=host.project_dir, inventory="inv")
    state = {"status": "done", "from": "v2-crashloop", "to": "v2"}

    plan = build_plan(inputs, inspect, state=state)

    assert plan["nothing_to_do"]
    assert plan["current"]["why"] == (
        "v2 runs since the automatic rollback from v2-crashloop at 2026-11-30T08:00"
    )
    statuses = {c["release"]: c["status"] for c in plan["considered"]}
    assert statuses == {
        "v2": "running now",
        "v2-crashloop": "rolled back from since",
        "v1": "candidate",
    }
    command = "ansible-playbook playbooks/rollback.yml -i inv -e stagegate_rollback_to=v1"
    assert plan["further_back"]["command"] == command
    lines = summary_lines(plan, [])
    assert f"  {command}" in lines
    assert any(line.startswith("Why:") and "automatic rollback" in line for line in lines)


def test_adopted_release_is_a_rollback_target(host: PlanInputs) -> None:
    # v1 ran before stagegate and was adopted (no verdict of its own), then v2 promoted.
    ledger = Path(host.state_dir) / "ledger.jsonl"
    ledger.unlink()
    append(str(ledger), {"release": "v1", "verdict": "ADOPTED", "kind": "adopt"})
    append(str(ledger), {"release": "v2", "verdict": "GO"})

    plan = build_plan(host, inspect)

    assert plan["target"]["release"] == "v1"
    assert plan["target"]["reason"].startswith("adopted release in the ledger (ADOPTED")
    assert plan["database"]["action"] == "restore"


def test_missing_backup_and_unknown_target_are_named(host: PlanInputs) -> None:
    Path(host.state_dir, "backups", "app-before-v2.dump").unlink()
    with pytest.raises(RollbackError, match=r"app-before-v2\.dump taken before v2 is missing"):
        build_plan(host, inspect)

    unknown = PlanInputs(state_dir=host.state_dir, project_dir=host.project_dir, target="v0")
    with pytest.raises(RollbackError, match="stagegate_rollback_to: release 'v0' is not a tag"):
        build_plan(unknown, inspect)


def test_downgrade_uses_the_bad_release_down_scripts_and_names_a_missing_one(
    host: PlanInputs,
) -> None:
    downgrade = PlanInputs(
        state_dir=host.state_dir, project_dir=host.project_dir, database="downgrade"
    )
    down_dir = Path(host.project_dir, "migrations", "down")
    with pytest.raises(RollbackError, match=rf"{down_dir} has no down script for 006_x\.sql"):
        build_plan(downgrade, inspect)

    down_dir.mkdir()
    (down_dir / "006_x.sql").write_text("DROP TABLE x;\n")
    # the backup is not needed for a downgrade
    Path(host.state_dir, "backups", "app-before-v2.dump").unlink()
    plan = build_plan(downgrade, inspect)

    assert plan["database"]["action"] == "downgrade"
    assert plan["database"]["down_dir"] == str(down_dir)
    assert plan["database"]["migrations_reverted"] == ["006_x.sql"]
    assert plan["steps"][:3] == ["stop", "database", "source"]
    lines = summary_lines(plan, ["api"])
    assert f"  down scripts: {down_dir}" in lines
    assert "  2. database: downgrade" in lines

    # A project whose migrations live elsewhere (stagegate_migrations_dir: db/migrations) keeps
    # its down scripts in that directory's down/, not in the checkout's migrations/down.
    elsewhere = Path(host.project_dir, "db", "migrations", "down")
    elsewhere.mkdir(parents=True)
    (elsewhere / "006_x.sql").write_text("DROP TABLE x;\n")
    moved = PlanInputs(**{**downgrade.__dict__, "migrations_dir": str(elsewhere.parent)})
    assert build_plan(moved, inspect)["database"]["down_dir"] == str(elsewhere)


def test_alembic_revisions_restore_by_default_and_downgrade_to_the_revision_before(
    host: PlanInputs,
) -> None:
    """A release that applied only Alembic revisions changed the schema all the same: auto
    restores its backup; downgrade goes to the revision its manifest recorded before it (base
    when none), and needs no SQL down script."""
    manifest = Path(host.state_dir, "releases", "v2", "manifest.json")
    recorded = json.loads(manifest.read_text())
    alembic = {"from": "a1", "revisions": ["b2", "c3"]}
    manifest.write_text(json.dumps({**recorded, "migrations_applied": [], "alembic": alembic}))

    restore = build_plan(host, inspect)["database"]
    assert (restore["action"], restore["reason"]) == ("restore", "v2 applied 2 migration(s)")
    assert restore["alembic"] == {"revisions": ["c3", "b2"], "downgrade_to": "a1"}

    downgrade = PlanInputs(
        state_dir=host.state_dir, project_dir=host.project_dir, database="downgrade"
    )
    plan = build_plan(downgrade, inspect)
    assert plan["database"]["action"] == "downgrade"
    assert plan["database"]["reason"] == "alembic downgrade a1: 2 change(s) v2 applied"
    assert "  alembic revisions reverted: c3, b2 (alembic downgrade a1)" in summary_lines(
        plan, ["api"]
    )

    manifest.write_text(json.dumps({**recorded, "alembic": {"from": None, "revisions": ["a1"]}}))
    with pytest.raises(RollbackError, match=r"no down script for 006_x\.sql"):
        build_plan(downgrade, inspect)  # the SQL file still needs its down script
    Path(host.project_dir, "migrations", "down").mkdir()
    Path(host.project_dir, "migrations", "down", "006_x.sql").write_text("DROP TABLE x;\n")
    both = build_plan(downgrade, inspect)["database"]
    assert both["alembic"] == {"revisions": ["a1"], "downgrade_to": "base"}
    assert both["reason"] == (
        "alembic downgrade base and down scripts revert 1 migration(s): 2 change(s) v2 applied"
    )


@pytest.mark.parametrize(
    ("image", "action"),
    [
        ({"id": "sha256:v1api", "ref": "app/api:v1"}, "present"),
        ({"id": "sha256:v1api", "ref": ""}, "present"),
        ({"id": "sha256:v1api", "ref": "app/api:moved"}, "retag"),
        ({"id": "sha256:gone", "ref": "app/api:v1"}, "rebuild"),
        ({"id": "", "ref": "app/api:v1"}, "present"),
        ({"id": "", "ref": "app/api:gone"}, "rebuild"),
    ],
)
def test_image_actions(image: dict[str, str], action: str) -> None:
    assert image_action(image, inspect) == action


def test_a_torn_or_corrupt_ledger_never_stops_the_plan_and_is_shown(host: PlanInputs) -> None:
    ledger = Path(host.state_dir) / "ledger.jsonl"
    lines = ledger.read_text().splitlines()
    # a corrupt line between v1 and v2, and a rollback record cut short by a kill
    ledger.write_text(f'{lines[0]}\n{{"release": "v1", "ver\n{lines[1]}\n{{"release": "v1", "ki')

    plan = build_plan(host, inspect)

    assert (plan["current"]["release"], plan["target"]["release"]) == ("v2", "v1")
    assert [w.split(": ", 1)[1][:20] for w in plan["ledger_warnings"]] == [
        "not a JSON record, s",
        "torn final line skip",
    ]
    shown = [line for line in summary_lines(plan, ["api"]) if line.startswith("Ledger warning:")]
    assert len(shown) == 2
    assert "line 4: torn final line skipped" in shown[1]


def test_the_plan_estimates_its_time_from_what_the_ledger_measured(host: PlanInputs) -> None:
    """Seed 004's "Estimated rollback time": promotions' phases before any rollback, then the
    rollbacks' own wall time less their database step, plus the database step by its way."""
    ledger = str(Path(host.state_dir) / "ledger.jsonl")
    plan = build_plan(host, inspect)
    assert plan["estimate"]["seconds"] is None  # the fixture's records measured nothing
    assert plan["estimate"]["text"] == "no measured durations in the ledger yet"

    manifest = Path(host.state_dir) / "backups" / "app-before-v2.json"
    manifest.write_text(json.dumps({"size_bytes": 40_000_000, "duration_seconds": 2.0}))
    write_manifest(
        Path(host.state_dir),
        "v2b",
        backup={"path": str(Path(host.state_dir) / "backups" / "app-before-v2.dump"),
                "manifest_path": str(manifest)},
        migrations_applied=["006_x.sql"],
    )  # fmt: skip
    Path(host.project_dir, ".stagegate-release").write_text("v2b\n")
    git(Path(host.project_dir), "tag", "v2b")
    for seconds in (20.0, 30.0, 90.0):
        append(ledger, {"release": "v1", "verdict": "GO", "run_id": f"p{seconds}",
                        "phases": {"build": 50.0, "deploy": seconds, "validate": 5.0}})  # fmt: skip
    before = build_plan(host, inspect)["estimate"]
    assert before["parts"]["stop, checkout, start, verify"] == {
        "seconds": 35.0,
        "basis": "median deploy + validate phases of 3 promotion(s) in the ledger "
        "(no rollback measured yet)",
    }
    assert before["parts"]["database: restore of the dump"]["seconds"] == 2.0  # the dump's time
    assert before["seconds"] == 37.0

    for started, finished, restore in (
        ("12:00:00", "12:01:00", 10.0),
        ("13:00:00", "13:00:50", 20.0),
    ):
        append(ledger, {
            "release": "v1", "verdict": "GO", "kind": "rollback", "rolled_back_from": "v2",
            "started": f"2026-11-30T{started}Z", "finished": f"2026-11-30T{finished}+00:00",
            "database": {"method": "dump", "seconds": restore, "bytes": 20_000_000},
        })  # fmt: skip
    after = build_plan(host, inspect)
    estimate = after["estimate"]
    assert estimate["parts"]["stop, checkout, start, verify"]["seconds"] == 40.0  # 50 and 30
    assert (
        "median of 2 rollback(s) in the ledger"
        in (estimate["parts"]["stop, checkout, start, verify"]["basis"])
    )
    # the quickest restore's 10 s, + 40 MB at the 2 MB/s the slower one showed beyond them
    assert estimate["parts"]["database: restore of the dump"]["seconds"] == pytest.approx(30.0)
    assert estimate["seconds"] == pytest.approx(70.0)
    lines = summary_lines(after, ["api"])
    assert "Estimated time:   ~70 s" in lines, lines
    assert any(line.startswith("  database: restore of the dump: ~30 s (10 s, the quickest of 2")
               for line in lines), lines  # fmt: skip

    gone = {"sha256:v1api": None, "app/api:v1": None}
    rebuilt = build_plan(host, gone.get)["estimate"]
    assert rebuilt["parts"]["image rebuild"]["seconds"] == 50.0  # v1's build phase


def test_an_unmeasured_step_is_named_not_guessed(host: PlanInputs) -> None:
    downgrade = PlanInputs(**{**host.__dict__, "database": "downgrade"})
    down = Path(host.project_dir) / "migrations" / "down"
    down.mkdir(parents=True)
    (down / "006_x.sql").write_text("DROP TABLE x;")
    append(
        str(Path(host.state_dir) / "ledger.jsonl"),
        {"release": "v1", "verdict": "GO", "phases": {"deploy": 12.0, "validate": 3.0}},
    )
    estimate = build_plan(downgrade, inspect)["estimate"]
    assert estimate["unmeasured"] == ["database: down scripts"]
    assert estimate["text"] == "~15 s plus database: down scripts (not measured)"

    # once a downgrade rollback is in the ledger, its database step is the measure
    append(
        str(Path(host.state_dir) / "ledger.jsonl"),
        {"release": "v1", "verdict": "GO", "kind": "rollback", "rolled_back_from": "v0",
         "database": {"method": "downgrade", "seconds": 0.4, "bytes": None}},
    )  # fmt: skip
    estimate = build_plan(downgrade, inspect)["estimate"]
    assert estimate["unmeasured"] == []
    assert "median of 1 downgrade rollback(s) in the ledger" in str(estimate["parts"])


def test_an_unfinished_deploy_restores_only_what_the_database_says_it_applied(
    host: PlanInputs,
) -> None:
    """A trial's deploy failed stopping the app tier, before its migration: the plan still said
    "v2 applied 1 migration(s)" and the rollback restored the dump, losing a row written since.
    A manifest still marked in progress is planned from the migrations the database records."""
    manifest = Path(host.state_dir, "releases", "v2", "manifest.json")
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**data, "in_progress": {"run_id": "r1", "step": "migrations"}}))

    none_applied = build_plan(host, inspect, applied_in_database=lambda names: set())
    database = none_applied["database"]
    assert (database["action"], database["migrations_reverted"]) == ("none", [])
    assert database["reason"] == (
        "v2 applied no migrations: its deploy stopped before it applied 006_x.sql "
        "(not in the database)"
    )
    # applied: restored as before; the database unreadable (None): the manifest counts
    for applied in ({"006_x.sql"}, None):
        plan = build_plan(host, inspect, applied_in_database=lambda names, a=applied: a)
        assert plan["database"]["action"] == "restore", applied
        assert plan["database"]["reason"] == "v2 applied 1 migration(s)"
    # a finished deploy's migrations are its own: the database is not asked
    manifest.write_text(json.dumps(data))
    asked: list[list[str]] = []
    plan = build_plan(host, inspect, applied_in_database=asked.append)
    assert (plan["database"]["action"], asked) == ("restore", [])


def test_a_restore_plan_says_what_happens_to_data_written_since(host: PlanInputs) -> None:
    lines = summary_lines(build_plan(host, inspect), ["api"])
    assert (
        "  data written since the backup is lost (the dump holds the database as it was before "
        "v2); take a backup first (playbooks/backup.yml), or revert with down scripts instead "
        "(stagegate_rollback_database=downgrade)"
    ) in lines


def test_a_named_target_must_have_run_here_and_passed(host: PlanInputs) -> None:
    """A trial's stagegate_rollback_to=v1-hotfix (a tag never deployed) and =v3 (its promotion
    NO_GO) got "v2 applied migrations ... names no backup", and the advice it gave planned a
    rollback to v3 on v1's schema."""
    git(Path(host.project_dir), "tag", "v1-hotfix", "v1")
    git(Path(host.project_dir), "tag", "v3", "v2")
    Path(host.project_dir, ".stagegate-release").write_text("v2\n")
    ledger = str(Path(host.state_dir) / "ledger.jsonl")
    append(ledger, {"release": "v3", "verdict": "NO_GO"})
    # v3 was rolled back from automatically: its status is "rolled back from since", and it
    # still never passed (a trial's rollback_to=v3 was planned, then put the NO_GO release live)
    append(ledger, {"release": "v2", "verdict": "GO", "kind": "rollback", "rolled_back_from": "v3"})
    never_ran = PlanInputs(host.state_dir, host.project_dir, target="v1-hotfix")
    with pytest.raises(RollbackError) as err:
        build_plan(never_ran, inspect)
    said = str(err.value)
    assert said.startswith("stagegate_rollback_to: 'v1-hotfix' never ran here: no release manifest")
    assert (
        "promote it (staging.yml -e stagegate_release=v1-hotfix); a rollback can go to: v1" in said
    )
    never_good = PlanInputs(host.state_dir, host.project_dir, target="v3")
    with pytest.raises(RollbackError, match=r"'v3' never passed here \(its runs: NO_GO at "):
        build_plan(never_good, inspect)
    # a release that ran and passed is still a target when named
    named = build_plan(PlanInputs(host.state_dir, host.project_dir, target="v1"), inspect)
    assert named["target"]["reason"] == "named by stagegate_rollback_to"


def test_a_release_brought_back_and_verified_is_a_target_again(host: PlanInputs) -> None:
    """A trial rolled back from v1 by mistake, then back to v1 (GO); from a later release the
    plan still called v1 "rolled back from since" and found no target."""
    ledger = str(Path(host.state_dir) / "ledger.jsonl")
    append(
        ledger, {"release": "v2", "verdict": "NO_GO", "kind": "rollback", "rolled_back_from": "v1"}
    )
    append(ledger, {"release": "v1", "verdict": "GO", "kind": "rollback", "rolled_back_from": "v2"})
    append(ledger, {"release": "v2", "verdict": "GO"})
    plan = build_plan(host, inspect)
    assert plan["target"]["release"] == "v1"


REPORT_PLAN = """\
- hosts: deploy
  gather_facts: false
  tasks:
    - name: The promotion's rollback plan for its report
      ansible.builtin.import_tasks: "{{ repo }}/playbooks/tasks/rollback_plan.yml"

    - name: Save it
      ansible.builtin.copy:
        content: "{{ staging_rollback_plan | to_json }}"
        dest: "{{ result_file }}"
        mode: "0600"
"""


@pytest.mark.docker
def test_a_promotion_s_report_plans_from_stagegate_migrations_dir_or_says_why_not(
    host: PlanInputs, tmp_path: Path
) -> None:
    """staging.yml's plan for the report (playbooks/tasks/rollback_plan.yml) reads the down
    scripts where stagegate_migrations_dir puts them (a trial's db/migrations: every report said
    "No rollback plan recorded" and gave a first deploy as the reason)."""
    down = Path(host.project_dir, "db", "migrations", "down")
    down.mkdir(parents=True)
    (down / "006_x.sql").write_text("ALTER TABLE x DROP COLUMN y;\n")
    playbook = tmp_path / "plan.yml"
    playbook.write_text(REPORT_PLAN)
    result_file = tmp_path / "plan.json"
    variables = {
        "repo": str(REPO_ROOT),
        "result_file": str(result_file),
        "stagegate_state_dir": host.state_dir,
        "stagegate_project_dir": host.project_dir,
        "stagegate_environment": "staging",
        "stagegate_app_services": ["api"],
        "stagegate_rollback_database": "downgrade",
        "stagegate_migrations_dir": str(down.parent),
    }
    inventory = local_inventory(tmp_path)

    run = run_playbook(str(playbook), variables, inventory=inventory)
    assert run.rc == 0, run.output[-3000:]
    plan = json.loads(result_file.read_text())["plan"]
    assert plan["database"]["down_dir"] == str(down)
    assert plan["target"]["release"] == "v1"

    (down / "006_x.sql").unlink()
    run = run_playbook(str(playbook), variables, inventory=inventory)
    assert run.rc == 0, run.output[-3000:]  # the promotion goes on; its report says why
    assert json.loads(result_file.read_text())["plan"] == {
        "not made": f"stagegate_rollback_database=downgrade: {down} has no down script for "
        "006_x.sql; restore the backup instead (auto or restore)"
    }
