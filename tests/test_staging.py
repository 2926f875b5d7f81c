"""playbooks/staging.yml end to end on one isolated sandbox stack, as a release engineer runs it.

The tests share the stack and run in file order (a deploy costs tens of seconds):
bad inventories stop before anything exists; v1 is promoted from nothing; `--check` of the next
release plans that release (its migrations, images, restarts) and changes nothing; a broken
migration stops at the dry-run with the database untouched
and v1 serving; a crash-looping release that migrated is rolled back automatically, database
restored; v2 is promoted with GO through ansible-runner (the AWX way); validate.yml re-validates
it against its deploy-time record.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ansible_runner
import pytest
from conftest import REPO_ROOT
from rollback_fixtures import (
    REPORT_FILES,
    V2_SCHEMA,
    Staging,
    assert_no_secret_printed,
    phases,
    playbook_env,
    project_containers,
)
from sandbox_fixtures import (
    INVENTORY,
    isolated_stack,
    run_playbook,
    task_output,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def staging(sandbox_repo: Path) -> Iterator[Staging]:
    with isolated_stack(sandbox_repo, "staging") as stack:
        yield Staging(stack)


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        pytest.param({"stagegate_relase": "v2"}, "stagegate_relase: unknown", id="unknown-key"),
        pytest.param(
            {"stagegate_tiers": "postgres,api"}, "stagegate_tiers: got 'postgres,api'", id="type"
        ),
        pytest.param({"stagegate_compose_project": ""}, "stagegate_compose_project", id="missing"),
    ],
)
def test_bad_inventory_stops_in_preflight_before_anything_changes(
    staging: Staging, extra: dict[str, Any], named: str
) -> None:
    run = staging.staging("v1", **extra)
    assert run.rc != 0
    assert named in run.stdout, run.stdout[-3000:]
    assert "configuration is invalid" in run.stdout
    assert "TASK [stagegate.release.preflight : Take the deploy lock" not in run.stdout
    # nothing exists: no checkout, no lock, no ledger entry, no container
    assert not list(staging.state_dir.iterdir())
    assert project_containers(staging.stack.project) == []


# Names are case-insensitive: `Production` and `prod` went through unconfirmed before.
@pytest.mark.parametrize("environment", ["production", "Production"])
def test_production_needs_confirmation_before_anything_changes(
    staging: Staging, environment: str
) -> None:
    run = staging.staging("v1", stagegate_environment=environment)
    assert run.rc != 0
    assert f"stagegate_environment is {environment}: this run would stop api, worker" in run.stdout
    assert f"{environment} counts as production" in run.stdout
    assert "re-run with -e stagegate_confirm_production=true" in run.stdout
    assert "Take the deploy lock" not in run.stdout
    assert not list(staging.state_dir.iterdir())
    assert project_containers(staging.stack.project) == []


def test_first_promotion_of_v1(staging: Staging) -> None:
    # --check first, as the README tells a new user: nothing runs yet, so the plan ends after
    # the build (it failed in the deploy's plan, on compose files not checked out, with NO_GO)
    planned = staging.staging("v1", "--check")
    assert planned.rc == 0, planned.output[-4000:]
    assert "Check mode, first deploy: the phases up to the build planned v1" in planned.stdout
    assert "all of them (first deploy: no database yet)" in planned.stdout
    assert "TASK [stagegate.release.deploy" not in planned.stdout
    assert not list(staging.state_dir.iterdir()), "no lock, ledger or report kept"
    assert project_containers(staging.stack.project) == []
    assert not staging.stack.project_dir.joinpath(".stagegate-release").exists()
    run = staging.staging("v1")
    assert run.rc == 0, run.output[-4000:]
    assert_no_secret_printed(run)
    record = staging.last()
    assert (record["release"], record["verdict"]) == ("v1", "GO")
    report = staging.report(record)
    # nothing ran before: no backup or dry-run to take
    assert phases(report)["backup"] == phases(report)["migration_dryrun"] == "skipped"
    assert not V2_SCHEMA & staging.schema()
    assert not (staging.state_dir / "lock.json").exists(), "the lock is released"
    staging.v1_rows = staging.row_counts()  # type: ignore[attr-defined]


def test_a_wrong_database_password_is_refused_before_the_lock(staging: Staging) -> None:
    """Preflight logs in as the later phases do: a wrong password stopped the run only in the
    backup, after the lock and the checkout (a new user's trial)."""
    before = staging.snapshot()
    wrong = f"sgt-wrong-{secrets.token_hex(6)}"
    db = {**staging.vars["stagegate_db"], "password": wrong}
    run = staging.staging("v2", stagegate_db=db, stagegate_preflight_connect_timeout=1)
    assert run.rc != 0
    assert "Refused in preflight, before anything changed" in run.stdout, run.stdout[-3000:]
    assert "stagegate_db (cannot connect to PostgreSQL" in run.stdout
    assert 'password authentication failed for user "app"' in run.stdout
    assert wrong not in run.output
    assert "Take the deploy lock" not in run.stdout
    assert staging.snapshot() == before
    assert staging.stack.project_dir.joinpath(".stagegate-release").read_text().strip() == "v1"


def test_check_mode_changes_nothing(staging: Staging) -> None:
    before = staging.snapshot()
    # production without confirmation: --check walks the procedure all the same
    run = staging.staging("v2-crashloop", "--check", stagegate_environment="production")
    assert run.rc == 0, run.output[-4000:]
    assert "Check mode: every phase reported its plan and nothing changed" in run.stdout
    # the plan is of the target (read from the repository), not of the v1 checkout
    assert "Check mode plans v2-crashloop from" in run.stdout
    plan = run.stdout.split("Show the plan of the target release", 1)[1].split("TASK [", 1)[0]
    assert "006_composite_indexes.sql" in plan
    assert "007_reporting_views.sql" in plan
    assert '"api"' in plan  # its new image restarts it
    # the database and cache images would only be tagged with the release: not restarted
    restarted = re.search(r'"services_restarted": \[([^\]]*)\]', plan)
    assert restarted, plan
    assert '"postgres"' not in restarted.group(1)
    assert '"redis"' not in restarted.group(1)
    assert "would tag postgres, redis with v2-crashloop (image unchanged)" in run.stdout
    # the run record (the callback's) timed every phase; the playbook has no timing tasks
    report_dir = re.search(r"reports: (\S+?)\"", run.stdout)
    assert report_dir, run.stdout[-2000:]
    report = json.loads((Path(report_dir.group(1)) / "report.json").read_text())
    assert list(phases(report))[:6] == [
        "preflight", "source", "backup", "migration_dryrun", "build", "deploy",
    ]  # fmt: skip
    assert "Time the" not in run.stdout
    assert staging.snapshot() == before
    assert staging.stack.project_dir.joinpath(".stagegate-release").read_text().strip() == "v1"


def test_broken_migration_stops_at_the_dry_run(staging: Staging) -> None:
    before = staging.snapshot()
    run = staging.staging("v2-broken-migration")
    assert run.rc != 0
    record = staging.last()
    assert (record["release"], record["verdict"]) == ("v2-broken-migration", "NO_GO")
    assert record["stopped"]["phase"] == "migration_dryrun"
    assert "008_item_owners.sql" in record["stopped"]["reason"]
    report = staging.report(record)
    assert phases(report)["migration_dryrun"] == "failed"
    # the dry-run's graded result is the run's failed check (a trial found "failed checks:
    # none"), and the report advises no rollback: v1 runs untouched (it advised "roll back to
    # v1", and the rollback plan named the stopped release as running)
    dryrun = [c for c in report["checks"] if c["name"] == "migration_dryrun"]
    assert [c["status"] for c in dryrun] == ["FAIL"], report["checks"]
    assert "failed checks: none" not in run.stdout
    assert report["rollback_plan"] is None
    nothing = (
        "Nothing to roll back: the run stopped in migration_dryrun, before anything was "
        "deployed; v1 still runs."
    )
    report_md = Path(record["reports"]["report.md"]).read_text()
    assert f"**Rollback:** {nothing}" in report_md
    assert nothing in report_md.split("## 7. Rollback Plan", 1)[1]
    # the staging database and the running release are untouched
    after = staging.snapshot()
    for key in ("containers", "schema", "rows"):
        assert after[key] == before[key], key
    assert staging.api_version() == "v1"
    assert staging.stack.project_dir.joinpath(".stagegate-release").read_text().strip() == "v1"
    assert not (staging.state_dir / "lock.json").exists()


def test_crash_loop_is_rolled_back_automatically(staging: Staging) -> None:
    run = staging.staging("v2-crashloop", stagegate_auto_rollback=True)
    assert run.rc != 0
    assert "NO_GO for v2-crashloop" in run.stdout
    assert_no_secret_printed(run)
    # the rollback's verdict is named as such, and the run's own verdict is printed last
    verdicts = [
        line
        for line in run.stdout.splitlines()
        if line.startswith("stagegate:") and ": verdict " in line
    ]
    assert "stagegate: rollback to v1: verdict GO, readiness score" in verdicts[-2], verdicts
    assert "stagegate: verdict NO_GO, readiness score" in verdicts[-1], verdicts
    said = " ".join(run.stdout.split())
    assert ". Rolled back automatically to v1: verdict GO (reports: " in said
    promotion, rollback = staging.ledger()[-2:]
    assert promotion["verdict"] == "NO_GO"
    assert promotion["stopped"]["phase"] == "deploy"
    assert "service api" in promotion["stopped"]["reason"]
    assert (rollback["kind"], rollback["rolled_back_from"]) == ("rollback", "v2-crashloop")
    assert (rollback["release"], rollback["verdict"]) == ("v1", "GO")
    # v2-crashloop had applied 006/007: the backup taken before it was restored
    assert not V2_SCHEMA & staging.schema()
    assert staging.row_counts() == staging.v1_rows  # type: ignore[attr-defined]
    assert staging.api_version() == "v1"
    assert staging.stack.project_dir.joinpath(".stagegate-release").read_text().strip() == "v1"
    # the rollback's reports sit in the promotion's report dir on the controller, and both are
    # kept in <state_dir>/runs/<run id> (the ledger's report_dir), the rollback's in rollback/
    controller_dir = Path(rollback["controller_report_dir"])
    assert controller_dir.parent == Path(promotion["controller_report_dir"])
    assert Path(promotion["report_dir"]) == staging.stack.state_dir / "runs" / promotion["run_id"]
    assert Path(rollback["report_dir"]) == Path(promotion["report_dir"]) / "rollback"
    kept = json.loads((Path(rollback["report_dir"]) / "report.json").read_text())
    assert kept == json.loads((controller_dir / "report.json").read_text())
    # the NO_GO report names the automatic rollback and links the report it wrote
    promoted = (Path(promotion["controller_report_dir"]) / "report.md").read_text()
    assert "Automatic rollback to v1 runs next" in promoted
    assert "[rollback/report.html](rollback/report.html)" in promoted
    assert (Path(rollback["report_dir"]) / "report.html").is_file()


def service_container(project: str, service: str) -> tuple[str, str]:
    """(container ID, State.StartedAt) of a service's container."""
    (container,) = subprocess.run(
        ["docker", "ps", "--quiet", "--no-trunc",
         "--filter", f"label=com.docker.compose.project={project}",
         "--filter", f"label=com.docker.compose.service={service}"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    started = subprocess.run(
        ["docker", "inspect", "--format", "{{.State.StartedAt}}", container],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    return container, started


def test_promotion_to_v2_through_ansible_runner(staging: Staging, tmp_path: Path) -> None:
    # v1 -> v2 changes only the app images: the database is not recreated nor restarted
    database_before = service_container(staging.stack.project, "postgres")
    result = ansible_runner.run(
        private_data_dir=str(tmp_path),
        project_dir=str(REPO_ROOT),
        playbook=str(REPO_ROOT / "playbooks" / "staging.yml"),
        inventory=str(INVENTORY),
        extravars={**staging.vars, "stagegate_release": "v2"},
        envvars={k: playbook_env()[k] for k in ("ANSIBLE_CONFIG", "PATH")},
        quiet=True,
    )
    stdout = result.stdout.read()
    assert result.rc == 0, stdout[-4000:]
    stats = result.stats
    assert stats
    assert not stats["failures"]
    assert service_container(staging.stack.project, "postgres") == database_before
    images = task_output(stdout, "Show the images")
    assert "tagged postgres, redis with v2 (image unchanged)" in images, images  # not "Built"
    # Steps that would only repeat what the run knows already are skipped: the compose files,
    # validated from the repository before the lock, and the start of the database tier, which
    # Compose's dry run shows running unchanged and healthy.
    for task in (
        "Validate the compose files with docker compose config",
        "Start the tiers before the app tier (the database keeps running from here on)",
    ):
        assert task_output(stdout, task).count("skipping: [localhost]") == 1, task

    record = staging.last()
    assert (record["release"], record["verdict"], record["previous"]) == ("v2", "GO", "v1")
    report_dir = Path(record["report_dir"])
    assert {p.name for p in report_dir.iterdir()} >= set(REPORT_FILES)
    report = staging.report(record)
    assert report["verdict"] == "GO"
    assert report["release"]["version"] == "v2"
    assert [p["name"] for p in report["phases"]] == [
        "preflight", "source", "backup", "migration_dryrun", "build", "deploy", "validate",
    ]  # fmt: skip
    assert all(p["status"] == "ok" for p in report["phases"])
    names = {c["name"]: c["status"] for c in report["checks"]}
    assert names["reports_summary"] == names["v2_schema"] == names["migration_dryrun"] == "PASS"
    assert report["rollback_plan"]["target"]["release"] == "v1"
    junit = ET.parse(report_dir / "junit.xml").getroot()  # noqa: S314 - written by this run
    assert len(junit.findall(".//testcase")) >= len(report["checks"])
    assert "## Executive Summary" in (report_dir / "report.md").read_text()
    assert (report_dir / "report.html").read_text().lstrip().lower().startswith("<!doctype html")

    manifest = json.loads((staging.state_dir / "releases/v2/manifest.json").read_text())
    assert manifest["migrations_applied"] == [
        "006_composite_indexes.sql",
        "007_reporting_views.sql",
    ]
    assert Path(manifest["backup"]["path"]).exists()
    assert set(manifest["images"]) == {"postgres", "redis", "api", "worker"}
    # The compose hashes come from the tiered start: the files as checked out, in order.
    files = hashlib.sha256()
    for name in manifest["compose"]["files"]:
        content = (staging.stack.project_dir / name).read_bytes()
        files.update(name.encode() + b"\0" + content + b"\0")
    assert manifest["compose"]["files_sha256"] == files.hexdigest()
    assert len(manifest["compose"]["config_sha256"]) == 64
    assert staging.schema() >= V2_SCHEMA
    assert staging.api_version() == "v2"


def test_validate_playbook_compares_with_the_deploy_record(staging: Staging) -> None:
    deploy = staging.last()
    run = run_playbook("validate.yml", staging.vars)
    assert run.rc == 0, run.output[-4000:]
    record = staging.last()
    assert (record["kind"], record["release"]) == ("revalidation", "v2")
    assert record["baseline_run_id"] == deploy["run_id"]
    report = staging.report(record)
    latency = {g["name"]: g for g in report["gates"]}["stable since deploy: api_latency p95_ms"]
    assert latency["status"] in ("PASS", "WARN")
    # The latency baseline is the one timing figure of this run (tests never assert timings):
    # it alone may warn, and its WARN is then the verdict's only warning.
    assert [w for w in report["warnings"] if not w.startswith(f"gate {latency['name']} ")] == []
    assert record["verdict"] == ("GO" if latency["status"] == "PASS" else "GO_WITH_WARNINGS")
    assert "v2 since its deploy" in run.stdout


def test_tags_run_a_single_phase(staging: Staging, tmp_path: Path) -> None:
    before = staging.snapshot()
    kept = tmp_path / "run-record.json"
    run = run_playbook(
        "staging.yml", {**staging.vars, "stagegate_release": "v2"}, options=["--tags", "backup"],
        env={"STAGEGATE_RUN_RECORD": str(kept)},
    )  # fmt: skip
    assert run.rc == 0, run.output[-4000:]
    assert "Dump, verify and keep the backup" in run.stdout
    for other in ("Build", "Stop the app tier", "Apply the migrations", "Verify with the"):
        assert f"TASK [stagegate.release.{other}" not in run.stdout, other
    record = json.loads(kept.read_text())
    assert [p["name"] for p in record["phases"]] == ["backup"]
    # one archive per run (app-v2-<run id>), or the earlier one reused when nothing committed since
    manifests = sorted((staging.state_dir / "backups").glob("app-v2-*.dump.manifest.json"))
    assert manifests
    assert all(json.loads(m.read_text())["verified"] is True for m in manifests)
    assert staging.snapshot() == before, "no deploy, no ledger record, the lock released"
