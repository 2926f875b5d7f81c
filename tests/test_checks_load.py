"""The `load` check (a bounded load run) against a real local HTTP server, with an error-rate
fault, and the `load_result` parsers against real `ab` and locust output and k6's documented
summary JSON."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from checks_fixtures import App
from conftest import free_port
from runbook_fixtures import inventory, last_report, run_validate

from stagegate import ledger
from stagegate.catalog import CatalogError, load_catalog
from stagegate.engine import run_checks
from stagegate.plugins import Hooks, new_plugin_manager
from stagegate.results import CheckResult, Status

HOOKS = Hooks(new_plugin_manager(entry_points=False))
FIXTURES = Path(__file__).parent / "fixtures" / "load"


def run(*entries: dict[str, Any], check_mode: bool = False) -> list[CheckResult]:
    named = [{"name": f"c{i}", **entry} for i, entry in enumerate(entries)]
    specs = load_catalog(named, HOOKS.check_types())
    return run_checks(specs, hooks=HOOKS, check_mode=check_mode, concurrency=1)


def catalog_errors(**entry: Any) -> list[str]:
    with pytest.raises(CatalogError) as caught:
        load_catalog([{"name": "l", "type": "load", **entry}], HOOKS.check_types())
    return caught.value.errors


def test_load_reports_throughput_percentiles_and_error_rate(http_app: App) -> None:
    healthy, faulty, tolerated = run(
        {
            "type": "load",
            "url": f"{http_app.url}/health",
            "concurrency": 4,
            "duration": 60,
            "requests": 80,
            "bands": {"p99_ms": {"pass": "<= 60s"}, "rps": "> 0"},
        },
        {"type": "load", "url": f"{http_app.url}/flaky", "concurrency": 4, "requests": 40},
        {
            "type": "load",
            "url": f"{http_app.url}/flaky",
            "concurrency": 2,
            "requests": 40,
            "bands": {"error_rate": {"pass": "<= 10%", "warn": "<= 30%"}},
        },
    )
    assert healthy.status is Status.PASS, healthy.message
    assert healthy.metrics["requests"] == 80  # `requests` stops it before the duration
    assert healthy.details["stopped_by"] == "requests"
    assert healthy.metrics["errors"] == 0
    assert healthy.metrics["rps"] > 0
    assert healthy.value == healthy.metrics["rps"]
    for figure in ("avg_ms", "min_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms"):
        assert figure in healthy.metrics
    assert healthy.metrics["p50_ms"] <= healthy.metrics["p95_ms"] <= healthy.metrics["p99_ms"]
    graded = {m["name"] for m in healthy.details["measurements"]}
    assert graded == {"p99_ms", "rps", "error_rate"}  # error_rate has its default band
    assert "80 requests" in healthy.message
    # The fault: every fourth request of /flaky answers 500 (one server-wide counter).
    assert faulty.status is Status.FAIL, faulty.message
    assert faulty.metrics["errors"] == 10
    assert faulty.metrics["error_rate"] == 25.0
    assert "error_rate 25% outside PASS < 1 %" in faulty.message
    assert faulty.details["first_errors"] == ["status 500"]
    assert tolerated.status is Status.WARN, tolerated.message
    assert tolerated.metrics["error_rate"] == 25.0


def test_load_stops_by_itself_at_its_duration_and_not_in_check_mode(http_app: App) -> None:
    (timed,) = run({"type": "load", "url": f"{http_app.url}/slow", "duration": 0.5})
    assert timed.status is Status.PASS, timed.message
    assert timed.metrics["requests"] > 0
    assert timed.details["seconds"] >= 0.5  # ran to its duration, with no request cap
    assert timed.details["stopped_by"] == "duration"
    (cut,) = run(
        {"type": "load", "url": f"{http_app.url}/slow", "duration": 0.3, "requests": 100_000}
    )
    assert cut.details["stopped_by"] == "duration"
    assert f"after {cut.metrics['requests']:g} of 100000 requests" in cut.message
    (refused,) = run({"type": "load", "url": f"http://127.0.0.1:{free_port()}/", "duration": 0.5})
    assert refused.status is Status.ERROR  # nothing answered: nothing to grade
    assert "no request was answered" in refused.message
    assert "cannot connect" in refused.message
    (skipped,) = run({"type": "load", "url": f"{http_app.url}/health"}, check_mode=True)
    assert skipped.status is Status.SKIP  # a load run is not read-only


def test_load_refuses_hosts_that_are_not_local_and_options_past_the_caps() -> None:
    errors = catalog_errors(url="http://staging.example.com/health")
    assert "url host 'staging.example.com' is not a loopback address" in errors[0]
    assert "allow_hosts" in errors[0]
    assert catalog_errors(url="http://10.1.2.3/", allow_hosts=["10.1.2.4"])
    for url in ("http://127.0.0.1:8000/", "http://localhost/", "http://[::1]:80/"):
        load_catalog([{"name": "l", "type": "load", "url": url}], HOOKS.check_types())
    load_catalog(
        [{"name": "l", "type": "load", "url": "http://app1:8000/", "allow_hosts": ["app1"]}],
        HOOKS.check_types(),
    )
    capped = catalog_errors(
        url="http://127.0.0.1/",
        concurrency=65,
        duration="301",
        requests=100_001,
        bands={"p95": "<= 1s", "rps": "fast"},
    )
    text = "\n".join(capped)
    assert "option 'concurrency' = 65: expected an integer from 1 to 64" in text
    assert "option 'duration' = '301': expected a number from 0.1 to 300" in text
    assert "option 'requests' = 100001: expected an integer from 1 to 100000" in text
    assert "unknown option 'p95'" in text  # the figures are named p95_ms, rps, ...
    assert "option 'rps' = 'fast'" in text


def test_k6_summary_export_and_handle_summary() -> None:
    export, handled, missing = run(
        {
            "type": "load_result",
            "format": "k6",
            "path": str(FIXTURES / "k6-summary-export.json"),
            "bands": {"p95_ms": "< 500ms", "rps": ">= 50"},
        },
        {
            "type": "load_result",
            "format": "k6",
            "path": str(FIXTURES / "k6-handle-summary.json"),
            "bands": {"p95_ms": {"pass": "< 500ms", "warn": "< 2s"}, "error_rate": "< 5%"},
        },
        {
            "type": "load_result",
            "format": "k6",
            "path": str(FIXTURES / "k6-summary-export.json"),
            "bands": {"p99_ms": "< 1s"},
        },
    )
    assert export.status is Status.PASS, export.message
    assert export.metrics == {
        "requests": 2400.0,
        "rps": 79.87,
        "errors": 12.0,
        "error_rate": 0.5,
        "avg_ms": 143.8,
        "min_ms": 104.11,
        "p50_ms": 110.47,
        "p90_ms": 203.54,
        "p95_ms": 215.95,
        "max_ms": 1140.0,
    }
    assert handled.status is Status.WARN, handled.message
    assert handled.metrics["p99_ms"] == 2900.0
    assert handled.metrics["errors"] == 510
    assert handled.metrics["error_rate"] == pytest.approx(3.4)
    assert missing.status is Status.ERROR  # the export has no p(99): never a silent PASS
    assert "p99_ms" in missing.message
    # the suite check's k6 option reads handleSummary JSON through the same helper
    (suite,) = run(
        {
            "type": "suite",
            "k6": str(FIXTURES / "k6-handle-summary.json"),
            "bands": {"http_req_duration_p95_ms": "<= 2s", "http_req_failed_percent": "< 5%"},
        }
    )
    assert suite.status is Status.PASS, suite.message
    assert suite.metrics["http_req_duration_p95_ms"] == 1350.25
    assert suite.metrics["http_reqs"] == 15000


@pytest.fixture(scope="module")
def ab() -> str:
    path = shutil.which("ab")
    if path is None:
        pytest.fail("ab is missing: apt-get install apache2-utils (scripts/setup.sh does)")
    return path


def test_ab_output_from_a_real_run(ab: str, http_app: App, tmp_path: Path) -> None:
    clean, flaky = tmp_path / "health.txt", tmp_path / "flaky.txt"
    for url, out in ((f"{http_app.url}/health", clean), (f"{http_app.url}/flaky", flaky)):
        subprocess.run(
            [ab, "-q", "-n", "200", "-c", "4", url],
            check=True,
            stdout=out.open("w"),
            timeout=120,
        )
    good, faulty, not_ab = run(
        {
            "type": "load_result",
            "format": "ab",
            "path": str(clean),
            "bands": {"p95_ms": "<= 60s", "rps": "> 0"},
        },
        {"type": "load_result", "format": "ab", "path": str(flaky)},
        {"type": "load_result", "format": "ab", "path": str(FIXTURES / "README.md")},
    )
    assert good.status is Status.PASS, good.message
    assert good.metrics["requests"] == 200
    assert good.metrics["errors"] == 0
    assert {"rps", "avg_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms"} <= set(good.metrics)
    # /flaky answers 500 to every fourth request and its body length varies: ab's own
    # "Failed requests" counts the length changes; the parser counts the 50 non-2xx answers.
    text = flaky.read_text()
    assert "Non-2xx responses:      50" in text
    assert "Length:" in text
    assert faulty.metrics["errors"] == 50
    assert faulty.metrics["error_rate"] == 25.0
    assert faulty.status is Status.FAIL
    assert not_ab.status is Status.ERROR
    assert "Complete requests" in not_ab.message


LOCUSTFILE = """
from locust import HttpUser, constant, task


class Probe(HttpUser):
    wait_time = constant(0)

    @task
    def flaky(self):
        self.client.get("/flaky")
"""


def _locust() -> list[str]:
    """locust of this Python (a test extra), else the first on PATH."""
    beside = Path(sys.executable).with_name("locust")
    found = str(beside) if beside.exists() else shutil.which("locust")
    if found is None:
        pytest.fail("locust is missing: pip install -e .[test] (make setup) installs it")
    return [found]


def test_locust_stats_csv_from_a_real_run(http_app: App, tmp_path: Path) -> None:
    command = _locust()
    (tmp_path / "locustfile.py").write_text(LOCUSTFILE)
    subprocess.run(
        [
            *command,
            "-f",
            str(tmp_path / "locustfile.py"),
            "--headless",
            "--users",
            "2",
            "--spawn-rate",
            "2",
            "--run-time",  # its clock starts before the users do, and the CSV is written
            "6s",  # once a second: a shorter run can leave an empty *_stats.csv on a busy host
            "--host",
            http_app.url,
            "--csv",
            str(tmp_path / "run"),
            "--only-summary",
        ],
        check=False,  # locust exits 1 when any request failed, as this one does
        capture_output=True,
        timeout=120,
    )
    stats = tmp_path / "run_stats.csv"
    (aggregated, by_name, no_row) = run(
        {
            "type": "load_result",
            "format": "locust",
            "path": str(stats),
            "bands": {"error_rate": {"pass": "<= 10%", "warn": "<= 30%"}, "p95_ms": "<= 60s"},
        },
        {"type": "load_result", "format": "locust", "path": str(stats), "row": "/flaky"},
        {"type": "load_result", "format": "locust", "path": str(stats), "row": "/nope"},
    )
    assert aggregated.status is Status.WARN, aggregated.message
    requests = aggregated.metrics["requests"]
    assert requests > 0
    assert aggregated.metrics["error_rate"] == pytest.approx(25.0, abs=100 / requests + 0.01)
    assert {"rps", "avg_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms"} <= set(aggregated.metrics)
    assert by_name.metrics["requests"] == requests  # one task: the only named row
    assert no_row.status is Status.ERROR
    assert "no row named '/nope'" in no_row.message


@pytest.mark.slow
def test_validate_playbook_grades_load_figures_and_refuses_a_remote_target(
    ab: str, http_app: App, tmp_path: Path
) -> None:
    """Through a real `ansible-playbook playbooks/validate.yml` (validation-only profile): a
    load run with the error-rate fault grades WARN, a real ab run's figures (read on the host
    by the host_checks module) feed a gate threshold; a load check aimed at a non-local host
    stops the run in its configuration step."""
    ab_out = tmp_path / "ab.txt"
    subprocess.run(
        [ab, "-q", "-n", "100", "-c", "10", f"{http_app.url}/health"],
        check=True,
        stdout=ab_out.open("w"),
        timeout=120,
    )
    inv = inventory(
        tmp_path,
        http_app,
        stagegate_gates={
            "key_checks": ["api_health"],
            "thresholds": {"ab_health": {"metric": "rps", "pass": "> 0"}},
        },
    )
    config = json.loads((inv / "group_vars" / "all" / "stagegate.yml").read_text())
    config["stagegate_checks"] += [
        {
            "name": "api_load",
            "type": "load",
            "group": "performance",
            "options": {
                "url": f"{http_app.url}/flaky",
                "concurrency": 2,
                "requests": 40,
                "bands": {"error_rate": {"pass": "<= 10%", "warn": "<= 30%"}},
            },
        },
        {
            "name": "ab_health",
            "type": "load_result",
            "group": "performance",
            "run_on": "host",  # through the host_checks module, where the file is
            "options": {"format": "ab", "path": str(ab_out), "bands": {"p95_ms": "<= 60s"}},
        },
    ]
    (inv / "group_vars" / "all" / "stagegate.yml").write_text(json.dumps(config))
    proc = run_validate(inv)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = last_report(tmp_path)
    assert report["verdict"] == "GO_WITH_WARNINGS"
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["api_load"]["status"] == "WARN"
    assert checks["api_load"]["metrics"]["error_rate"] == 25.0
    assert checks["api_load"]["metrics"]["requests"] == 40
    assert checks["ab_health"]["status"] == "PASS"
    assert checks["ab_health"]["metrics"]["requests"] == 100
    assert checks["ab_health"]["value"] == checks["ab_health"]["metrics"]["rps"]

    config["stagegate_checks"][-2]["options"]["url"] = "http://staging.example.com/flaky"
    (inv / "group_vars" / "all" / "stagegate.yml").write_text(json.dumps(config))
    proc = run_validate(inv)
    assert proc.returncode != 0
    assert "url host 'staging.example.com' is not a loopback address" in proc.stdout
    assert len(ledger.read(tmp_path / "state" / "ledger.jsonl")) == 1  # nothing ran
