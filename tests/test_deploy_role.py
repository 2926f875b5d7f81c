"""The deploy role through real ansible-playbook: check mode first, then deploy, then again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from compose_fixtures import ComposeTestProject

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_deploy_role_check_mode_then_deploy_then_idempotent(
    built_app_project: ComposeTestProject, tmp_path: Path, docker_client: Any
) -> None:
    project = built_app_project
    state_dir = tmp_path / "state"
    role_vars = {
        "stagegate_state_dir": str(state_dir),
        "stagegate_project_dir": project.module_args()["project_src"],
        "stagegate_compose_project": project.name,
        "stagegate_compose_env": project.env,
        "stagegate_release": "v1",
        "stagegate_tiers": [["slow"], ["web", "worker"]],
        "stagegate_app_services": ["web", "worker"],
        "stagegate_deploy_migrate": False,
        "stagegate_deploy_tier_timeout": 60,
    }
    manifest_file = state_dir / "releases" / "v1" / "manifest.json"

    planned = project.playbook("compose_deploy.yml", tmp_path, check=True, **role_vars)
    assert planned.rc == 0, planned.describe()
    assert planned.results["plan_startup"]["changed_services"] == ["slow", "web", "worker"]
    assert planned.results["manifest"]["changed"] is True
    # Check mode changed nothing: no container, no manifest.
    assert _containers(docker_client, project.name) == {}
    assert not manifest_file.exists()

    deployed = project.playbook("compose_deploy.yml", tmp_path, **role_vars)
    assert deployed.rc == 0, deployed.describe()
    assert [t["status"] for t in deployed.results["startup"]["tiers"]] == ["ready", "ready"]
    assert _containers(docker_client, project.name) == {
        "slow": "running",
        "web": "running",
        "worker": "running",
    }
    manifest = json.loads(manifest_file.read_text())
    assert manifest["release"] == "v1"
    assert manifest["compose"]["project"] == project.name
    web_image = docker_client.images.get(f"sgt/{project.name}/web:latest")
    assert manifest["images"]["web"]["id"] == web_image.id

    again = project.playbook("compose_deploy.yml", tmp_path, **role_vars)
    assert again.rc == 0, again.describe()
    assert again.results["stop_app"] is False  # nothing would change: the apps kept running
    assert again.results["startup"]["changed"] is False
    assert again.results["manifest"]["changed"] is False
    assert "changed=0" in again.stdout  # no task of the role changed anything


def _containers(client: Any, project: str) -> dict[str, str]:
    return {
        c.labels["com.docker.compose.service"]: c.status
        for c in client.containers.list(
            all=True, filters={"label": f"com.docker.compose.project={project}"}
        )
    }
