"""compose_build through real ansible-playbook on the real engine (tests/compose/app)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from compose_fixtures import ComposeTestProject

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_build_ladder_release_tags_and_size_budgets(
    app_project: ComposeTestProject, tmp_path: Path, docker_client: Any
) -> None:
    run = app_project.playbook("compose_build.yml", tmp_path)
    assert run.rc == 0, run.describe()
    res = run.results
    web, worker = app_project.image_repos

    # The ladder: check, real, check, real -> changed, changed, not changed, not changed.
    assert [res[k]["changed"] for k in ("check1", "real1", "check2", "real2")] == [
        True,
        True,
        False,
        False,
    ]
    assert res["check1"]["built"] == ["web", "worker"]
    assert res["check1"]["commands"] == []  # check mode built nothing
    assert res["check1"]["images"]["web"]["reason"] == "no image yet"
    first = {s: res["real1"]["images"][s]["id"] for s in ("web", "worker")}
    assert all(image_id.startswith("sha256:") for image_id in first.values())
    assert res["real1"]["images"]["web"]["build_seconds"] > 0
    # Both services in one `docker compose build`, the labels override beside the project's files.
    [command] = res["real1"]["commands"]
    assert command[-3:] == ["build", "web", "worker"]
    # A second build with nothing changed keeps every image ID and runs no build at all.
    assert {s: res["real2"]["images"][s]["id"] for s in first} == first
    assert res["real2"]["built"] == []
    assert res["real2"]["commands"] == []
    assert {(i["built"], i["build_seconds"]) for i in res["real2"]["images"].values()} == {
        (False, 0.0)
    }

    # A changed build argument is predicted by check mode, and only for what it changes;
    # the worker's image is the same but its v2 tag would be new.
    assert res["check3"]["images"]["web"]["reason"] == "build inputs changed"
    assert res["check3"]["images"]["worker"]["reason"].startswith("release tag")
    assert [res["check3"]["images"][s]["built"] for s in ("web", "worker")] == [True, False]
    assert res["check3"]["commands"] == []
    assert res["check3"]["images"]["web"]["id"] == first["web"]

    # v2 of web is a new image; v1's tag stays on the old one for rollback.
    assert res["real3"]["changed"] is True
    v2_id = res["real3"]["images"]["web"]["id"]
    assert v2_id != first["web"]
    assert docker_client.images.get(f"{web}:v1").id == first["web"]
    assert docker_client.images.get(f"{web}:v2").id == v2_id
    assert docker_client.images.get(f"{web}:latest").id == v2_id
    assert docker_client.images.get(f"{worker}:v1").id == first["worker"]

    # Size budgets are graded per service, and enforced unless told otherwise.
    report = res["budget_report"]
    assert report["changed"] is False
    assert report["images"]["web"]["size_grade"] == "FAIL"
    assert report["size_failures"] == ["web"]
    enforced = res["budget_enforced"]
    # (failed_when: false in the playbook hides `failed`; the message is the module's own)
    assert "image size over budget: web" in enforced["msg"]


def test_build_failures_name_the_service_or_carry_compose_output(
    app_project: ComposeTestProject, tmp_path: Path
) -> None:
    run = app_project.playbook("compose_build_errors.yml", tmp_path)
    assert run.rc == 0, run.describe()
    res = run.results["unknown"]
    assert "nosuch" in res["msg"]
    assert "web" in res["msg"]  # the message lists what the project defines
    broken = run.results["broken"]
    assert broken["rc"] != 0
    assert broken["cmd"][:2] == ["docker", "compose"]
    assert "stagegate/nosuch" in broken["stdout"] + broken["stderr"]
