"""compose_config and release_manifest through real ansible-playbook."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from compose_fixtures import ComposeTestProject

pytestmark = [pytest.mark.slow]


@pytest.mark.docker
def test_compose_config_returns_services_hashes_and_compose_errors(
    app_project: ComposeTestProject, tmp_path: Path
) -> None:
    run = app_project.playbook("compose_config.yml", tmp_path)
    assert run.rc == 0, run.describe()
    valid = run.results["valid"]
    assert valid["changed"] is False
    assert valid["services"]["web"] == {
        "image": f"sgt/{app_project.name}/web:latest",
        "build": True,
        "healthcheck": True,
    }
    assert valid["services"]["worker"]["healthcheck"] is False
    assert len(valid["files_sha256"]) == len(valid["config_sha256"]) == 64

    missing = run.results["missing_variable"]
    assert missing["rc"] != 0
    assert "SGT_IMAGE_PREFIX" in missing["stderr"]
    assert "SGT_IMAGE_PREFIX" in missing["msg"]
    assert missing["cmd"][:2] == ["docker", "compose"]

    unknown_key = run.results["unknown_key"]
    assert "restart_policy" in unknown_key["stderr"]
    assert "restart_policy" in unknown_key["msg"]

    unknown_service = run.results["unknown_service"]
    # every setting with an unknown service named in one message; web, known, passes
    assert unknown_service["msg"].startswith(
        "stagegate_app_services: unknown service(s) api, wrker (did you mean worker?); the project"
    ), unknown_service["msg"]
    assert "stagegate_tiers" not in unknown_service["msg"]


def test_release_manifest_ladder_previous_release_read_and_remove(
    app_project: ComposeTestProject, tmp_path: Path
) -> None:
    state_dir = tmp_path / "state"
    run = app_project.playbook("compose_release_manifest.yml", tmp_path, state_dir=str(state_dir))
    assert run.rc == 0, run.describe()
    res = run.results
    assert [res[k]["changed"] for k in ("check1", "real1", "check2", "real2")] == [
        True,
        True,
        False,
        False,
    ]
    v1_file = state_dir / "releases" / "v1" / "manifest.json"
    on_disk = json.loads(v1_file.read_text())
    assert on_disk == res["real1"]["manifest"]
    assert on_disk["previous_release"] is None
    assert on_disk["images"] == {"api": "sha256:1111"}
    # Re-writing the same content kept the first write (and its time).
    assert res["real2"]["manifest"]["written_at"] == on_disk["written_at"]

    v2 = res["v2"]["manifest"]
    assert v2["previous_release"] == "v1"
    assert v2["backup"] == {"path": "/backups/app-v1.dump", "sha256": "feed"}
    # merge: the recorded backup and migrations kept, this run's added once, times kept
    # while nothing was deployed, so the same re-run changes nothing
    merged = res["merge1"]["manifest"]
    assert merged["backup"] == v2["backup"]
    assert merged["migrations_applied"] == ["001_init.sql", "002_orders.sql", "003_more.sql"]
    # Alembic: the revision before the release's first run kept, the re-run's revision added
    assert v2["alembic"] == {"from": "a1", "revisions": ["b2"]}
    assert merged["alembic"] == {"from": "a1", "revisions": ["b2", "c3"]}
    assert res["merge3"]["manifest"]["alembic"] == merged["alembic"]
    assert "alembic" not in on_disk  # a release that applied no revision has no record
    assert (merged["started_at"], merged["finished_at"]) == (v2["started_at"], v2["finished_at"])
    assert res["merge1"]["changed"] is True
    assert res["merge2"]["changed"] is False
    redeployed = res["merge3"]["manifest"]
    assert redeployed["started_at"] == "2026-11-30T12:10:00+00:00"
    assert redeployed["finished_at"] not in (None, v2["finished_at"])
    assert redeployed["migrations_applied"] == merged["migrations_applied"]
    # its backup holds v2's own schema (nothing was pending): the one before v2 stays
    assert redeployed["backup"] == v2["backup"]
    assert res["latest"]["manifest"]["release"] == "v2"
    assert res["latest"]["releases"] == ["v2", "v1"]
    assert res["read_v1"]["manifest"] == on_disk

    assert res["read_v1"]["interrupted"] is None
    # A manifest still marked in progress is a deploy that never finished: the read names it.
    assert res["v3_begun"]["manifest"]["in_progress"]["run_id"] == "r3"
    assert res["read_v3_begun"]["interrupted"] == {
        "run_id": "r3",
        "step": "migrations",
        "started_at": "2026-11-30T12:00:00Z",
        "release": "v3",
        "previous_release": "v1",
        "backup": {"path": "/backups/app-v3-r3.dump"},
        "migrations": ["001_init.sql", "003_slow.sql"],
    }
    # A run that reported (its ledger record) is over, even with the mark still there.
    assert res["read_v3_reported"]["interrupted"] is None
    assert res["read_v3_reported"]["manifest"]["in_progress"]["run_id"] == "r3"
    assert res["v3_done"]["changed"] is True
    assert "in_progress" not in res["read_v3_done"]["manifest"]
    assert res["read_v3_done"]["interrupted"] is None

    assert [res[k]["changed"] for k in ("remove_check", "remove_real", "remove_again")] == [
        True,
        True,
        False,
    ]
    # The source role's one read: the release the checkout's marker names, and its manifest.
    assert (res["read_marked"]["marker"], res["read_marked"]["manifest"]) == ("v1", on_disk)
    assert res["read_marked"]["interrupted"] is None
    # No marker reads no manifest (not the newest recorded one).
    assert (res["read_unmarked"]["marker"], res["read_unmarked"]["manifest"]) == (None, None)
    assert not (state_dir / "releases" / "v2").exists()
    assert "expected a release name, not a path" in res["bad_name"]["msg"]
    # Atomic writes leave no temporary files behind.
    assert sorted(p.name for p in (state_dir / "releases" / "v1").iterdir()) == ["manifest.json"]
