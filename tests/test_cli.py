"""The `stagegate` command run for real: --version, gates validate on the project's own
inventory, promote/validate through ansible-runner with their exit codes, status and report show."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.stagegate.release.plugins.module_utils import _rollback
from conftest import REPO_ROOT
from sandbox_fixtures import INVENTORY, SandboxStack, sandbox_secrets

from stagegate import __version__, runrecord, runs

VENV_BIN = Path(sys.executable).parent
GROUP_VARS = INVENTORY / "group_vars" / "all"


def stagegate(*args: str, runner_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
    }
    if runner_dir is not None:
        env["STAGEGATE_RUNNER_DIR"] = str(runner_dir)
    return subprocess.run(
        [str(VENV_BIN / "stagegate"), *args],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False, timeout=1200,
    )  # fmt: skip


def test_version() -> None:
    proc = stagegate("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"stagegate {__version__}"


def test_gates_validate_renders_the_inventorys_jinja_catalog() -> None:
    # inventory/sandbox's stagegate_checks is "{{ sandbox_checks + ... }}": it crashed before.
    proc = stagegate(
        "gates",
        "validate",
        str(GROUP_VARS / "gates.yml"),
        "--checks",
        str(GROUP_VARS / "checks.yml"),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("7 gate(s) valid: infrastructure, authentication")


def test_gates_validate_names_a_key_check_missing_from_the_catalog(tmp_path: Path) -> None:
    inventory = tmp_path / "all"
    shutil.copytree(GROUP_VARS, inventory)
    gates = (inventory / "gates.yml").read_text()
    (inventory / "gates.yml").write_text(gates.replace("login_flow, security", "no_such, security"))
    proc = stagegate(
        "gates", "validate", str(inventory / "gates.yml"), "--checks", str(inventory / "checks.yml")
    )
    assert proc.returncode == runs.EXIT_CONFIG, proc.stdout
    assert "no_such" in proc.stderr


def test_gates_validate_names_an_undefined_variable(tmp_path: Path) -> None:
    checks = tmp_path / "checks.yml"
    checks.write_text('stagegate_checks: "{{ nowhere_defined }}"\n')
    proc = stagegate("gates", "validate", str(GROUP_VARS / "gates.yml"), "--checks", str(checks))
    assert proc.returncode == runs.EXIT_CONFIG
    assert "nowhere_defined" in proc.stderr
    assert str(checks) in proc.stderr


def _outcome(
    rc: int, verdict: str | None, action: str = "", status: str = "", check: bool = False
) -> runs.RunOutcome:
    failed = {"action": action, "task": "t", "phase": "p", "host": "h", "msg": "m"}
    return runs.RunOutcome(
        playbook="stagegate.release.staging",
        rc=rc,
        status=status or ("successful" if rc == 0 else "failed"),
        stats={"stagegate_verdict": verdict} if verdict else {},
        failed_task=failed if action else None,
        check_mode=check,
    )


@pytest.mark.parametrize(
    ("outcome", "warn_exit", "code"),
    [
        (_outcome(0, "GO"), False, runs.EXIT_GO),
        (_outcome(0, "GO_WITH_WARNINGS"), False, runs.EXIT_GO),
        (_outcome(0, "GO_WITH_WARNINGS"), True, runs.EXIT_WARNINGS),
        (_outcome(2, "NO_GO", "ansible.builtin.fail"), False, runs.EXIT_NO_GO),
        (_outcome(2, None, "stagegate.release.validate_config"), False, runs.EXIT_CONFIG),
        (_outcome(2, None, "ansible.builtin.validate_argument_spec"), False, runs.EXIT_CONFIG),
        (_outcome(4, None), False, runs.EXIT_CONFIG),  # ansible-playbook could not parse
        (_outcome(2, None, "stagegate.release.compose_up_tiers"), False, runs.EXIT_ERROR),
        (_outcome(4, None, status="failed"), True, runs.EXIT_CONFIG),
        (_outcome(0, None), False, runs.EXIT_ERROR),  # no verdict published: not a GO
        # --check of a first deploy or of a rollback: a plan, no verdict (a trial got exit 5)
        (_outcome(0, None, check=True), False, runs.EXIT_GO),
        (
            _outcome(2, None, "stagegate.release.compose_up_tiers", check=True),
            False,
            runs.EXIT_ERROR,
        ),
        (_outcome(2, "GO", "stagegate.release.deploy_lock"), False, runs.EXIT_ERROR),
    ],
)
def test_exit_code_of_a_run(outcome: runs.RunOutcome, warn_exit: bool, code: int) -> None:
    assert runs.exit_code(outcome, warn_exit=warn_exit) == code
    first = runs.summary(outcome, code).splitlines()[0]
    name = runs.outcome_name(outcome.verdict, code, outcome.planned)
    assert first == f"stagegate: stagegate.release.staging: {name} (exit {code})"
    # exit 0 after GO_WITH_WARNINGS said "GO (exit 0)" (a trial): the verdict's own name
    assert name == ("GO_WITH_WARNINGS" if outcome.verdict == "GO_WITH_WARNINGS" and outcome.rc == 0
                    else runs.PLANNED if outcome.planned
                    else runs.OUTCOME_NAMES[code])  # fmt: skip


def test_progress_prints_each_phase_once_from_the_run_record(tmp_path: Path) -> None:
    """The phases are the run record's (the playbook steps' phase tags, as the callback keeps
    them), not the roles': staging.yml runs the preflight role in several places and
    gate_report twice, which printed those phases again and again."""
    ticks = iter(float(t) for t in range(100))
    record = runrecord.RunRecord(clock=lambda: next(ticks))
    path = tmp_path / "record.json"
    out = io.StringIO()
    progress = runs.Progress(out, path, clock=lambda: 99.0)

    def task(tags: list[str], role: str = "", status: str = "ok", **result: str) -> None:
        record.task_started(tags)
        runrecord.save(record, path)  # the callback saves before each task
        progress({"event": "playbook_on_task_start", "event_data": {"role": role}})
        record.task_result("h", status, task="t", msg=result.get("msg", ""),
                           skip_note=result.get("note", ""))  # fmt: skip

    task(["always"], "stagegate.release.preflight")  # the configuration: no phase
    task(["always"], "stagegate.release.gate_report")  # the gates against the catalog
    task(["preflight"], "stagegate.release.preflight")
    task(["preflight", "always"], "stagegate.release.preflight")  # an argument check in it
    task(["preflight"], "stagegate.release.preflight")
    task(["preflight"])  # a play-level step of the phase
    task(["source"], "stagegate.release.source")
    task(["source"], "stagegate.release.preflight")  # release_files, in the source step
    task(["build"], "stagegate.release.build", note="the strategy builds no images")
    task(["deploy"], "stagegate.release.deploy")
    task(["deploy", "deploy"], "stagegate.release.runtime_compose", status="failed")
    progress({"event": "runner_on_failed", "event_data": {
        "task": "Start tier 2", "task_action": "stagegate.release.compose_up_tiers",
        "role": "runtime_compose", "res": {"msg": "api unhealthy\nmore"},
    }})  # fmt: skip
    task(["always"], "stagegate.release.gate_report")  # the rescue's report
    record.finish()
    runrecord.save(record, path)
    progress({"event": "playbook_on_stats", "event_data": {"artifact_data": {"x": 1}}})
    progress.follow(final=True)

    lines = out.getvalue().splitlines()
    assert lines == [
        "stagegate: phase preflight started",
        "stagegate: phase preflight ok (1.0 s)",
        "stagegate: phase source started",
        "stagegate: phase source ok (1.0 s)",
        "stagegate: phase build started",
        "stagegate: phase build skipped (1.0 s): the strategy builds no images",
        "stagegate: phase deploy started",
        "stagegate:   FAILED Start tier 2: api unhealthy",
        "stagegate: phase deploy failed (1.0 s)",
    ], lines
    assert [(p.name, p.status) for p in progress.phases] == [
        ("preflight", "ok"), ("source", "ok"), ("build", "skipped"), ("deploy", "failed"),
    ]  # fmt: skip
    assert progress.failed_task is not None
    assert progress.failed_task["phase"] == "deploy"
    assert progress.stats == {"x": 1}


def test_promote_with_a_bad_configuration_exits_2_and_changes_nothing(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    extra = {"stagegate_tiers": "nope", "stagegate_state_dir": str(state_dir)}
    proc = stagegate(
        "promote", "-i", str(INVENTORY), "-e", json.dumps(extra), "--json",
        runner_dir=tmp_path / "runner",
    )  # fmt: skip
    assert proc.returncode == runs.EXIT_CONFIG, proc.stdout + proc.stderr
    outcome = json.loads(proc.stdout)
    assert outcome["outcome"] == "CONFIGURATION_ERROR"
    assert outcome["failed_task"]["phase"] == "preflight"
    assert "stagegate_tiers" in outcome["failed_task"]["msg"]
    assert "stagegate:   FAILED Validate every stagegate_* variable" in proc.stderr
    assert not state_dir.exists()
    # runner kept the job's events, as AWX would
    assert (Path(outcome["artifact_dir"]) / "job_events").is_dir()


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(900)  # two promotions on a loaded machine
def test_promote_exit_codes_status_and_report_show(
    sandbox_stack: SandboxStack, tmp_path: Path
) -> None:
    runner_dir = tmp_path / "runner"
    bands = {
        "avg": {"pass": "<= 200ms", "warn": "<= 10s"},
        "p95": {"pass": "<= 200ms", "warn": "<= 10s"},
    }
    slow = sandbox_stack.extra_vars(
        sandbox_faults="api:slow_responses", sandbox_latency_bands=bands
    )
    del slow["stagegate_report_dir"]  # the default under ansible-runner: the job's artifact dir
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(json.dumps(slow))
    proc = stagegate(
        "promote", "-i", str(INVENTORY), "-e", f"@{vars_file}", "--warn-exit", "--json",
        runner_dir=runner_dir,
    )  # fmt: skip
    assert proc.returncode == runs.EXIT_WARNINGS, proc.stdout + proc.stderr
    outcome = json.loads(proc.stdout)
    assert outcome["verdict"] == "GO_WITH_WARNINGS"
    assert outcome["failed_checks"] == []
    phases = [p["name"] for p in outcome["phases"]]
    for phase in ("preflight", "source", "build", "deploy", "validate", "gate_report"):
        assert phase in phases
        assert proc.stderr.count(f"stagegate: phase {phase} started\n") == 1, proc.stderr
        assert len(re.findall(rf"stagegate: phase {phase} ok \(\d+\.\d s\)", proc.stderr)) == 1
    for name, value in sandbox_secrets().items():
        if "password" in name or "secret" in name:
            assert value not in proc.stdout + proc.stderr, f"{name} printed"

    # Reports with a home: written in runner's artifact dir (it comes back with an AWX job), a
    # copy kept in the deploy host's state dir, and the ledger records the durable one.
    artifact_dir = Path(outcome["artifact_dir"])
    report_dir = Path(outcome["report_dir"])
    assert report_dir.parent == artifact_dir / "stagegate", report_dir
    assert json.loads((report_dir / "report.json").read_text())["verdict"] == "GO_WITH_WARNINGS"
    status = stagegate("status", "--state-dir", str(sandbox_stack.state_dir), "--json")
    assert status.returncode == 0, status.stderr
    state = json.loads(status.stdout)
    assert state["last_run"]["release"] == "v2"
    assert state["last_run"]["verdict"] == "GO_WITH_WARNINGS"
    assert state["lock"] is None  # released at the end of the run
    run_id = state["last_run"]["run_id"]
    kept = sandbox_stack.state_dir / "runs" / run_id
    assert state["last_run"]["report_dir"] == str(kept)
    assert state["last_run"]["reports"]["report.json"] == str(kept / "report.json")
    assert state["last_run"]["controller_report_dir"] == str(report_dir)
    assert (kept / "report.md").read_text() == (report_dir / "report.md").read_text()
    assert_slow_release_warns(report_dir, artifact_dir)
    shutil.rmtree(artifact_dir)  # the job's pod is gone: the report is still there to show

    shown = stagegate("report", "show", run_id, "--state-dir", str(sandbox_stack.state_dir))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("# Staging Validation Report: v2")
    assert "api_latency" in shown.stdout
    as_json = stagegate(
        "report", "show", run_id, "--state-dir", str(sandbox_stack.state_dir), "--format", "json"
    )
    assert json.loads(as_json.stdout)["verdict"] == "GO_WITH_WARNINGS"
    missing = stagegate(
        "report", "show", "no-such-run", "--state-dir", str(sandbox_stack.state_dir)
    )
    assert missing.returncode == runs.EXIT_NOT_FOUND

    assert_check_of_a_first_deploy_is_planned(sandbox_stack, slow, tmp_path, runner_dir)

    crash = sandbox_stack.extra_vars(stagegate_release="v2-crashloop", sandbox_wait_timeout=60)
    proc = stagegate(
        "promote", "-i", str(INVENTORY), "-e", json.dumps(crash), runner_dir=runner_dir
    )
    assert proc.returncode == runs.EXIT_NO_GO, proc.stdout + proc.stderr
    assert "NO_GO (exit 4)" in proc.stdout
    assert "phase deploy failed" in proc.stderr
    assert_crash_named(proc.stdout, sandbox_stack)


def assert_check_of_a_first_deploy_is_planned(
    sandbox_stack: SandboxStack, variables: dict[str, Any], tmp_path: Path, runner_dir: Path
) -> None:
    """--check of a first deploy (a state dir and project where nothing runs): the plan, no
    verdict; exit 0 (a trial got EXECUTION_ERROR, exit 5)."""
    fresh = {
        **variables,
        "stagegate_state_dir": str(tmp_path / "fresh"),
        "stagegate_compose_project": f"{sandbox_stack.project}fresh",
        "sandbox_pg_port": 1,  # no database answers there
    }
    planned = stagegate(
        "promote", "-i", str(INVENTORY), "-e", json.dumps(fresh), "--check", runner_dir=runner_dir
    )
    assert planned.returncode == runs.EXIT_GO, planned.stdout + planned.stderr
    assert "stagegate.release.staging: PLANNED (exit 0)" in planned.stdout
    assert "Check mode, first deploy" in planned.stdout  # the plan's last words


def assert_slow_release_warns(report_dir: Path, artifact_dir: Path) -> None:
    """slow_responses delays every answer by SANDBOX_SLOW_MS (400 ms): held against bands whose
    PASS ends at 200 ms, the warning-severity latency check alone grades WARN, so a release
    that works but is slow is promoted with warnings, not stopped."""
    report = json.loads((report_dir / "report.json").read_text())
    latency = next(check for check in report["checks"] if check["name"] == "api_latency")
    assert latency["status"] == "WARN", latency
    assert latency["metrics"]["avg_ms"] >= 400, latency
    not_passed = [c["name"] for c in report["checks"] if c["status"] not in ("PASS", "SKIP")]
    assert not_passed == ["api_latency"]
    assert "stagegate: verdict GO_WITH_WARNINGS" in (artifact_dir / "stdout").read_text()


def assert_crash_named(summary: str, stack: SandboxStack) -> None:
    """The crash-looping release's last failure is the run's verdict and names the service and
    what is wrong with it; the fault is real: the service's own log says it crashed."""
    artifact = re.search(r"job events and output: (\S+)", summary)
    assert artifact, summary
    output = (Path(artifact.group(1)) / "stdout").read_text()
    failures = re.findall(r"fatal: \[localhost\]: FAILED! => (.*)", output)
    assert failures, output[-3000:]
    assert "NO_GO" in failures[-1]
    assert re.search(r"\bapi\b.*crash", failures[-1]), failures[-1]
    assert re.search(r'level=CRITICAL service=api msg="crashing on start', stack.logs("api"))


def test_report_show_refuses_a_run_id_that_is_a_path(tmp_path: Path) -> None:
    # `runs/<run id>/` is read from the state dir: `../../x` read a report.json outside it.
    state_dir, outside = tmp_path / "state", tmp_path / "outside"
    (state_dir / "runs").mkdir(parents=True)
    outside.mkdir()
    (outside / "report.md").write_text("# not stagegate's\n")
    (outside / "report.json").write_text("{}\n")
    shown = stagegate("report", "show", "../../outside", "--state-dir", str(state_dir))
    assert shown.returncode == runs.EXIT_CONFIG, shown.stdout
    assert "not stagegate's" not in shown.stdout
    assert "run id='../../outside' contains a path separator" in shown.stderr


def test_status_reports_a_torn_lock_file_instead_of_failing(tmp_path: Path) -> None:
    # status read lock.json on its own and exited 2 on a torn one, when on-call needs it most;
    # it now reads the lock as the deploy_lock module does.
    (tmp_path / "lock.json").write_text('{"owner": "ci@build-1", "run_id": "r7", "acq')
    status = stagegate("status", "--state-dir", str(tmp_path))
    assert status.returncode == 0, status.stderr
    assert "deploy lock: unreadable (not a JSON lock record" in status.stdout
    as_json = stagegate("status", "--state-dir", str(tmp_path), "--json")
    assert json.loads(as_json.stdout)["lock"]["corrupt"].startswith("not a JSON lock record")


def test_status_names_an_unfinished_rollback_only(tmp_path: Path) -> None:
    # rollback.json stays on the deploy host after a rollback (a re-run reads it to say why
    # the release runs): `status` must not call a finished one "in progress".
    plan = {"current": {"release": "v2"}, "target": {"release": "v1"}}
    state = _rollback.RollbackState(str(tmp_path))
    record = _rollback.RollbackState.begin(plan, "run-1", {"host": "ee", "pid": 1})
    state.write(record)
    running = stagegate("status", "--state-dir", str(tmp_path))
    assert running.returncode == 0, running.stderr
    assert "rollback in progress: run run-1, to v1" in running.stdout
    state.write({**record, "status": _rollback.DONE, "finished": "2026-11-30T11:26:21Z"})
    done = stagegate("status", "--state-dir", str(tmp_path))
    assert "rollback in progress" not in done.stdout, done.stdout
    as_json = json.loads(stagegate("status", "--state-dir", str(tmp_path), "--json").stdout)
    assert as_json["rollback_in_progress"] is None


def test_missing_inventory_is_bad_input_and_no_host_is_an_execution_error(tmp_path: Path) -> None:
    missing = stagegate("promote", "-i", str(tmp_path / "nowhere"), runner_dir=tmp_path / "r")
    assert missing.returncode == runs.EXIT_CONFIG
    assert f"-i {tmp_path / 'nowhere'}: no such inventory" in missing.stderr
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all: {hosts: {localhost: {ansible_connection: local}}}\n")
    nobody = stagegate("validate", "-i", str(inventory), "-q", runner_dir=tmp_path / "r")
    assert nobody.returncode == runs.EXIT_ERROR, nobody.stdout + nobody.stderr
    assert "EXECUTION_ERROR (exit 5)" in nobody.stdout
    assert "no host ran the playbook" in nobody.stdout
