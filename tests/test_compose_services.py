"""compose_services through real ansible-playbook on the real engine (tests/compose/app)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from compose_fixtures import ComposeTestProject

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_started_stopped_restarted_touch_only_the_named_services(
    built_app_project: ComposeTestProject, tmp_path: Path, docker_client: Any
) -> None:
    run = built_app_project.playbook("compose_services.yml", tmp_path)
    assert run.rc == 0, run.describe()
    res = run.results
    for ladder in ("start", "stop"):
        steps = [f"{ladder}_check1", f"{ladder}_real1", f"{ladder}_check2", f"{ladder}_real2"]
        assert [res[s]["changed"] for s in steps] == [True, True, False, False], ladder

    assert res["start_check1"]["commands"] == []
    assert res["start_check1"]["services"] == {"web": [], "worker": []}  # nothing created
    assert {a["action"] for a in res["start_check1"]["actions"]} == {"create"}
    assert [c["status"] for c in res["start_real1"]["services"]["web"]] == ["running"]

    assert res["stop_check1"]["actions"] == [{"service": "worker", "action": "stop"}]
    assert res["stop_check1"]["diff"] == {
        "before": {"worker": ["running"]},
        "after": {"worker": ["exited"]},
    }
    assert [c["status"] for c in res["stop_real1"]["services"]["worker"]] == ["exited"]
    assert res["stop_real1"]["commands"][0][-3:] == ["--timeout", "1", "worker"]

    assert res["restarted"]["changed"] is True
    assert res["restarted"]["actions"] == [{"service": "web", "action": "restart"}]

    # Stopping the worker left web alone; never-named services were never created.
    by_service = {
        c.labels["com.docker.compose.service"]: c.status
        for c in docker_client.containers.list(
            all=True, filters={"label": f"com.docker.compose.project={built_app_project.name}"}
        )
    }
    assert by_service == {"web": "running", "worker": "exited"}
