"""Runbook 003 (LSOS staging) as a shipped example, end to end on its simulated target.

The test starts sandbox/targets/lsos (the sandbox application with LSOS's `{success, data,
error}` envelopes, dashboard fields and a modelled task queue); inventory/examples/lsos
validates it through playbooks/validate.yml: the health checks, then the staging load
simulator (a short load and drain phase here), graded by the seed003_load_simulation profile.
With 6 workers every load gate passes: GO, readiness 97-98 %. With 4 workers the queue drains
at 90 % of its growth: the queue gate is WARN, GO_WITH_WARNINGS, readiness 95-96 % and the
runbook's tuning rule (increase worker concurrency).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO_ROOT
from runbook_fixtures import TargetService, target_service

from stagegate.catalog import load_catalog
from stagegate.engine import run_checks
from stagegate.plugins import Hooks, new_plugin_manager
from stagegate.results import Status

pytestmark = pytest.mark.slow

INVENTORY = REPO_ROOT / "inventory" / "examples" / "lsos"
VARS = yaml.safe_load((INVENTORY / "group_vars" / "all" / "stagegate.yml").read_text())
CHECKS = yaml.safe_load((INVENTORY / "group_vars" / "all" / "checks.yml").read_text())[
    "stagegate_checks"
]
HOOKS = Hooks(new_plugin_manager(entry_points=False))


@pytest.fixture
def lsos(tmp_path: Path, docker_client: Any) -> Iterator[TargetService]:
    secrets = {
        "SANDBOX_ADMIN_PASSWORD": VARS["vault_lsos_admin_password"],
        "SANDBOX_JWT_SECRET": "lsos-jwt-signing-key-for-the-simulated-target-0001",
        "POSTGRES_PASSWORD": "lsos-db-not-a-secret",
    }
    with target_service(
        "lsos",
        tmp_path,
        prefix="LSOS",
        ports=("API", "PG", "PROXY"),
        env=secrets,
        db=("lsos", "lsos_staging"),
    ) as service:
        yield service


def load_gates(report: dict[str, Any]) -> dict[str, str]:
    return {g["name"]: g["status"] for g in report["gates"] if g["name"].startswith("load: ")}


def advice(report: dict[str, Any]) -> str:
    return " ".join(r["advice"] for r in report["recommendations"])


def test_lsos_load_gates_go_then_queue_warns_with_fewer_workers(lsos: TargetService) -> None:
    overrides = {
        "lsos_api_port": int(lsos.env["LSOS_API_PORT"]),
        "lsos_proxy_port": int(lsos.env["LSOS_PROXY_PORT"]),
        "lsos_compose_project": lsos.project,
        "lsos_checkout": str(lsos.checkout),
        "lsos_load_phase_seconds": 6,
        "lsos_drain_phase_seconds": 6,
        "stagegate_gates": {
            "key_checks": ["liveness", "readiness", "metrics_slo_snapshot"],
            "profiles": [
                # a busy shared test host: never assert timings
                {
                    "name": "seed003_load_simulation",
                    "load_phase_seconds": 6,
                    "p95_pass": "<= 20s",
                    "p95_warn": "<= 30s",
                },
            ],
            "results_files": {"load_simulation": str(lsos.state_dir / "load.json")},
        },
        "lsos_results_file": str(lsos.state_dir / "load.json"),
    }
    go = lsos.validate(INVENTORY, "1.0.0", **overrides)
    statuses = {c["name"]: c["status"] for c in go["checks"]}
    assert go["verdict"] == "GO", (statuses, load_gates(go))
    assert set(load_gates(go).values()) == {"PASS"}, load_gates(go)
    assert statuses["error_envelope"] == "PASS"
    assert statuses["dashboard_cohesion"] == "PASS"
    # Step 9: Authorization and X-Request-ID sent through the proxy reach the API unchanged.
    assert statuses["proxy_header_passthrough"] == "PASS"
    assert "Readiness estimate 97-98%" in advice(go)

    # A proxy that loses Authorization: the same check fails, naming the header, no value shown.
    lsos.compose("up", "--detach", "--wait", "proxy", LSOS_PROXY_DROP_HEADERS="Authorization")
    (entry,) = [c for c in CHECKS if c["name"] == "proxy_header_passthrough"]
    options = {
        **entry["options"],
        "url": f"http://127.0.0.1:{lsos.env['LSOS_PROXY_PORT']}/api/v1/debug/headers",
        "headers": {"Authorization": "Bearer stagegate-proxy-probe", "X-Request-ID": "probe-1"},
    }
    (dropped,) = run_checks(
        load_catalog([{**entry, "options": options}], HOOKS.check_types()), hooks=HOOKS
    )
    assert dropped.status is Status.FAIL
    assert dropped.message == "header Authorization did not reach the application"
    assert "stagegate-proxy-probe" not in json.dumps(dropped.to_dict())

    # Fewer workers, and the proxy passing every header again.
    lsos.compose("up", "--detach", "--wait", "api", "proxy", LSOS_WORKER_CONCURRENCY="4")
    warned = lsos.validate(INVENTORY, "1.0.0", **overrides)
    gates = load_gates(warned)
    assert warned["verdict"] == "GO_WITH_WARNINGS", gates
    assert gates["load: queue drain"] == "WARN", gates
    assert {s for n, s in gates.items() if n != "load: queue drain"} == {"PASS"}, gates
    assert "Increase worker concurrency" in advice(warned)
    assert "Readiness estimate 95-96%" in advice(warned)
