"""The compose modules and the deploy role on the sandbox application (real images, real
PostgreSQL in its container, real migrations through pg_migrate)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from compose_fixtures import ComposeTestProject
from sandbox_fixtures import SandboxStack, sandbox_secrets

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SERVICES = ("postgres", "redis", "api", "worker")
TIER_TIMEOUT = 120
# Long on purpose: a crash must be reported on its own, nowhere near this timeout.
CRASH_TIMEOUT = 300


def _project(stack: SandboxStack) -> ComposeTestProject:
    return ComposeTestProject(project_dir=stack.project_dir, name=stack.project, env=stack.env())


def test_sandbox_build_v1_v2_deploy_tiers_and_crash_on_start(
    sandbox_stack: SandboxStack, tmp_path: Path, docker_client: Any
) -> None:
    stack = sandbox_stack
    prefix = stack.image_prefix

    # Build v1 twice (the second build changes nothing), then v2: both releases' tags stay.
    stack.checkout("v1")
    v1 = _project(stack).playbook("compose_sandbox_build.yml", tmp_path, release="v1")
    assert v1.rc == 0, v1.describe()
    assert sorted(v1.results["first"]["built"]) == sorted(SERVICES)
    assert v1.results["second"]["changed"] is False
    v1_ids = {s: v1.results["first"]["images"][s]["id"] for s in SERVICES}

    stack.checkout("v2")
    v2 = _project(stack).playbook("compose_sandbox_build.yml", tmp_path, release="v2")
    assert v2.rc == 0, v2.describe()
    assert v2.results["first"]["changed"] is True
    assert v2.results["first"]["images"]["api"]["release_image"] == f"{prefix}/api:v2"
    for service in SERVICES:
        assert docker_client.images.get(f"{prefix}/{service}:v1").id == v1_ids[service]
    # v2 changed the app's code; the database and cache images are the same build.
    assert v2.results["first"]["images"]["api"]["id"] != v1_ids["api"]

    # Deploy v2 with the role: infrastructure tier, migrations, apps, manifest.
    project = _project(stack)
    secrets = sandbox_secrets()
    role_vars = {
        "stagegate_state_dir": str(stack.state_dir),
        "stagegate_project_dir": str(stack.project_dir),
        "stagegate_compose_project": stack.project,
        "stagegate_compose_env": stack.env(),
        "stagegate_release": "v2",
        "stagegate_tiers": [["postgres", "redis"], ["api", "worker"]],
        "stagegate_app_services": ["api", "worker"],
        "stagegate_db": {
            "host": "127.0.0.1",
            "port": stack.pg_port,
            "name": "app",
            "user": "app",
            "password": secrets["sandbox_db_password"],
        },
        "stagegate_deploy_tier_timeout": TIER_TIMEOUT,
        # The sandbox's healthchecks start python3 with a 3 s timeout: on a host loaded by
        # parallel test runs one can time out; let Docker's next check decide.
        "stagegate_deploy_unhealthy_grace": 60,
        "stagegate_deploy_readiness": {"api": {"http": f"{stack.base_url}/health/ready"}},
    }
    deployed = project.playbook("compose_deploy.yml", tmp_path, **role_vars)
    assert deployed.rc == 0, deployed.describe()
    res = deployed.results
    assert [t["services"] for t in res["startup"]["tiers"]] == [
        ["postgres", "redis"],
        ["api", "worker"],
    ]
    assert res["migrate"]["pending"] == res["pending"]["pending"]
    assert "007" in " ".join(res["pending"]["pending"])  # v2's reporting view was applied
    manifest = json.loads((stack.state_dir / "releases" / "v2" / "manifest.json").read_text())
    assert manifest["images"]["api"]["id"] == v2.results["first"]["images"]["api"]["id"]
    assert manifest["migrations_applied"] == res["pending"]["pending"]
    assert secrets["sandbox_db_password"] not in deployed.stdout + json.dumps(res)

    # The crash-on-start switch: reported with the service's logs long before the timeout.
    crashing = ComposeTestProject(
        project_dir=stack.project_dir,
        name=stack.project,
        env={**stack.env(), "SANDBOX_FAULTS": "api:crash_on_start"},
    )
    crash = crashing.playbook(
        "compose_up_tiers_once.yml",
        tmp_path,
        tiers=[["postgres", "redis"], ["api", "worker"]],
        tier_timeout=CRASH_TIMEOUT,
    )
    assert crash.rc == 0, crash.describe()
    failure = crash.results["failure"]
    assert crash.results["failed_service"] == "api"
    assert "crash_on_start" in "\n".join(failure["logs"])
    assert failure["reason"].startswith(("exited with code", "crash loop"))
    assert crash.results["tiers"][1]["seconds"] < CRASH_TIMEOUT / 4
