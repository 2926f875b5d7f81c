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
        **project_vars(project, state_dir),
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

    # The source role names v1 as the release that runs: a re-run, not a new release.
    role_vars["stagegate_previous_release"] = "v1"
    again = project.playbook("compose_deploy.yml", tmp_path, **role_vars)
    assert again.rc == 0, again.describe()
    assert again.results["stop_app"] is False  # nothing would change: the apps kept running
    assert again.results["startup"]["changed"] is False
    assert again.results["manifest"]["changed"] is False
    assert "changed=0" in again.stdout  # no task of the role changed anything


def test_a_new_release_that_fails_in_its_plan_leaves_its_own_manifest_not_an_earlier_one(
    built_app_project: ComposeTestProject, tmp_path: Path
) -> None:
    """v2 was promoted once (its manifest names the backup taken before it and the migration it
    applied), then rolled back from. Promoted again over v1, the deploy fails while planning
    (the database does not answer): the manifest a rollback reads must be this run's (its
    backup, nothing applied), not the earlier deploy's, whose restore would lose the data
    written since."""
    project = built_app_project
    state_dir = tmp_path / "state"
    manifest_file = state_dir / "releases" / "v2" / "manifest.json"
    manifest_file.parent.mkdir(parents=True)
    earlier = {
        "schema": 1,
        "release": "v2",
        "previous_release": "v1",
        "images": {},
        "backup": {"path": "/backups/app-v1-earlier-run.dump"},
        "migrations_applied": ["002_add_orders.sql"],
        "started_at": "2026-11-20T10:00:00Z",
        "finished_at": "2026-11-20T10:01:00Z",
    }
    manifest_file.write_text(json.dumps(earlier))
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "002_add_orders.sql").write_text("CREATE TABLE orders (id int);\n")
    role_vars = {
        **project_vars(project, state_dir),
        "stagegate_release": "v2",
        "stagegate_previous_release": "v1",
        "stagegate_run_id": "run-v2-again",
        "stagegate_deploy_backup": {"path": "/backups/app-v2-run-v2-again.dump"},
        "stagegate_tiers": [["web", "worker"]],
        "stagegate_app_services": ["web", "worker"],
        "stagegate_deploy_migrate": True,
        "stagegate_migrations_dir": str(migrations),
        # nothing listens on port 9 of the loopback: finding the pending migrations fails
        "stagegate_db": {"host": "127.0.0.1", "port": 9, "name": "app", "user": "app"},
    }
    failed = project.playbook("compose_deploy.yml", tmp_path, **role_vars)
    assert failed.rc != 0
    assert "Find the pending migrations" in failed.stdout, failed.describe()
    manifest = json.loads(manifest_file.read_text())
    assert manifest["in_progress"] == {
        "run_id": "run-v2-again",
        "step": "plan",
        "started_at": manifest["started_at"],
    }
    assert manifest["backup"] == {"path": "/backups/app-v2-run-v2-again.dump"}
    assert manifest["migrations_applied"] == []  # nothing for a rollback to revert or restore
    assert manifest["previous_release"] == "v1"


def project_vars(project: ComposeTestProject, state_dir: Path) -> dict[str, Any]:
    """The deploy role's variables that name the throwaway project and the state dir."""
    return {
        "stagegate_state_dir": str(state_dir),
        "stagegate_project_dir": project.module_args()["project_src"],
        "stagegate_compose_project": project.name,
        "stagegate_compose_env": project.env,
    }


def _containers(client: Any, project: str) -> dict[str, str]:
    return {
        c.labels["com.docker.compose.service"]: c.status
        for c in client.containers.list(
            all=True, filters={"label": f"com.docker.compose.project={project}"}
        )
    }
