"""Seed 002's 24-hour stability period through real `ansible-playbook playbooks/validate.yml`
runs: `prometheus` checks against a real Prometheus (scraping a served target whose memory and
restarts the test changes between runs), each run's ledger record written by the playbook, and
`trend` gates over those records, drawn in report.html."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from prometheus_fixtures import Prometheus

from stagegate import ledger

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MB = 1024 * 1024

pytestmark = pytest.mark.slow


def inventory(tmp_path: Path, prometheus: Prometheus) -> Path:
    group_vars = tmp_path / "inventory" / "group_vars" / "all"
    group_vars.mkdir(parents=True)
    (tmp_path / "inventory" / "hosts.yml").write_text(
        "staging:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
        f"      ansible_python_interpreter: {sys.executable}\n"
    )
    config: dict[str, Any] = {
        "stagegate_validate_only": True,
        "stagegate_release": "v1.8.0",
        "stagegate_state_dir": str(tmp_path / "state"),
        "stagegate_report_root": str(tmp_path / "reports"),
        "stagegate_checks": [
            {
                "name": "memory",
                "type": "prometheus",
                "group": "performance",
                "options": {
                    "url": prometheus.url,
                    "query": "app_memory_bytes / 1024 / 1024",
                    "unit": "mb",
                    "metric": "api_mb",
                    "value": "<= 1GB",
                },
            },
            {
                "name": "restarts",
                "type": "prometheus",
                "group": "infrastructure",
                "options": {
                    "url": prometheus.url,
                    "query": 'sum(container_restarts{container="api"})',
                    "metric": "api_restarts",
                },
            },
        ],
        "stagegate_gates": {
            "rules": [
                {
                    "name": "memory not growing",
                    "type": "trend",
                    "check": "memory",
                    "metric": "api_mb",
                    "method": "fit",
                    "relative": True,
                    "min_runs": 2,
                    "pass": "<= 5%",
                    "warn": "<= 25%",
                },
                {
                    "name": "no new restarts",
                    "type": "trend",
                    "check": "restarts",
                    "metric": "api_restarts",
                    "runs": 3,
                    "pass": "<= 0",
                },
            ]
        },
    }
    (group_vars / "stagegate.yml").write_text(json.dumps(config))
    return tmp_path / "inventory"


def revalidate(inv: Path, prometheus: Prometheus, memory_mb: int, restarts: int) -> dict[str, Any]:
    """Set what the target exposes, wait for Prometheus to scrape it, run validate.yml;
    return the run's report.json."""
    with prometheus.target.lock:
        prometheus.target.memory_bytes = memory_mb * MB
        prometheus.target.restarts["api"] = restarts
    prometheus.wait_scraped(2)
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inv), "playbooks/validate.yml"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
        check=False,
    )
    records = ledger.read(inv.parent / "state" / "ledger.jsonl")
    assert records, proc.stdout[-3000:]
    record = records[-1]
    report = json.loads(Path(record["reports"]["report.json"]).read_text())
    assert proc.returncode == (2 if report["verdict"] == "NO_GO" else 0), proc.stdout[-3000:]
    return report


def gates(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {g["name"]: g for g in report["gates"]}


def test_trend_gates_over_scheduled_revalidations(tmp_path: Path, prometheus: Prometheus) -> None:
    inv = inventory(tmp_path, prometheus)
    first = revalidate(inv, prometheus, memory_mb=100, restarts=0)
    assert gates(first)["memory not growing"]["status"] == "SKIP"
    assert "1 run(s)" in gates(first)["memory not growing"]["message"]
    steady = revalidate(inv, prometheus, memory_mb=101, restarts=0)
    assert steady["verdict"] == "GO", steady["gates"]
    assert gates(steady)["memory not growing"]["status"] == "PASS"
    assert gates(steady)["no new restarts"]["status"] == "SKIP"  # 2 of its min_runs 3

    # A leak and a restart: the fitted memory rise over three runs is ~+15 % (WARN), and the
    # api restarted since the first run of the 3-run window (FAIL: NO_GO).
    leaking = revalidate(inv, prometheus, memory_mb=115, restarts=1)
    memory, restarts = gates(leaking)["memory not growing"], gates(leaking)["no new restarts"]
    assert memory["status"] == "WARN", memory
    assert [p["value"] for p in memory["details"]["trend"]] == [100, 101, 115]
    assert "100 -> 115" in memory["message"]
    assert restarts["status"] == "FAIL", restarts
    assert [p["value"] for p in restarts["details"]["trend"]] == [0, 0, 1]
    assert leaking["verdict"] == "NO_GO"

    records = ledger.read(tmp_path / "state" / "ledger.jsonl")
    assert [(r["kind"], r["metrics"]["memory"]["api_mb"]) for r in records] == [
        ("validation", 100),
        ("validation", 101),
        ("validation", 115),
    ]
    html = Path(leaking["report_paths"]["report.html"]).read_text()
    assert "<h2>Trends</h2>" in html
    assert html.count('<svg class="trend"') == 2
    assert "100.0 → 101.0 → 115.0" in html
    markdown = Path(leaking["report_paths"]["report.md"]).read_text()
    assert "Trend of **memory not growing** (memory.api_mb, 3 runs, this one last)" in markdown
