"""The four reports: report.json contract, report.md layout, junit.xml, report.html in Chromium.

Every report is built from a real run of the gate step with a planted secret that must not
appear in any file.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.stagegate.release.plugins.module_utils._rollback_time import (
    rollback_estimate,
)

from stagegate.gatekeeper import GateOutcome, GateRequest, run_gate
from stagegate.redact import MASK
from stagegate.reports import REPORT_FILES

FIXTURES = Path(__file__).parent / "fixtures"
OUTPUT = Path(__file__).parent / "output"
PLANTED = "planted-Secret-4f9a2c"  # must never reach a report
URL_TOKEN = "T0KEN-in-webhook-path-77"

CHECKS: list[dict[str, Any]] = [
    {
        "name": "api_health",
        "group": "infrastructure",
        "type": "http",
        "status": "PASS",
        "duration_ms": 12.5,
        "value": 200,
        "threshold": "status == 200",
        "message": "HTTP 200",
    },
    {
        "name": "api_latency",
        "group": "performance",
        "type": "latency",
        "status": "PASS",
        "duration_ms": 820.0,
        "value": 48.0,
        "metrics": {"avg_ms": 31.0, "p95_ms": 48.0},
    },
    {
        "name": "security_headers",
        "group": "security",
        "type": "headers",
        "status": "FAIL",
        "severity": "warning",
        "message": f"X-Frame-Options missing; Authorization: Bearer {PLANTED}",
        "details": {"db_password": "another-s3cret-value", "recommendation": "Add the header."},
    },
    {
        "name": "unit_tests",
        "group": "tests",
        "type": "pytest",
        "status": "PASS",
        "metrics": {"tests": 100, "passed": 100, "skipped": 0},
    },
    {
        "name": "migrations",
        "group": "database",
        "type": "sql",
        "status": "FAIL",
        "message": "schema_version is 7, expected 8",
    },
]


def gate_run(
    report_dir: Path,
    seed003: str = "warn",
    checks: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> GateOutcome:
    request = GateRequest(
        release="v2",
        previous="v1",
        report_dir=str(report_dir),
        checks=CHECKS if checks is None else checks,
        gates={
            "profiles": ["seed003_load_simulation"],
            "results_files": {"load_simulation": str(FIXTURES / f"seed003_{seed003}.json")},
            "key_checks": ["api_health"],
            "rules": [{"name": "unit tests", "type": "pass_rate", "group": "tests", "min": "99%"}],
        },
        manual=[
            {"name": "owasp_review", "category": "security", "description": "OWASP review"},
            {"name": "alert_routing", "description": "Alert routing to on-call tested"},
        ],
        confirmations={"owasp_review": "alice@2026-11-22T10:00Z"},
        phases=[
            {"name": "preflight", "status": "ok", "seconds": 2.4},
            {"name": "backup", "status": "ok", "seconds": 6.1},
            {"name": "deploy", "status": "ok", "seconds": 31.5},
            {"name": "validate", "status": "ok", "seconds": 4.2},
        ],
        rollback_plan=extra.pop(
            "rollback_plan",
            {
                "target_release": "v1",
                "images": ["sandbox-api:v1", "sandbox-worker:v1"],
                "database": "restore backup 20261122T0930Z (schema 7)",
                "password": PLANTED,
            },
        ),
        secrets=[PLANTED],
        run_by="release-bot",
        **extra,
    )
    return run_gate(request)


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("report")
    gate_run(directory)
    return directory


def test_every_report_is_written_and_none_holds_a_secret(report_dir: Path) -> None:
    for name in REPORT_FILES:
        text = (report_dir / name).read_text()
        assert text.strip(), name
        assert PLANTED not in text, name
        assert "another-s3cret-value" not in text, name  # under a secret-named key
    assert f"Bearer {MASK}" in (report_dir / "report.md").read_text()


def test_report_json_carries_the_contract_fields(report_dir: Path) -> None:
    report = json.loads((report_dir / "report.json").read_text())
    assert report["verdict"] == "NO_GO"  # the migrations check is critical and failed
    assert isinstance(report["score"], float)
    assert report["release"] == {"version": "v2", "previous": "v1", "baseline": None}
    assert [p["name"] for p in report["phases"]] == ["preflight", "backup", "deploy", "validate"]
    assert set(report["phases"][0]) == {"name", "status", "seconds"}
    first = report["checks"][0]
    for key in (
        "name",
        "group",
        "status",
        "severity",
        "duration_ms",
        "value",
        "threshold",
        "message",
    ):
        assert key in first
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses["security_headers"] == "WARN"  # severity warning caps the FAIL
    assert statuses["alert_routing"] == "WARN"  # manual item still pending
    assert {g["name"] for g in report["gates"]} >= {"key check api_health", "load: p95 latency"}
    assert report["rollback_plan"]["target_release"] == "v1"
    assert report["rollback_plan"]["password"] == MASK


def test_report_md_is_laid_out_like_seed004(report_dir: Path) -> None:
    text = (report_dir / "report.md").read_text()
    headings = re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)
    for expected in (
        "Executive Summary",
        "2. Check Results",
        "Results Summary",
        "3. Gates",
        "4. Issues Identified",
        "5. Recommendations",
        "6. Performance Metrics",
        "7. Rollback Plan",
        "8. Manual Checklist",
        "9. Validation Sign-Off",
    ):
        assert expected in headings, expected
    assert "| Category | Checks | Passed | Warned | Failed | Success Rate |" in text
    assert "| database | 1 | 0 | 0 | 1 | 0.0% |" in text
    # a WARN is counted as warned, not passed (its success rate still counts it as run well)
    assert "| security | 2 | 1 | 1 | 0 | 100.0% |" in text
    assert "| **Total** | **7** | **4** | **2** | **1** | **85.7%** |" in text
    assert "**Verdict:** ❌ NO-GO" in text
    issue = text[text.index("**migrations**") :]
    assert "Severity: High" in issue.split("\n")[1]
    assert "Impact: schema_version is 7, expected 8" in issue
    assert "Recommendation: Add the header." in text
    assert "Increase worker concurrency" in text  # seed 003 tuning rule (queue WARN, p95 WARN)
    assert "| owasp_review | confirmed | confirmed by alice at 2026-11-22T10:00Z |" in text
    assert "| security | WARN | alice | 2026-11-22T10:00Z |" in text  # sign-off table
    OUTPUT.mkdir(exist_ok=True)
    shutil.copy(report_dir / "report.md", OUTPUT / "report-no-go.md")


def test_junit_has_one_testcase_per_check(report_dir: Path) -> None:
    root = ET.parse(report_dir / "junit.xml").getroot()  # noqa: S314 - our own file
    assert root.tag == "testsuites"
    cases = {c.get("name"): c for c in root.iter("testcase")}
    report = json.loads((report_dir / "report.json").read_text())
    for check in report["checks"]:
        assert check["name"] in cases
    assert cases["migrations"].find("failure") is not None
    assert cases["api_health"].find("failure") is None
    warn_out = cases["security_headers"].find("system-out")
    assert warn_out is not None
    assert warn_out.text is not None
    assert warn_out.text.startswith("WARN:")
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert suites["database"].get("failures") == "1"
    assert "gates" in suites


def test_a_stopped_run_still_writes_every_report(tmp_path: Path) -> None:
    outcome = gate_run(
        tmp_path, checks=[], stopped={"phase": "deploy", "reason": "api unhealthy after 60 s"}
    )
    assert outcome.verdict == "NO_GO"
    for name in REPORT_FILES:
        assert (tmp_path / name).exists()
    assert "stopped in phase `deploy`" in (tmp_path / "report.md").read_text()
    assert "Run stopped in phase deploy" in (tmp_path / "report.html").read_text()


def test_ledger_warnings_are_named_in_every_report_once(tmp_path: Path) -> None:
    torn = "/srv/ledger.jsonl line 3: torn final line skipped (41 bytes, not a whole record)"
    corrupt = "/srv/ledger.jsonl line 2: not a JSON record, skipped (Expecting value)"
    plan = {"target": "v1", "ledger_warnings": [torn, corrupt]}
    gate_run(tmp_path, ledger_warnings=[torn], rollback_plan=plan)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["ledger_warnings"] == [torn, corrupt]  # the plan's join, each once
    md = (tmp_path / "report.md").read_text()
    assert md.count(torn) == 2  # the warning list, and the rollback plan's own row
    assert "**Ledger warnings**" in md.split("## 1. Phases")[0]
    html = (tmp_path / "report.html").read_text()
    block = html.split('id="ledger-warnings"', 1)[1].split("</div>", 1)[0]
    assert torn in block
    assert corrupt in block
    gate_run(tmp_path / "clean")
    clean = json.loads((tmp_path / "clean" / "report.json").read_text())
    assert clean["ledger_warnings"] == []
    assert "Ledger warnings" not in (tmp_path / "clean" / "report.md").read_text()
    assert 'id="ledger-warnings"' not in (tmp_path / "clean" / "report.html").read_text()


def test_a_resumed_deploy_is_named_in_every_report(tmp_path: Path) -> None:
    resumed = {
        "run_id": "staging-dead-1",
        "step": "migrations",
        "started_at": "2026-11-30T12:03:41Z",
        "release": "v2",
        "previous_release": "v1",
        "backup": {"path": "/srv/backups/app-v2-staging-dead-1.dump"},
        "migrations": ["006_composite_indexes.sql", "007_reporting_views.sql"],
    }
    gate_run(tmp_path, resumed=resumed)
    assert json.loads((tmp_path / "report.json").read_text())["resumed"] == resumed
    said = "This run resumed the deploy of v2 that run staging-dead-1 began at"
    md = (tmp_path / "report.md").read_text()
    assert f"**Resumed:** {said}" in md.split("## 1. Phases")[0]
    assert "app-v2-staging-dead-1.dump, stays the one a rollback restores" in md
    assert said in (tmp_path / "report.html").read_text().split('id="resumed"', 1)[1]
    gate_run(tmp_path / "fresh")
    assert json.loads((tmp_path / "fresh" / "report.json").read_text())["resumed"] is None
    assert "Resumed" not in (tmp_path / "fresh" / "report.md").read_text()


def test_a_check_mode_run_says_so_at_the_top_of_every_report(tmp_path: Path) -> None:
    note = "Check mode: nothing was changed; the verdict grades the running release"
    outcome = gate_run(tmp_path, check_mode=True)
    assert json.loads((tmp_path / "report.json").read_text())["check_mode"] is True
    md = (tmp_path / "report.md").read_text().splitlines()
    assert md[2] == f"> **{note}**", md[:4]  # right under the title
    html = (tmp_path / "report.html").read_text()
    assert html.index(f'<p class="check-mode" id="check-mode"><b>{note}</b></p>') < html.index(
        'id="verdict"'
    )
    assert outcome.ledger_record["check_mode"] is True  # should a check run's record be written
    gate_run(tmp_path / "real")
    assert json.loads((tmp_path / "real" / "report.json").read_text())["check_mode"] is False
    assert "Check mode" not in (tmp_path / "real" / "report.md").read_text()
    assert 'id="check-mode"' not in (tmp_path / "real" / "report.html").read_text()


def test_a_release_without_images_has_no_image_part_in_its_estimate() -> None:
    # a symlink release: "image rebuild ~0 s" said something of images it never had
    records = [{"release": "v1", "verdict": "GO", "phases": {"deploy": 3.0, "build": 5.0}}]
    none = {"action": "none"}
    symlink = rollback_estimate(records, database=none, rebuild=[], target="v1", images=False)
    assert "image rebuild" not in symlink["parts"]
    assert "image rebuild" not in symlink["unmeasured"]
    compose = rollback_estimate(records, database=none, rebuild=[], target="v1")
    assert compose["parts"]["image rebuild"]["seconds"] == 0.0


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium is not installed; run `make setup` (scripts/setup.sh)")
    with tempfile.TemporaryDirectory(prefix="sg-chromium-") as profile:
        return subprocess.run(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )


@pytest.mark.slow
def test_report_html_renders_in_headless_chromium(report_dir: Path) -> None:
    page = report_dir / "report.html"
    source = page.read_text()
    assert not re.search(r"(src|href)=\"https?://", source)  # self-contained
    assert "<style>" in source
    assert "<script>" in source
    dump = _chromium("--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri())
    dom = dump.stdout
    assert 'data-chart="drawn"' in dom  # the script ran to the end
    assert '<svg id="latency-chart"' in dom
    assert '<svg id="phase-chart"' in dom
    assert '<button id="filter-issues"' in dom
    assert len(re.findall(r'<rect class="bar"', dom)) >= 4 + 3  # phases + latency figures
    assert '<div id="js-errors"></div>' in dom  # the page's own error sink stayed empty
    console = [line for line in dump.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
    OUTPUT.mkdir(exist_ok=True)
    shot = OUTPUT / "report-html.png"
    shot.unlink(missing_ok=True)
    _chromium(f"--screenshot={shot}", "--window-size=1280,2200", "--hide-scrollbars", page.as_uri())
    assert shot.stat().st_size > 10_000


def test_the_plan_s_time_estimate_is_in_every_report_and_phases_in_the_ledger(
    tmp_path: Path,
) -> None:
    """Seed 004's estimated rollback time in the promotion's plan; the ledger keeps the phases
    the next rollback's estimate rests on."""
    records = [{"release": "v1", "verdict": "GO", "phases": {"deploy": 31.5, "validate": 4.2}}]
    estimate = rollback_estimate(records, database={"action": "none"}, rebuild=[], target="v1")
    outcome = gate_run(tmp_path, rollback_plan={"target": "v1", "estimate": estimate})
    assert outcome.ledger_record["phases"] == {
        "preflight": 2.4, "backup": 6.1, "deploy": 31.5, "validate": 4.2,
    }  # fmt: skip
    assert estimate["text"] == "~35.7 s"
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["rollback_plan"]["estimate"]["seconds"] == 35.7
    assert "**estimate:** seconds: 35.7; text: ~35.7 s" in (tmp_path / "report.md").read_text()
    assert "~35.7 s" in (tmp_path / "report.html").read_text()
