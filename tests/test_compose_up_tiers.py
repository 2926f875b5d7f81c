"""compose_up_tiers through real ansible-playbook on the real engine (tests/compose/app)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.stagegate.release.plugins.module_utils._docker import parse_docker_time
from compose_fixtures import ComposeTestProject

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# Long on purpose: a crash must be reported on its own, nowhere near this timeout.
CRASH_TIMEOUT = 120


def test_tiers_start_in_order_and_the_ladder_holds(
    built_app_project: ComposeTestProject, tmp_path: Path, docker_client: Any
) -> None:
    run = built_app_project.playbook("compose_up_tiers.yml", tmp_path)
    assert run.rc == 0, run.describe()
    res = run.results
    assert [res[k]["changed"] for k in ("check1", "real1", "check2", "real2")] == [
        True,
        True,
        False,
        False,
    ]
    # Check mode ran Compose's dry run only: afterwards the engine had no container.
    assert res["check1"]["commands"] == []
    assert set(res["check1"]["services"].values()) == {None}
    assert {t["status"] for t in res["check1"]["tiers"]} == {"planned"}
    assert any(a["verb"] == "Created" for a in res["check1"]["tiers"][0]["actions"])
    assert res["check1"]["changed_services"] == ["slow", "web", "worker"]
    # Each tier's plan names the services that tier's start changes.
    planned = [t["changed_services"] for t in res["check1"]["tiers"]]
    assert planned == [t["changed_services"] for t in res["real1"]["tiers"]]
    assert len(planned) == 2
    assert all(planned)
    assert {a["verb"] for t in res["check2"]["tiers"] for a in t["actions"]} == {"Running"}
    assert res["check2"]["changed_services"] == res["real2"]["changed_services"] == []

    first, second = res["real1"]["tiers"]
    assert first["status"] == second["status"] == "ready"
    # `slow` sleeps 3 s before its healthcheck can pass: the first tier waited for health.
    assert first["seconds"] >= 3
    # The second tier started only after the first was ready.
    worker = docker_client.containers.get(res["real1"]["services"]["worker"]["container_id"])
    worker_started = parse_docker_time(worker.attrs["State"]["StartedAt"])
    assert worker_started is not None
    assert worker_started >= datetime.fromisoformat(first["finished_at"])
    services = res["real2"]["services"]
    assert services["web"]["health"] == services["slow"]["health"] == "healthy"
    assert services["worker"]["status"] == "running"
    assert services["web"]["image_id"].startswith("sha256:")


def test_crash_loop_exit_and_timeout_are_reported_with_evidence(
    built_app_project: ComposeTestProject, tmp_path: Path
) -> None:
    run = built_app_project.playbook(
        "compose_up_tiers_failures.yml", tmp_path, crash_timeout=CRASH_TIMEOUT
    )
    assert run.rc == 0, run.describe()

    loop = run.results["crash_loop"]
    assert loop["failed_service"] == "crash"
    assert loop["failure"]["reason"].startswith(("crash loop", "exited with code 3"))
    assert "crash: FATAL missing setting DATABASE_URL" in loop["failure"]["logs"]
    assert "FATAL missing setting" in loop["msg"]
    worker_tier, crash_tier, web_tier = loop["tiers"]
    assert worker_tier["status"] == "ready"
    assert crash_tier["status"] == "failed"
    # Reported as soon as it crashed, far from waiting out the tier's timeout.
    assert crash_tier["seconds"] < CRASH_TIMEOUT / 4
    # The tier after the failed one never started.
    assert web_tier["status"] == "not started"
    assert loop["services"]["web"] is None

    exited = run.results["crash_exit"]
    assert exited["failure"]["reason"] == "exited with code 3"
    assert exited["tiers"][0]["seconds"] < CRASH_TIMEOUT / 4
    assert exited["failure"]["container"]["exit_code"] == 3

    slow = run.results["too_slow"]
    assert slow["failed_service"] == "slow"
    expected = "not ready within the tier timeout of 3 s (health: starting)"
    assert expected in slow["failure"]["reason"]
    assert slow["tiers"][0]["status"] == "failed"
