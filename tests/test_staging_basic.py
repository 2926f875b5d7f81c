"""`ansible-playbook playbooks/staging.yml -i inventory/sandbox` against isolated sandbox stacks."""

from __future__ import annotations

import json
import re

import pytest
from sandbox_fixtures import PlaybookRun, SandboxStack, run_playbook, sandbox_secrets

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def assert_no_secret_printed(run: PlaybookRun) -> None:
    for name, value in sandbox_secrets().items():
        if "password" in name or "secret" in name:
            assert value not in run.output, f"{name} printed"


def test_staging_promotes_v2_with_its_migrations(sandbox_stack: SandboxStack) -> None:
    run = run_playbook("staging.yml", sandbox_stack.extra_vars())
    assert run.rc == 0, run.output
    assert_no_secret_printed(run)
    report = json.loads((sandbox_stack.report_dir / "report.json").read_text())
    assert report["verdict"] in ("GO", "GO_WITH_WARNINGS"), report["verdict"]

    assert sandbox_stack.request("/version").json()["version"] == "v2"
    summary = sandbox_stack.request("/api/v1/reports/summary")
    assert summary.status == 200
    assert {row["status"] for row in summary.json()["summary"]} == {"processed", "queued"}
    schema = sandbox_stack.compose(
        "exec", "-T", "postgres", "psql", "-At", "-U", "app", "-d", "app", "-c",
        "SELECT to_regclass('item_events') IS NOT NULL"
        " AND to_regclass('idx_item_events_item_created') IS NOT NULL",
    ).stdout.strip()  # fmt: skip
    assert schema == "t"


@pytest.mark.parametrize(
    ("overrides", "expected", "service", "logged"),
    [
        pytest.param(
            {"stagegate_release": "v2-crashloop"},
            r"\bapi\b.*crash",
            "api",
            r"level=CRITICAL service=api msg=\"crashing on start",
            id="crash-loop-release",
        ),
        pytest.param(
            {"sandbox_faults": "api:unhealthy"},
            r"\bapi\b.*unhealthy",
            "api",
            r"level=ERROR service=api msg=\"readiness check failed\" dependencies=database",
            id="unhealthy-switch",
        ),
    ],
)
def test_staging_fails_naming_what_is_wrong(
    sandbox_stack: SandboxStack, overrides: dict[str, str], expected: str, service: str, logged: str
) -> None:
    run = run_playbook(
        "staging.yml", sandbox_stack.extra_vars(sandbox_wait_timeout=60, **overrides)
    )
    assert run.rc != 0
    # The last failure is the run's verdict; it names the service and what is wrong with it.
    failures = re.findall(r"fatal: \[localhost\]: FAILED! => (.*)", run.stdout)
    assert failures, run.output
    assert "NO_GO" in failures[-1]
    assert re.search(expected, failures[-1]), failures[-1]
    assert_no_secret_printed(run)
    # The fault is real: the service's own log says what went wrong.
    assert re.search(logged, sandbox_stack.logs(service))


def test_slow_responses_fault_grades_go_with_warnings(sandbox_stack: SandboxStack) -> None:
    # The slow_responses switch delays every answer by SANDBOX_SLOW_MS (400 ms). Held against
    # bands whose PASS ends at 200 ms, the warning-severity latency check grades WARN: a
    # release that works but is slow is promoted with warnings, not stopped.
    bands = {
        "avg": {"pass": "<= 200ms", "warn": "<= 10s"},
        "p95": {"pass": "<= 200ms", "warn": "<= 10s"},
    }
    run = run_playbook(
        "staging.yml",
        sandbox_stack.extra_vars(sandbox_faults="api:slow_responses", sandbox_latency_bands=bands),
    )
    assert run.rc == 0, run.output
    report = json.loads((sandbox_stack.report_dir / "report.json").read_text())
    assert report["verdict"] == "GO_WITH_WARNINGS", report["verdict"]
    latency = next(check for check in report["checks"] if check["name"] == "api_latency")
    assert latency["status"] == "WARN", latency
    assert latency["metrics"]["avg_ms"] >= 400, latency
    assert [c["name"] for c in report["checks"] if c["status"] not in ("PASS", "SKIP")] == [
        "api_latency"
    ]
    assert "stagegate: verdict GO_WITH_WARNINGS" in run.stdout


def test_first_deploy_stopped_before_deploying_stays_a_first_deploy(
    sandbox_stack: SandboxStack,
) -> None:
    # A first deploy that stops after the source phase but before the deploy phase started
    # nothing. Its checkout must not keep the release's marker: the next run would take that
    # release for one that runs, and refuse it in preflight (its database does not answer).
    nowhere = sandbox_stack.project_dir / "no-migrations-here"
    broken = sandbox_stack.extra_vars(stagegate_migrations_dir=str(nowhere))
    first = run_playbook("staging.yml", broken)
    assert first.rc != 0
    assert "nothing runs yet: a first deploy" in first.output, first.output
    assert "run stopped in phase source" in first.output, first.output
    assert not (sandbox_stack.project_dir / ".stagegate-release").exists()
    again = run_playbook("staging.yml", broken)
    assert "nothing runs yet: a first deploy" in again.output, again.output
    assert "run stopped in phase source" in again.output, again.output
