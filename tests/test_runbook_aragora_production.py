"""Runbook 001 (Aragora production readiness) as a shipped example, end to end on its target.

The test starts the simulated Aragora service (sandbox/targets/aragora-staging, which also
serves runbook 001's routes, with its production environment file
config/production.env); inventory/examples/aragora-production runs the pre-launch checks the
machine can read, the pre-launch health check and the post-launch smoke test through
playbooks/validate.yml (validation only, environment `production`): GO once the four roles
signed. Then `localhost` slips into ARAGORA_ALLOWED_ORIGINS: "CORS origins restricted" fails,
a key check, NO_GO (and a 30-day JWT expiry fails "Session timeout", max 168 hours).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO_ROOT
from runbook_fixtures import TargetService, aragora_service
from sandbox_fixtures import run_playbook

from stagegate import ledger

pytestmark = pytest.mark.slow

INVENTORY = REPO_ROOT / "inventory" / "examples" / "aragora-production"
VARS = yaml.safe_load((INVENTORY / "group_vars" / "all" / "stagegate.yml").read_text())
MANUAL = yaml.safe_load((INVENTORY / "group_vars" / "all" / "gates.yml").read_text())[
    "stagegate_manual_checks"
]


@pytest.fixture
def aragora(tmp_path: Path, docker_client: Any) -> Iterator[TargetService]:
    with aragora_service(tmp_path, VARS, db_password="aragora-db-not-a-secret") as service:
        yield service


def test_aragora_production_ready_then_cors_allows_localhost(aragora: TargetService) -> None:
    env_file = aragora.checkout / "config" / "production.env"
    overrides = {
        "aragora_api_port": int(aragora.env["ARAGORA_API_PORT"]),
        "aragora_redis_port": int(aragora.env["ARAGORA_REDIS_PORT"]),
        "aragora_env_file": str(env_file),
        "aragora_compose_project": aragora.project,
        "stagegate_manual_confirmations": {m["name"]: "lead@2026-01-13" for m in MANUAL},
    }
    go = aragora.validate(INVENTORY, "1.0.0", **overrides)
    statuses = {c["name"]: c["status"] for c in go["checks"]}
    assert go["verdict"] == "GO", [
        (c["name"], c["message"]) for c in go["checks"] if c["status"] != "PASS"
    ]
    assert statuses["smoke_debate"] == "PASS"
    redis = next(c for c in go["checks"] if c["name"] == "redis_config")  # rows 22 and 23
    assert redis["status"] == "PASS", redis["message"]
    assert redis["details"]["config"]["maxmemory-policy"] == "allkeys-lru"
    assert redis["metrics"]["config.maxmemory"] == 256 * 1024**2
    assert statuses["signoff_product_owner"] == "PASS"
    # Row 37: the JWT expiry within 1..168 hours; rows 42/43: the API runs with CPU and memory
    # limits (the target's deploy.resources.limits).
    assert statuses["session_timeout"] == "PASS"
    limits = next(c for c in go["checks"] if c["name"] == "resource_limits")
    assert limits["status"] == "PASS", limits["message"]
    assert limits["details"]["limits"]["api"] == {"cpus": 1.0, "memory_mb": 512.0}

    text = (
        env_file.read_text()
        .replace(
            "ARAGORA_ALLOWED_ORIGINS=https://aragora.example",
            "ARAGORA_ALLOWED_ORIGINS=http://localhost:3000,https://aragora.example",
        )
        .replace("ARAGORA_JWT_EXPIRY_HOURS=24", "ARAGORA_JWT_EXPIRY_HOURS=720")  # 30 days
    )
    env_file.write_text(text)
    run = run_playbook(
        "validate.yml",
        {
            "stagegate_release": "1.0.0",
            "stagegate_state_dir": str(aragora.state_dir),
            "stagegate_report_root": str(aragora.state_dir / "reports"),
            **overrides,
        },
        inventory=INVENTORY,
    )
    assert run.rc != 0, run.output[-4000:]
    assert "cors_restricted" in run.output
    assert "session_timeout FAIL" in run.output
    assert "http://localhost:3000" not in run.output  # a configuration value is never shown
    record = ledger.read(aragora.state_dir / "ledger.jsonl")[-1]
    assert (record["kind"], record["verdict"]) == ("validation", "NO_GO")
    assert Path(record["reports"]["report.json"]).is_file()
