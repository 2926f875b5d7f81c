"""Issue #18's two fixes found while mapping the runbooks, through real `ansible-playbook` runs.

1. A validation-only profile (`stagegate_validate_only: true`): playbooks/validate.yml against a
   running service stagegate does not deploy, with only a check catalog and gates (no
   stagegate_db, compose, tier settings, release marker or GO deploy record), as seed 000 and
   001 validate. Before the fix the same inventory stopped at the missing marker.
2. Seed 003's readiness estimate from its load gates: all load gates PASS plus one unrelated
   WARN reads "97-98%" (before: "95-96%", from the verdict), with the results file in the
   runbook's field names (no "Run Config", no invented poll counters).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from checks_fixtures import App
from runbook_fixtures import inventory, last_report, run_validate

from stagegate import ledger

FIXTURES = Path(__file__).parent / "fixtures"

pytestmark = pytest.mark.slow


def test_validate_only_needs_only_checks_and_gates(tmp_path: Path, http_app: App) -> None:
    inv = inventory(tmp_path, http_app)
    proc = run_validate(inv)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    records = ledger.read(tmp_path / "state" / "ledger.jsonl")
    assert [(r["kind"], r["release"], r["verdict"]) for r in records] == [
        ("validation", "current", "GO")
    ]
    assert last_report(tmp_path)["verdict"] == "GO"
    # No deploy to trend from: the trend line lists the validations, no "since its deploy (?".
    assert "current validations: " in proc.stdout, proc.stdout[-2000:]
    assert "since its deploy" not in proc.stdout

    # The service degrades: the key check fails, NO_GO exits non-zero, recorded all the same.
    proc = run_validate(
        inv,
        "-e",
        json.dumps(
            {
                "stagegate_release": "v1.0.0",
                "stagegate_checks": [
                    {
                        "name": "api_health",
                        "type": "http",
                        "options": {"url": f"{http_app.url}/degraded"},
                    },
                    {
                        "name": "security_headers",
                        "type": "http",
                        "severity": "warning",
                        "options": {"url": f"{http_app.url}/health"},
                    },
                ],
            }
        ),
    )
    assert proc.returncode == 2, proc.stdout
    assert "NO_GO for v1.0.0" in proc.stdout
    record = ledger.read(tmp_path / "state" / "ledger.jsonl")[-1]
    assert (record["kind"], record["release"], record["verdict"]) == (
        "validation",
        "v1.0.0",
        "NO_GO",
    )


def test_without_the_profile_the_same_inventory_is_refused(tmp_path: Path, http_app: App) -> None:
    """Without `stagegate_validate_only`, validate.yml re-validates a deployed release: with no
    release marker it stops, naming the marker, whether or not the inventory names a release
    (it need not: the marker does)."""
    inv = inventory(tmp_path, http_app, stagegate_validate_only=False)
    proc = run_validate(inv)
    assert proc.returncode != 0
    assert ".stagegate-release" in proc.stdout
    assert "is undefined" not in proc.stdout
    proc = run_validate(inv, "-e", f"stagegate_release=v1 stagegate_project_dir={tmp_path}")
    assert proc.returncode != 0
    assert ".stagegate-release" in proc.stdout
    assert not (tmp_path / "state" / "ledger.jsonl").exists()


def test_seed003_readiness_from_the_load_gates(tmp_path: Path, http_app: App) -> None:
    """Every load gate PASS and one unrelated WARN (a missing header): GO_WITH_WARNINGS, and
    the readiness estimate is the all-PASS one."""
    results = tmp_path / "staging_load_simulation.json"
    results.write_text((FIXTURES / "seed003_pass.json").read_text())
    inv = inventory(
        tmp_path,
        http_app,
        stagegate_gates={
            "key_checks": ["api_health"],
            "profiles": [{"name": "seed003_load_simulation", "load_phase_seconds": 300}],
            "results_files": {"load_simulation": str(results)},
        },
    )
    checks = json.loads((inv / "group_vars" / "all" / "stagegate.yml").read_text())
    checks["stagegate_checks"][1]["options"]["headers_present"] = ["X-Missing-Header"]
    (inv / "group_vars" / "all" / "stagegate.yml").write_text(json.dumps(checks))
    proc = run_validate(inv)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = last_report(tmp_path)
    assert report["verdict"] == "GO_WITH_WARNINGS"
    load_gates = [g for g in report["gates"] if g["name"].startswith("load: ")]
    assert len(load_gates) == 7
    assert {g["status"] for g in load_gates} == {"PASS"}
    advice = " ".join(r["advice"] for r in report["recommendations"])
    assert "Readiness estimate 97-98%" in advice
    assert "95-96%" not in advice
