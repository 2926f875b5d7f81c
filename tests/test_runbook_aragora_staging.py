"""Runbook 000 (Aragora staging validation) as a shipped example, end to end on its target.

stagegate does not deploy Aragora: the test starts the simulated service
(sandbox/targets/aragora-staging: the sandbox application with Aragora's endpoints and
envelopes, its schema) itself, and inventory/examples/aragora-staging validates it through
playbooks/validate.yml with the validation-only profile: GO with the sign-off confirmed, then,
with Redis stopped, GO_WITH_WARNINGS ("[WARN] Redis not available (optional)"), not NO_GO.
Then step 28: a pg_dump -Fc made by hand restored by playbooks/restore.yml with the same
inventory (no app tier stopped: stagegate does not run Aragora) and the row it lost back.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO_ROOT
from runbook_fixtures import TargetService, aragora_service
from sandbox_fixtures import run_playbook

pytestmark = pytest.mark.slow

INVENTORY = REPO_ROOT / "inventory" / "examples" / "aragora-staging"
VARS = yaml.safe_load((INVENTORY / "group_vars" / "all" / "stagegate.yml").read_text())
MANUAL = yaml.safe_load((INVENTORY / "group_vars" / "all" / "gates.yml").read_text())[
    "stagegate_manual_checks"
]


@pytest.fixture
def aragora(tmp_path: Path, docker_client: Any) -> Iterator[TargetService]:
    with aragora_service(tmp_path, VARS, db_password=VARS["vault_aragora_db_password"]) as service:
        yield service


def test_aragora_staging_validates_then_warns_without_redis(aragora: TargetService) -> None:
    overrides = {
        "aragora_api_port": int(aragora.env["ARAGORA_API_PORT"]),
        "aragora_pg_port": int(aragora.env["ARAGORA_PG_PORT"]),
        "aragora_latency_avg": {"pass": "< 20s"},  # a busy test host: never assert timings
        "stagegate_manual_confirmations": {m["name"]: "validator@2026-11-30" for m in MANUAL},
    }
    go = aragora.validate(INVENTORY, "1.0.0", **overrides)
    statuses = {c["name"]: c["status"] for c in go["checks"]}
    assert go["verdict"] == "GO", [
        (c["name"], c["message"]) for c in go["checks"] if c["status"] != "PASS"
    ]
    for name in ("api_health", "database_healthy", "token_generation", "schema_version",
                 "audit_log_integrity", "security_headers"):  # fmt: skip
        assert statuses[name] == "PASS", name
    assert statuses["signoff_security"] == "PASS"  # the Validator's confirmation
    ab = next(c for c in go["checks"] if c["name"] == "concurrent_requests")  # row 14, `load`
    assert (ab["status"], ab["metrics"]["errors"]) == ("PASS", 0), ab["message"]
    assert 0 < ab["metrics"]["requests"] <= 100  # 100, unless a busy host hit its duration
    assert ab["value"] == ab["metrics"]["rps"]

    aragora.compose("stop", "redis")
    warned = aragora.validate(INVENTORY, "1.0.0", **overrides)
    statuses = {c["name"]: c["status"] for c in warned["checks"]}
    assert warned["verdict"] == "GO_WITH_WARNINGS", statuses
    assert statuses["redis_healthy"] == "WARN"
    assert statuses["database_healthy"] == "PASS"
    assert not {"FAIL", "ERROR"} & set(statuses.values()), statuses

    # step 28: the database rolled back with pg_restore from a dump made by hand (restore.yml)
    aragora.compose("start", "redis")
    dump = aragora.state_dir / "backup_20260114.dump"
    with dump.open("wb") as out:
        subprocess.run(
            ["docker", "compose", "--project-name", aragora.project, "exec", "-T", "postgres",
             "pg_dump", "-Fc", "-U", "aragora", "-d", "aragora_staging"],
            cwd=aragora.checkout, env={**os.environ, **aragora.env}, stdout=out, check=True,
        )  # fmt: skip
    aragora.compose("exec", "-T", "postgres", "psql", "-U", "aragora", "-d", "aragora_staging",
                    "-c", "DELETE FROM audit_events")  # fmt: skip
    restored = run_playbook(
        "restore.yml",
        {"stagegate_restore_from": str(dump), "stagegate_state_dir": str(aragora.state_dir),
         "stagegate_report_root": str(aragora.state_dir / "reports"), **overrides},
        inventory=INVENTORY,
    )  # fmt: skip
    assert restored.rc == 0, restored.output[-6000:]
    said = " ".join(restored.output.split())
    assert "dumped from database aragora_staging" in said
    assert "Stops: nothing (no stagegate_app_services configured)" in said
    assert "public.audit_events" in said
    events = aragora.compose(
        "exec", "-T", "postgres", "psql", "-U", "aragora", "-d", "aragora_staging",
        "-tAc", "SELECT event FROM audit_events",
    )  # fmt: skip
    assert events.stdout.split() == ["staging.seeded"]
    assert VARS["vault_aragora_db_password"] not in restored.output
