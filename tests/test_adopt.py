"""Taking over a deployment made by hand (docs/adopt.md), on one isolated sandbox stack, in order.

v1 is deployed by hand (compose build + up, then its SQL applied with psql: no marker, no
tracking table). staging.yml refuses it before anything changes, naming the command that
adopts it; a release the repository lacks is refused with the nearest tags and no ledger
record; adopt.yml records marker, baseline, backup, manifest and an `adopt` ledger record (a
re-run changes nothing); `--check` of v2-broken-migration plans that target and names its
broken migration and error; v2 is promoted with a backup and a dry-run of only the new
migrations; rollback.yml with no input goes back to the adopted v1, and a re-run says why v1
runs and what the ledger offered.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rollback_fixtures import V2_SCHEMA, Staging, assert_no_secret_printed, phases
from sandbox_fixtures import isolated_stack, run_playbook

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1500)]

V1_MIGRATIONS = [
    "001_initial_schema.sql",
    "002_item_status.sql",
    "003_job_runs.sql",
    "004_api_users.sql",
    "005_seed_data.sql",
]


class Adoption(Staging):
    def ledger_or_empty(self) -> list[dict[str, Any]]:
        return self.ledger() if (self.state_dir / "ledger.jsonl").exists() else []

    def untouched(self) -> dict[str, Any]:
        """What a refused run must leave as it was."""
        return {
            "containers": self.containers(),
            "schema": sorted(self.schema()),
            "rows": self.row_counts(),
            "state": sorted(p.name for p in self.state_dir.iterdir()),
            "marker": self.stack.project_dir.joinpath(".stagegate-release").exists(),
        }

    def adopt(self, *args: str, **extra: Any) -> Any:
        variables = {**self.vars, "stagegate_adopt_release": "v1", **extra}
        return run_playbook("adopt.yml", variables, options=args)

    def tracked(self) -> list[str]:
        rows = self.sql("SELECT filename FROM public.stagegate_schema_migrations ORDER BY 1")
        return [name for (name,) in rows]


@pytest.fixture(scope="module")
def adoption(sandbox_repo: Path) -> Iterator[Adoption]:
    with isolated_stack(sandbox_repo, "adopt") as stack:
        # By hand, as a team did before stagegate: the v1 tag checked out, built, started,
        # and its SQL applied with psql. No marker, no tracking table.
        stack.up("v1")
        stack.migrate()
        yield Adoption(stack)


def test_hand_deployed_release_is_refused_before_anything_changes(adoption: Adoption) -> None:
    before = adoption.untouched()
    run = adoption.staging("v2")
    assert run.rc != 0
    assert "a release runs that stagegate did not deploy" in run.stdout, run.stdout[-4000:]
    assert "runs 4 container(s) (api, postgres, redis, worker)" in run.stdout
    assert "ansible-playbook playbooks/adopt.yml -i" in run.stdout
    assert "-e stagegate_adopt_release=v1" in run.stdout  # git describe of the checkout
    assert "Refused in preflight, before anything changed" in run.stdout
    assert "Take the deploy lock" not in run.stdout
    assert adoption.untouched() == before
    assert not (adoption.state_dir / "reports").exists(), "no report for a refused run"


@pytest.mark.parametrize(("release", "nearest"), [("v9", "v1"), ("2", "v2")])
def test_unknown_release_lists_the_nearest_tags_and_records_nothing(
    adoption: Adoption, release: str, nearest: str
) -> None:
    before = adoption.untouched()
    run = adoption.staging(release, stagegate_adopt_release="v1")
    assert run.rc != 0
    assert f"stagegate_release: '{release}' is not a tag or branch of" in run.stdout
    tags = run.stdout.split("nearest tags: ", 1)[1].split(" (", 1)[0].split(", ")
    assert nearest in tags
    assert "Refused in preflight" in run.stdout
    assert adoption.untouched() == before
    assert adoption.ledger_or_empty() == []


def test_adoption_records_marker_baseline_backup_manifest_and_ledger(
    adoption: Adoption,
) -> None:
    rows_before = adoption.row_counts()
    containers_before = adoption.containers()
    run = adoption.adopt()
    assert run.rc == 0, run.output[-4000:]
    assert_no_secret_printed(run)
    assert "Adopted v1: 5 migration(s) count as applied (schema check), 0 pending" in run.stdout

    assert adoption.stack.project_dir.joinpath(".stagegate-release").read_text().strip() == "v1"
    assert adoption.tracked() == V1_MIGRATIONS
    [record] = adoption.ledger()
    assert (record["kind"], record["release"], record["verdict"]) == ("adopt", "v1", "ADOPTED")
    assert record["migrations"]["applied"] == V1_MIGRATIONS
    manifest = json.loads((adoption.state_dir / "releases/v1/manifest.json").read_text())
    assert manifest["migrations_applied"] == V1_MIGRATIONS
    assert set(manifest["images"]) == {"postgres", "redis", "api", "worker"}
    backup = json.loads(Path(manifest["backup"]["manifest_path"]).read_text())
    assert backup["verified"] is True
    assert Path(manifest["backup"]["path"]).exists()
    # the running release was not touched; only stagegate's tracking table is new
    assert adoption.containers() == containers_before
    rows_after = adoption.row_counts()
    assert rows_after == rows_before
    assert not (adoption.state_dir / "lock.json").exists()

    again = adoption.adopt()
    assert again.rc == 0, again.output[-4000:]
    assert "v1 was adopted already" in again.stdout
    assert len(adoption.ledger()) == 1


def test_check_of_a_broken_migration_plans_the_target_and_names_its_error(
    adoption: Adoption,
) -> None:
    before = adoption.snapshot()
    run = adoption.staging("v2-broken-migration", "--check")
    assert run.rc != 0
    assert "Check mode plans v2-broken-migration from" in run.stdout
    assert "would stop in the migration_dryrun phase" in run.stdout, run.stdout[-4000:]
    assert "008_item_owners.sql" in run.stdout
    assert 'relation "owners" does not exist' in run.stdout
    after = adoption.snapshot()
    assert after == before
    scratch = adoption.sql(
        "SELECT datname FROM pg_database WHERE datname LIKE 'stagegate_dryrun_%'"
    )
    assert scratch == []
    assert adoption.stack.project_dir.joinpath(".stagegate-release").read_text().strip() == "v1"


def test_promotion_after_adoption_backs_up_dry_runs_and_migrates_only_what_is_new(
    adoption: Adoption,
) -> None:
    run = adoption.staging("v2")
    assert run.rc == 0, run.output[-4000:]
    assert "Migration dry-run PASS: 2 pending" in run.stdout
    record = adoption.last()
    assert (record["release"], record["verdict"], record["previous"]) == ("v2", "GO", "v1")
    report = adoption.report(record)
    assert phases(report)["backup"] == phases(report)["migration_dryrun"] == "ok"
    manifest = json.loads((adoption.state_dir / "releases/v2/manifest.json").read_text())
    assert manifest["migrations_applied"] == [
        "006_composite_indexes.sql",
        "007_reporting_views.sql",
    ]
    assert Path(manifest["backup"]["path"]).exists()
    assert adoption.schema() >= V2_SCHEMA
    assert adoption.api_version() == "v2"


def test_rollback_with_no_input_returns_to_the_adopted_release(adoption: Adoption) -> None:
    plan = adoption.rollback("--check")
    assert plan.returncode == 0, plan.stdout[-4000:]
    assert "Rollback target:  v1" in plan.stdout
    assert "adopted release in the ledger" in plan.stdout

    run = adoption.rollback()
    assert run.returncode == 0, run.stdout[-4000:]
    assert adoption.api_version() == "v1"
    assert not V2_SCHEMA & adoption.schema()
    assert adoption.tracked() == V1_MIGRATIONS
    last = adoption.last()
    assert (last["kind"], last["release"], last["rolled_back_from"]) == ("rollback", "v1", "v2")

    again = adoption.rollback()
    assert again.returncode == 0, again.stdout[-4000:]
    assert "Nothing to roll back: v1 runs" in again.stdout
    assert "v1 runs since the rollback from v2 at" in again.stdout
    assert "v2                   promote GO" in again.stdout
    assert "rolled back from since" in again.stdout
    assert "No good release further back in the ledger." in again.stdout
    assert adoption.last() == last


def test_adopt_and_promote_in_one_run(sandbox_repo: Path) -> None:
    # The other documented path: staging.yml with -e stagegate_adopt_release adopts first
    # (phase `adopt`, after the lock) and promotes in the same run.
    with isolated_stack(sandbox_repo, "adopt1") as stack:
        stack.up("v1")
        stack.migrate()
        run_ = Adoption(stack)
        run = run_.staging("v2", stagegate_adopt_release="v1")
        assert run.rc == 0, run.output[-4000:]
        adopt, promote = run_.ledger()
        assert (adopt["kind"], adopt["release"]) == ("adopt", "v1")
        assert (promote.get("kind"), promote["release"], promote["previous"]) == (None, "v2", "v1")
        assert list(phases(run_.report(promote)))[:2] == ["preflight", "adopt"]
        assert phases(run_.report(promote))["migration_dryrun"] == "ok"
        manifest = json.loads((stack.state_dir / "releases/v2/manifest.json").read_text())
        assert manifest["migrations_applied"] == [
            "006_composite_indexes.sql",
            "007_reporting_views.sql",
        ]
        assert run_.api_version() == "v2"
