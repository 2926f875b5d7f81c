"""Runbook 002 (Temponest staging) as a shipped example, end to end on its simulated target.

inventory/examples/temponest promotes the target sandbox/targets/temponest (the sandbox
application with Temponest's seven services, endpoints and migrations 006/007) through
playbooks/staging.yml: v1.8.0 is promoted with GO (backup, TEMPLATE dry-run, build of the seven
services, tiers, migration verification queries, the check catalog, manual flows confirmed as
an AWX survey would). Then v1.8.1-broken-migration, whose migration 008 fails (the runbook's
"Database Migration Fails"), is NO_GO in the migration dry-run, before anything changes:
v1.8.0 keeps running.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO_ROOT, free_port, unique_name
from runbook_fixtures import make_repo, remove_images
from sandbox_fixtures import run_playbook

from stagegate import ledger

pytestmark = pytest.mark.slow

INVENTORY = REPO_ROOT / "inventory" / "examples" / "temponest"
MANUAL = yaml.safe_load((INVENTORY / "group_vars" / "all" / "gates.yml").read_text())[
    "stagegate_manual_checks"
]


@dataclass
class TemponestStack:
    repo: Path
    state_dir: Path
    project: str = field(default_factory=lambda: unique_name("sgttn"))
    web_port: int = field(default_factory=free_port)
    pg_port: int = field(default_factory=free_port)
    redis_port: int = field(default_factory=free_port)

    def extra_vars(self, release: str, **more: Any) -> dict[str, Any]:
        """Point the example at this stack; widen only what a busy test host cannot meet."""
        return {
            "stagegate_release": release,
            "stagegate_source_repo": str(self.repo),
            "stagegate_state_dir": str(self.state_dir),
            "stagegate_report_dir": str(self.state_dir / "reports" / release),
            "stagegate_compose_project": self.project,
            "temponest_image_prefix": self.project,
            "temponest_web_port": self.web_port,
            "temponest_pg_port": self.pg_port,
            "temponest_redis_port": self.redis_port,
            # The simulated images sit on the ~480 MB local base image (see group_vars).
            "temponest_size_budgets": {"*": {"pass": "2GB"}},
            "temponest_latency_band": {"pass": "<= 20s"},
            "temponest_slow_mean_band": {"pass": "<= 60s"},
            "temponest_cpu_band": "<= 10000%",
            "temponest_load_seconds": 3,  # the runbook's 5 minutes, cut to a probe
            **more,
        }

    def get(self, path: str) -> Any:
        url = f"http://127.0.0.1:{self.web_port}{path}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            return json.loads(resp.read())

    def teardown(self) -> None:
        subprocess.run(
            ["docker", "compose", "--project-name", self.project, "down", "--volumes",
             "--remove-orphans", "--timeout", "5"],
            cwd=self.state_dir / "checkout" if (self.state_dir / "checkout").exists() else "/",
            capture_output=True, check=False,
        )  # fmt: skip
        remove_images(f"{self.project}-*")
        shutil.rmtree(self.state_dir, ignore_errors=True)


@pytest.fixture
def temponest(tmp_path: Path, docker_client: Any) -> Iterator[TemponestStack]:
    repo = tmp_path / "temponest.git"
    assert make_repo("temponest", repo) == ["v1.8.0", "v1.8.1-broken-migration"]
    stack = TemponestStack(repo, Path(tempfile.mkdtemp(prefix="sgt-temponest-", dir="/var/tmp")))
    try:
        yield stack
    finally:
        stack.teardown()


def report(stack: TemponestStack, release: str) -> dict[str, Any]:
    return json.loads((stack.state_dir / "reports" / release / "report.json").read_text())


def test_temponest_promotes_v180_then_stops_a_broken_migration(
    temponest: TemponestStack,
) -> None:
    confirmations = {item["name"]: "qa-lead@2026-11-30" for item in MANUAL}
    run = run_playbook(
        "staging.yml",
        temponest.extra_vars("v1.8.0", stagegate_manual_confirmations=confirmations),
        inventory=INVENTORY,
    )
    assert run.rc == 0, run.output[-6000:]
    go = report(temponest, "v1.8.0")
    statuses = {c["name"]: c["status"] for c in go["checks"]}
    assert go["verdict"] == "GO", (go["verdict"], go.get("warnings"))
    assert [p["name"] for p in go["phases"]] == [
        "preflight", "source", "backup", "migration_dryrun", "build", "deploy", "validate",
    ]  # fmt: skip
    for name in ("web_ui_health", "services_healthy", "migrations_006_007", "smoke_tests"):
        assert statuses[name] == "PASS", name
    load = next(c for c in go["checks"] if c["name"] == "load_auth_agents")  # step 24
    assert (load["status"], load["metrics"]["errors"]) == ("PASS", 0), load["message"]
    assert load["details"]["concurrency"] == 50
    throughput = next(g for g in go["gates"] if g["name"] == "throughput")
    assert throughput["status"] == "SKIP"  # no last good release to compare with yet
    assert statuses["flow2_monitor"] == "PASS"  # a manual flow, confirmed
    logs = next(c for c in go["checks"] if c["name"] == "app_logs_clean")  # step 19's lines
    assert logs["status"] == "PASS", logs["message"]
    assert sorted(logs["details"]["required"]["msg=starting\\b"]) == sorted(
        ["agents", "scheduler", "auth", "web-ui", "approval-ui", "ingestion", "temporal-workers"]
    )
    assert temponest.get("/api/status")["version"] == "v1.8.0"
    assert temponest.get("/api/costs/summary")["summary"]  # migration 007's view serves

    run = run_playbook(
        "staging.yml", temponest.extra_vars("v1.8.1-broken-migration"), inventory=INVENTORY
    )
    assert run.rc != 0
    assert (temponest.state_dir / "reports" / "v1.8.1-broken-migration").is_dir(), run.output[
        -8000:
    ]
    no_go = report(temponest, "v1.8.1-broken-migration")
    assert no_go["verdict"] == "NO_GO"
    stopped = {p["name"]: p["status"] for p in no_go["phases"]}
    assert stopped.get("migration_dryrun") not in (None, "ok"), no_go["phases"]
    assert "build" not in stopped
    assert "008_agent_costs.sql" in json.dumps(no_go)
    # Nothing changed: v1.8.0 runs and serves; the ledger's last good release is still it.
    assert temponest.get("/api/status")["version"] == "v1.8.0"
    records = ledger.read(temponest.state_dir / "ledger.jsonl")
    assert [(r["release"], r["verdict"]) for r in records if not r.get("kind")] == [
        ("v1.8.0", "GO"),
        ("v1.8.1-broken-migration", "NO_GO"),
    ]
