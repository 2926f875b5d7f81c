"""Runbook 004 (AC-6 staging validation) as a shipped example, end to end on its target.

The test starts sandbox/targets/ac6 (the sandbox application as the AI Agents API with its
worker, and the health endpoints of Prometheus, Grafana and Jaeger); inventory/examples/ac6
runs the report's 12 smoke tests, monitoring checks and Docker service status through
playbooks/validate.yml (validation only): GO. Then the webhook answers 500 instead of 401,
the report's own finding, graded as the report graded it: a WARNING, GO_WITH_WARNINGS.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO_ROOT
from runbook_fixtures import TargetService, target_service

pytestmark = pytest.mark.slow

INVENTORY = REPO_ROOT / "inventory" / "examples" / "ac6"
VARS = yaml.safe_load((INVENTORY / "group_vars" / "all" / "stagegate.yml").read_text())
MANUAL = yaml.safe_load((INVENTORY / "group_vars" / "all" / "gates.yml").read_text())[
    "stagegate_manual_checks"
]
PORTS = ("API", "PROMETHEUS", "GRAFANA", "JAEGER")


@pytest.fixture
def ac6(tmp_path: Path, docker_client: Any) -> Iterator[TargetService]:
    secrets = {
        "SANDBOX_ADMIN_PASSWORD": VARS["vault_ac6_admin_password"],
        "SANDBOX_JWT_SECRET": "ac6-jwt-signing-key-for-the-simulated-target-00001",
        "POSTGRES_PASSWORD": "ac6-db-not-a-secret",
    }
    with target_service(
        "ac6", tmp_path, prefix="AC6", ports=PORTS, env=secrets, db=("agents", "ai_agents")
    ) as service:
        yield service


def test_ac6_smoke_and_monitoring_go_then_webhook_500_warns(ac6: TargetService) -> None:
    overrides: dict[str, Any] = {
        f"ac6_{name.lower()}_port": int(ac6.env[f"AC6_{name}_PORT"]) for name in PORTS
    }
    overrides |= {
        "ac6_compose_project": ac6.project,
        "ac6_response_band": {"pass": "< 20s"},  # a busy test host: never assert timings
        "ac6_monitoring_band": {"pass": "< 20s"},
        "stagegate_manual_confirmations": {m["name"]: "ops@2025-11-20" for m in MANUAL},
    }
    go = ac6.validate(INVENTORY, "de255fd", **overrides)
    statuses = {c["name"]: c["status"] for c in go["checks"]}
    assert go["verdict"] == "GO", [
        (c["name"], c["message"]) for c in go["checks"] if c["status"] != "PASS"
    ]
    smoke = [c for c in go["checks"] if c["type"] != "manual" and c["group"] != "monitoring"]
    assert len(smoke) == 12  # 12 smoke tests (11 and 12 are one flow) + Docker status

    ac6.compose("up", "--detach", "--wait", "api", AC6_WEBHOOK_STATUS="500")
    warned = ac6.validate(INVENTORY, "de255fd", **overrides)
    statuses = {c["name"]: c["status"] for c in warned["checks"]}
    assert warned["verdict"] == "GO_WITH_WARNINGS", statuses
    assert statuses["webhook_reachable"] == "WARN"
    assert not {"FAIL", "ERROR"} & set(statuses.values()), statuses
