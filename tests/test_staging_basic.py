"""`ansible-playbook playbooks/staging.yml -i inventory/sandbox` against isolated sandbox stacks:
releases that fail. (A first deploy straight to v2 that succeeds is asserted in test_package.py,
on the run it makes from the installed collection; a crash-looping release in test_cli.py.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rollback_fixtures import assert_no_secret_printed
from sandbox_fixtures import SandboxStack, left_in, run_playbook

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_unhealthy_release_fails_naming_what_is_wrong(sandbox_stack: SandboxStack) -> None:
    # (A crash-looping release is held to the same in test_cli.py, on the promote it runs.)
    run = run_playbook(
        "staging.yml",
        sandbox_stack.extra_vars(sandbox_wait_timeout=60, sandbox_faults="api:unhealthy"),
    )
    assert run.rc != 0
    # The last failure is the run's verdict; it names the service and what is wrong with it.
    failures = re.findall(r"fatal: \[localhost\]: FAILED! => (.*)", run.stdout)
    assert failures, run.output
    assert "NO_GO" in failures[-1]
    assert re.search(r"\bapi\b.*unhealthy", failures[-1]), failures[-1]
    assert_no_secret_printed(run)
    # The fault is real: the service's own log says what went wrong.
    readiness = r'level=ERROR service=api msg="readiness check failed" dependencies=database'
    assert re.search(readiness, sandbox_stack.logs("api"))


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


def test_a_misspelt_tier_service_is_refused_in_preflight(
    sandbox_stack: SandboxStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A service of stagegate_tiers that the release's compose project does not define stopped
    # the run only in the deploy phase (after the lock, the backup and the migrations), naming
    # `required_services`. It is refused in preflight now, before the lock, naming the key; so
    # is one of stagegate_app_services.
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    misspelt = sandbox_stack.extra_vars(
        stagegate_tiers=[["postgres", "redis"], ["api", "wroker"]],
        stagegate_app_services=["api", "wroker"],
    )
    run = run_playbook("staging.yml", misspelt)
    assert run.rc != 0
    said = " ".join(run.output.split())
    assert "Refused in preflight, before anything changed" in said, run.output[-4000:]
    assert "stagegate_tiers: unknown service(s) wroker (did you mean worker?)" in said
    # the app tier too (a trial's misspelt app service alone passed preflight and --check, and
    # the deploy recreated the worker on the new image before it failed)
    assert "; stagegate_app_services: unknown service(s) wroker (did you mean worker?)" in said
    assert (
        f"the project '{sandbox_stack.project}' (release v2) defines api, postgres, redis, worker"
        in said
    )
    assert "Take the deploy lock" not in run.stdout
    state = sandbox_stack.state_dir
    assert not (state / "lock.json").exists()
    assert not (state / "ledger.jsonl").exists()
    assert not sandbox_stack.project_dir.exists()  # the release was read, not checked out
    assert not sandbox_stack.report_dir.exists()
    assert left_in(tmp_path) == []  # the release's tree read into a temporary dir: removed
    assert_no_secret_printed(run)
