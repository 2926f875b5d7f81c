"""The gate_report role through real Ansible runs: each verdict, exit codes, ledger, artifacts.

GO and GO_WITH_WARNINGS run through `ansible_runner.run` (the way AWX runs a job template) so
the `set_stats` artifacts are read back as AWX reads them; NO_GO runs through the
`ansible-playbook` command to show the exit code a CI job sees.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import ansible_runner
import pytest
from ee_fixtures import build_deployhost, deploy_host

from stagegate import ledger

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
BIN = Path(sys.executable).parent
ENV = {"ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
PLANTED = "planted-db-Secret-81c3"  # must never reach a report or the output

pytestmark = pytest.mark.slow

PLAYBOOK = """
- name: Gate and report
  hosts: deploy
  gather_facts: false
  roles:
    - role: stagegate.release.gate_report
"""
VALIDATE_PLAYBOOK = """
- name: Validate the gates up front
  hosts: deploy
  gather_facts: false
  tasks:
    - name: Validate
      ansible.builtin.include_role:
        name: stagegate.release.gate_report
        tasks_from: validate
"""

CATALOG = [
    {"name": "api_health", "group": "infrastructure"},
    {"name": "api_latency", "group": "performance"},
    {"name": "security_headers", "group": "security"},
]


def results(p95: float = 48.0, headers: str = "PASS", health: str = "PASS") -> list[dict[str, Any]]:
    return [
        {
            "name": "api_health",
            "group": "infrastructure",
            "type": "http",
            "status": health,
            "duration_ms": 11.0,
            "value": 200 if health == "PASS" else 503,
        },
        {
            "name": "api_latency",
            "group": "performance",
            "type": "latency",
            "status": "PASS",
            "duration_ms": 640.0,
            "metrics": {"avg_ms": p95 / 2, "p95_ms": p95},
        },
        {
            "name": "security_headers",
            "group": "security",
            "type": "headers",
            "status": headers,
            "severity": "warning",
            "message": "" if headers == "PASS" else "X-Frame-Options missing",
        },
    ]


def extravars(
    tmp_path: Path, run: str, checks: list[dict[str, Any]], **more: Any
) -> dict[str, Any]:
    return {
        "ansible_python_interpreter": sys.executable,
        "stagegate_release": run,
        "stagegate_state_dir": str(tmp_path / "state"),
        "stagegate_report_dir": str(tmp_path / "reports" / run),
        "stagegate_checks": CATALOG,
        "stagegate_gate_report_results": checks,
        "stagegate_gate_report_phases": [{"name": "validate", "status": "ok", "seconds": 3.2}],
        "stagegate_gates": {
            "key_checks": ["api_health"],
            "thresholds": {
                "api_latency": {"metric": "p95_ms", "pass": "<= 1200ms", "warn": "<= 2000ms"}
            },
            "rules": [
                {
                    "name": "p95 regression",
                    "type": "baseline",
                    "check": "api_latency",
                    "metric": "p95_ms",
                    "max_regression": "10%",
                    "critical": False,
                }
            ],
        },
        **more,
    }


def run_awx_style(tmp_path: Path, variables: dict[str, Any]) -> tuple[Any, dict[str, Any], str]:
    """Run like an AWX job: ansible-runner, reading the set_stats artifacts."""
    private = tmp_path / f"runner-{variables['stagegate_release']}"
    (private / "project").mkdir(parents=True)
    (private / "project" / "gate.yml").write_text(PLAYBOOK)
    runner = ansible_runner.run(
        private_data_dir=str(private),
        playbook="gate.yml",
        inventory="[deploy]\nlocalhost ansible_connection=local\n",
        extravars=variables,
        envvars=ENV,
        quiet=True,
    )
    artifacts: dict[str, Any] = {}
    for event in runner.events:
        if event.get("event") == "playbook_on_stats":
            artifacts = event["event_data"].get("artifact_data") or {}
    return runner, artifacts, runner.stdout.read()


def run_cli(
    tmp_path: Path, playbook_text: str, variables: dict[str, Any]
) -> subprocess.CompletedProcess[str]:
    playbook = tmp_path / "gate.yml"
    playbook.write_text(playbook_text)
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps(variables))
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[deploy]\nlocalhost ansible_connection=local\n")
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), "-e", f"@{extra}", str(playbook)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **ENV},
        check=False,
    )


def test_go_then_warnings_with_baseline_ledger_and_awx_artifacts(tmp_path: Path) -> None:
    runner, artifacts, stdout = run_awx_style(tmp_path, extravars(tmp_path, "v1", results()))
    assert runner.rc == 0, stdout
    assert artifacts["stagegate_verdict"] == "GO"
    assert artifacts["stagegate_failed_checks"] == []
    report_json = Path(artifacts["stagegate_report"])
    assert json.loads(report_json.read_text())["verdict"] == "GO"
    assert "stagegate: [infrastructure] 1 checks: 1 PASS" in stdout  # progress callback
    assert "stagegate: verdict GO, readiness score 100.0%" in stdout  # end summary

    # v2: p95 regresses 25 % against v1 (the ledger's last good release), headers warn
    runner, artifacts, stdout = run_awx_style(
        tmp_path, extravars(tmp_path, "v2", results(p95=60.0, headers="FAIL"))
    )
    assert runner.rc == 0, stdout
    assert artifacts["stagegate_verdict"] == "GO_WITH_WARNINGS"
    report = json.loads(Path(artifacts["stagegate_report"]).read_text())
    assert report["release"] == {"version": "v2", "previous": "v1", "baseline": "v1"}
    regression = next(g for g in report["gates"] if g["name"] == "p95 regression")
    assert regression["status"] == "WARN"  # a non-critical gate outside its band warns
    assert "+25.0%" in regression["message"]
    records = ledger.read(tmp_path / "state" / "ledger.jsonl")
    assert [(r["release"], r["verdict"]) for r in records] == [
        ("v1", "GO"),
        ("v2", "GO_WITH_WARNINGS"),
    ]
    assert records[1]["metrics"]["api_latency"]["p95_ms"] == 60.0


def test_warnings_only_go_with_warnings_and_strict_policy_says_no_go(tmp_path: Path) -> None:
    variables = extravars(tmp_path, "v3", results(headers="FAIL"))
    runner, artifacts, stdout = run_awx_style(tmp_path, variables)
    assert runner.rc == 0, stdout
    assert artifacts["stagegate_verdict"] == "GO_WITH_WARNINGS"
    strict = run_cli(
        tmp_path,
        PLAYBOOK,
        extravars(tmp_path, "v3-strict", results(headers="FAIL"), stagegate_strict=True),
    )
    assert strict.returncode == 2, strict.stdout
    report = json.loads((tmp_path / "reports" / "v3-strict" / "report.json").read_text())
    assert report["verdict"] == "NO_GO"
    assert report["policy"] == "GO_WITH_WARNINGS -> NO_GO by a verdict policy"


def test_no_go_exits_non_zero_after_reports_and_ledger(tmp_path: Path) -> None:
    proc = run_cli(tmp_path, PLAYBOOK, extravars(tmp_path, "v4", results(health="FAIL")))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "NO_GO for v4" in proc.stdout
    assert "stagegate: verdict NO_GO" in proc.stdout
    assert "stagegate: failed checks: api_health" in proc.stdout
    report_dir = tmp_path / "reports" / "v4"
    for name in ("report.json", "report.md", "junit.xml", "report.html"):
        assert (report_dir / name).exists()
    assert ledger.read(tmp_path / "state" / "ledger.jsonl")[0]["verdict"] == "NO_GO"


def test_seed003_profile_through_the_role(tmp_path: Path) -> None:
    variables = extravars(tmp_path, "v5", results())
    variables["stagegate_gates"] = {
        "profiles": ["seed003_load_simulation"],
        "results_files": {"load_simulation": str(FIXTURES / "seed003_fail.json")},
    }
    proc = run_cli(tmp_path, PLAYBOOK, variables)
    assert proc.returncode == 2
    text = (tmp_path / "reports" / "v5" / "report.md").read_text()
    assert "| load: retry cap | ❌ FAIL |" in text
    assert "Increase worker concurrency" in text


BAD_GATES = [
    (
        {
            "rules": [
                {"name": "suite", "type": "pass_rate", "checks": ["smoke_tests"], "min": "99%"}
            ]
        },
        "gate 'suite' (pass_rate), key 'checks': names check 'smoke_tests'",
    ),
    (
        {
            "rules": [
                {"name": "p95", "type": "value", "file": "load", "query": "a[?", "pass": "<= 1s"}
            ],
            "results_files": {"load": "/x.json"},
        },
        "gate 'p95' (value), key 'query': JMESPath 'a[?' does not compile",
    ),
    (
        {"thresholds": {"api_latency": {"metric": "p95_ms", "pass": "quick"}}},
        "stagegate_gates.thresholds.api_latency: cannot parse band 'quick'",
    ),
]
VALIDATE_EACH_PLAYBOOK = """
- name: Validate several gate configurations up front
  hosts: deploy
  gather_facts: false
  tasks:
    - name: Validate
      stagegate.release.gate:
        validate_only: true
        gates: "{{ item }}"
        catalog: "{{ stagegate_checks }}"
      loop: "{{ bad_gates }}"
      register: validations
      ignore_errors: true
    - name: Record the results
      ansible.builtin.copy:
        content: "{{ validations.results | map(attribute='msg') | list | to_json }}"
        dest: "{{ result_file }}"
        mode: "0600"
"""


def test_validate_entry_point_rejects_bad_gates_naming_gate_and_key(tmp_path: Path) -> None:
    proc = run_cli(
        tmp_path,
        VALIDATE_PLAYBOOK,
        extravars(tmp_path, "v6", []) | {"stagegate_gates": BAD_GATES[0][0]},
    )
    assert proc.returncode == 2  # the role's validate entry point fails the play
    assert BAD_GATES[0][1] in proc.stdout
    result_file = tmp_path / "validations.json"
    variables = extravars(tmp_path, "v6", [], result_file=str(result_file))
    variables["bad_gates"] = [gates for gates, _ in BAD_GATES]
    proc = run_cli(tmp_path, VALIDATE_EACH_PLAYBOOK, variables)
    assert proc.returncode == 0, proc.stdout
    messages = json.loads(result_file.read_text())
    for (_, needle), message in zip(BAD_GATES, messages, strict=True):
        assert needle in message
    assert not (tmp_path / "reports").exists()


CHECKS_THEN_GATE = """
- name: Checks, then gate and report
  hosts: deploy
  gather_facts: false
  vars:
    stagegate_checks:
      - name: api_health
        type: http
        group: infrastructure
        options:
          url: "{{ app_url }}/health?api_key={{ stagegate_db.password }}"
          json: ["status == 'ok'"]
      - name: api_latency
        type: http
        group: performance
        options: {url: "{{ app_url }}/health", latency: {requests: 8, p95: {pass: "<= 5s"}}}
      - name: security_headers
        type: http
        group: security
        severity: warning
        options: {url: "{{ app_url }}/health", headers_present: [X-Frame-Options]}
      - name: unit_tests
        type: suite
        group: tests
        options: {junit: "{{ junit_path }}"}
  tasks:
    - name: Run the checks
      stagegate.release.checks:
      register: checks
    - name: Gate and report
      ansible.builtin.include_role:
        name: stagegate.release.gate_report
      vars:
        stagegate_gate_report_results: "{{ checks.results }}"
"""


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_check_engine_results_graded_by_the_role_against_a_real_endpoint(
    tmp_path: Path, junit_file: Callable[[int, int], Path]
) -> None:
    """Real checks (HTTP against a local endpoint, a suite reading a real JUnit file with 98 of
    100 passing) through the checks action, then the gate role: the pass rate counts tests."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        variables = extravars(
            tmp_path,
            "v7",
            [],
            app_url=f"http://127.0.0.1:{server.server_port}",
            stagegate_db={"password": PLANTED},
            junit_path=str(junit_file(100, 2)),
        )
        variables["stagegate_gates"]["rules"].append(
            {
                "name": "unit tests",
                "type": "pass_rate",
                "group": "tests",
                "min": "99%",
                "critical": False,
            }
        )
        for from_the_play in ("stagegate_checks", "stagegate_gate_report_results"):
            variables.pop(from_the_play)  # extra vars would override the play's values
        proc = run_cli(tmp_path, CHECKS_THEN_GATE, variables)
    finally:
        server.shutdown()
        server.server_close()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "stagegate: [security] 1 checks: 1 WARN (security_headers WARN)" in proc.stdout
    assert "stagegate: verdict GO_WITH_WARNINGS" in proc.stdout
    # What warned is named in the end summary too (a pending sign-off had no line before).
    assert "stagegate: warning: check security_headers WARN" in proc.stdout, proc.stdout[-3000:]
    report_dir = tmp_path / "reports" / "v7"
    report = json.loads((report_dir / "report.json").read_text())
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses == {
        "api_health": "PASS",
        "api_latency": "PASS",
        "security_headers": "WARN",
        "unit_tests": "PASS",
    }
    unit = next(g for g in report["gates"] if g["name"] == "unit tests")
    assert unit["status"] == "WARN"  # non-critical: below its minimum only warns
    assert unit["message"].startswith("98/100 passed = 98.0% (min >= 99 %)")
    latency = next(c for c in report["checks"] if c["name"] == "api_latency")
    assert latency["metrics"]["p95_ms"] > 0
    assert "| api_latency |" in (report_dir / "report.md").read_text()  # performance table
    for name in ("report.json", "report.md", "junit.xml", "report.html"):
        assert PLANTED not in (report_dir / name).read_text(), name
    assert PLANTED not in proc.stdout


def test_check_mode_under_awx_reports_but_leaves_the_ledger_alone(tmp_path: Path) -> None:
    variables = extravars(
        tmp_path,
        "v8",
        results(),
        awx_job_id=4711,
        stagegate_manual_checks=[
            {"name": "owasp_review", "category": "security", "survey_var": "confirm_owasp_review"}
        ],
        confirm_owasp_review="alice@2026-11-22T10:00Z",  # an AWX survey answer
    )
    private = tmp_path / "runner-check"
    (private / "project").mkdir(parents=True)
    (private / "project" / "gate.yml").write_text(PLAYBOOK)
    runner = ansible_runner.run(
        private_data_dir=str(private),
        playbook="gate.yml",
        cmdline="--check",
        inventory="[deploy]\nlocalhost ansible_connection=local\n",
        extravars=variables,
        envvars=ENV,
        quiet=True,
    )
    assert runner.rc == 0, runner.stdout.read()
    assert not (tmp_path / "state" / "ledger.jsonl").exists()
    report = json.loads((tmp_path / "reports" / "v8" / "report.json").read_text())
    assert report["verdict"] == "GO"
    # the run's owner, as the deploy lock names it (_run_identity: one rule)
    assert report["run_by"].endswith("(AWX job 4711)")
    manual = report["manual"][0]
    assert manual["status"] == "PASS"
    assert manual["message"] == "confirmed by alice at 2026-11-22T10:00Z"


RESCUE_PLAYBOOK = """
- name: A run whose deploy phase fails
  hosts: deploy
  gather_facts: false
  tasks:
    - name: Phases
      block:
        - name: Start the app tier
          ansible.builtin.fail:
            msg: "api did not become healthy within 60 s (password {{ stagegate_db.password }})"
          tags: [deploy]
      rescue:
        - name: Reports for the failed run, then fail
          ansible.builtin.include_role:
            name: stagegate.release.gate_report
"""


def test_failed_run_reports_where_and_why_it_stopped(tmp_path: Path) -> None:
    variables = extravars(tmp_path, "v9", [], stagegate_db={"password": PLANTED})
    proc = run_cli(tmp_path, RESCUE_PLAYBOOK, variables)
    assert proc.returncode == 2
    report_dir = tmp_path / "reports" / "v9"
    report = json.loads((report_dir / "report.json").read_text())
    assert report["verdict"] == "NO_GO"
    assert report["stopped"] == {
        "phase": "deploy",
        "reason": "task 'Start the app tier' failed: api did not become healthy within 60 s "
        "(password ***)",
    }
    assert "The run **stopped in phase `deploy`**" in (report_dir / "report.md").read_text()
    assert ledger.read(tmp_path / "state" / "ledger.jsonl")[0]["stopped"]["phase"] == "deploy"
    for name in ("report.json", "report.md", "junit.xml", "report.html"):
        assert PLANTED not in (report_dir / name).read_text(), name


NO_HOST_KEYS = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"


def test_results_files_are_fetched_from_the_deploy_host(tmp_path: Path) -> None:
    """The load-test results exist only on the deploy host (a container reached over SSH): the
    role fetches them into the report dir, grades from that copy, and the state dir keeps it."""
    state = tmp_path / "state"
    state.mkdir()
    on_host = "/srv/suite/staging_load_simulation.json"
    assert not Path(on_host).exists()
    with deploy_host(build_deployhost(), tmp_path, [state]) as host:
        assert host.ssh("mkdir -p /srv/suite").returncode == 0
        subprocess.run(
            ["docker", "cp", str(FIXTURES / "seed003_fail.json"), f"{host.name}:{on_host}"],
            check=True, capture_output=True,
        )  # fmt: skip
        inventory = tmp_path / "hosts.yml"
        inventory.write_text(json.dumps({"deploy": {"hosts": {"deployhost": {
            "ansible_host": "127.0.0.1",
            "ansible_port": host.port,
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(host.key),
            "ansible_ssh_common_args": NO_HOST_KEYS,
        }}}}))  # fmt: skip
        variables = extravars(tmp_path, "v9", results(), stagegate_run_id="run-v9")
        variables["ansible_python_interpreter"] = "/usr/bin/python3"
        variables["stagegate_gates"] = {
            "profiles": ["seed003_load_simulation"],
            "results_files": {"load_simulation": on_host},
        }
        playbook = tmp_path / "gate.yml"
        playbook.write_text(PLAYBOOK)
        extra = tmp_path / "extra.json"
        extra.write_text(json.dumps(variables))
        proc = subprocess.run(
            [str(BIN / "ansible-playbook"), "-i", str(inventory), "-e", f"@{extra}", str(playbook)],
            capture_output=True, text=True, cwd=REPO, env={**os.environ, **ENV}, check=False,
        )  # fmt: skip
    assert proc.returncode == 2, proc.stdout[-4000:] + proc.stderr[-2000:]
    report_dir = tmp_path / "reports" / "v9"
    fetched = report_dir / "results" / "load_simulation.json"
    assert fetched.read_bytes() == (FIXTURES / "seed003_fail.json").read_bytes()
    text = (report_dir / "report.md").read_text()
    assert "| load: retry cap | ❌ FAIL |" in text  # graded from the host's file
    kept = state / "runs" / "run-v9" / "results" / "load_simulation.json"
    assert kept.read_bytes() == fetched.read_bytes()
