"""staging.yml and validate.yml when an earlier run died at the worst moment (issue #13, items 5
and 18), on one isolated sandbox stack, in file order.

v1 is promoted; a run killed while appending to the ledger left a torn last line, and the
next validate.yml names it in its reports (and repairs it on append). Then a promotion to a
test-local release `v2-slow` (v2 plus a migration that sleeps) is SIGKILLed, its process group
and every process below it, while `pg_migrate` runs that migration on the staging database
(a lost node, an OOM kill): the file's transaction
is rolled back, the files before it stay applied with their tracking rows, and the dead run's
lock stays. The re-run is refused naming the dead run and `break_lock`; with
`stagegate_break_lock=true` it takes the lock over, resumes the promotion from what the dead
run left (its previous release, the migrations it applied) and its report says so.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import REPO_ROOT
from rollback_fixtures import V2_OBJECTS, Staging, kill_tree, playbook_env
from sandbox_fixtures import INVENTORY, VENV_BIN, SandboxStack, isolated_stack, run_playbook

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1800)]

SLOW_MIGRATION = "008_item_archive.sql"


def tear_the_ledger(state_dir: Path) -> str:
    """What a run killed in the middle of its ledger append leaves: half a record, no newline."""
    torn = json.dumps({"release": "v1", "verdict": "GO", "run_id": "killed-mid-append"})[:29]
    with (state_dir / "ledger.jsonl").open("a") as handle:
        handle.write(torn)
    lines = (state_dir / "ledger.jsonl").read_text().split("\n")
    return f"line {len(lines)}: torn final line skipped"


def whole_ledger(state_dir: Path) -> list[dict[str, Any]]:
    text = (state_dir / "ledger.jsonl").read_text()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]  # raises on a torn line


@pytest.fixture(scope="module")
def slow_repo(sandbox_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the sandbox repository with one more tag: v2-slow, v2 plus a migration that
    creates a table and then sleeps (a long backfill), so a kill can land inside it."""
    root = tmp_path_factory.mktemp("slow-repo")
    bare, work = root / "sandbox.git", root / "work"
    git = ["git", "-c", "user.name=stagegate tests", "-c", "user.email=tests@stagegate.invalid"]
    subprocess.run(["git", "clone", "-q", "--bare", str(sandbox_repo), str(bare)], check=True)
    subprocess.run(["git", "clone", "-q", str(bare), str(work)], check=True)
    subprocess.run(["git", "-C", str(work), "checkout", "-q", "v2"], check=True)
    (work / "migrations" / SLOW_MIGRATION).write_text(
        "-- A long backfill: the test kills the promotion while it runs.\n"
        "CREATE TABLE item_archive (id bigint PRIMARY KEY, name text NOT NULL);\n"
        "INSERT INTO item_archive SELECT id, name FROM items;\n"
        "SELECT pg_sleep(8);\n"
    )
    env = (work / ".env").read_text().replace("SANDBOX_RELEASE=v2\n", "SANDBOX_RELEASE=v2-slow\n")
    (work / ".env").write_text(env)
    subprocess.run([*git, "-C", str(work), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "-q", "-m", "Release v2-slow"], check=True)
    subprocess.run([*git, "-C", str(work), "tag", "-a", "-m", "v2-slow", "v2-slow"], check=True)
    subprocess.run(["git", "-C", str(work), "push", "-q", "origin", "v2-slow"], check=True)
    return bare


class Interrupted(Staging):
    killed: dict[str, Any]
    """What the killed promotion left: its lock, the backup it took, the torn ledger line."""

    def __init__(self, stack: SandboxStack) -> None:
        super().__init__(stack)
        # A loaded CI machine may take minutes to initialise PostgreSQL; no timing is asserted.
        self.vars["stagegate_deploy_tier_timeout"] = 600

    def backends_in(self, database: str, text: str) -> int | None:
        """Sessions of `database` whose current query contains `text` (asked from the
        `postgres` database: the dry-run's TEMPLATE copy ends every session of `app`)."""
        try:
            with self.connect("postgres", autocommit=True) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                    "AND state = 'active' AND position(%s in query) > 0",
                    (database, text),
                ).fetchone()
        except psycopg.OperationalError:  # busy or restarting: None, ask again
            return None
        return int(row[0]) if row else 0

    def manifest(self, release: str) -> dict[str, Any]:
        path = self.state_dir / "releases" / release / "manifest.json"
        return dict(json.loads(path.read_text()))

    def tracked(self) -> list[str]:
        rows = self.sql("SELECT filename FROM stagegate_schema_migrations ORDER BY filename")
        return [name for (name,) in rows]

    def kill_staging_in_migration(self, release: str) -> str:
        """Start staging.yml and SIGKILL it while the slow migration runs on the staging
        database itself (not the dry-run's copy), as a lost node or an OOM kill would: its
        process group and every process below it. Ansible's workers run in sessions of their
        own (setsid), so killing the group alone leaves the module running to its end, which
        then commits the file with its row; returns the output so far."""
        proc = subprocess.Popen(
            [str(VENV_BIN / "ansible-playbook"), "playbooks/staging.yml", "-i", str(INVENTORY),
             "-e", json.dumps({**self.vars, "stagegate_release": release})],
            cwd=REPO_ROOT, env=playbook_env(), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 1200
            while not self.backends_in("app", "pg_sleep"):
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline, "the promotion never reached its migration"
                time.sleep(0.1)
        finally:  # also when waiting failed: never leave the run going
            out = kill_tree(proc)
        return out


@pytest.fixture(scope="module")
def staging(slow_repo: Path) -> Iterator[Interrupted]:
    with isolated_stack(slow_repo, "interrupted") as stack:
        yield Interrupted(stack)


def test_first_promotion_of_v1(staging: Interrupted) -> None:
    run = staging.staging("v1")
    assert run.rc == 0, run.output[-4000:]
    assert staging.last()["verdict"] == "GO"


def test_validate_reports_a_torn_ledger_line_and_repairs_it(staging: Interrupted) -> None:
    named = tear_the_ledger(staging.state_dir)

    run = run_playbook("validate.yml", staging.vars)

    # The verdict is not the point here (under load the sandbox's log scan may fail it); a
    # NO_GO re-validation still writes its reports and its ledger record.
    assert run.rc == 0 or "NO_GO for v1" in run.output, run.output[-4000:]
    assert named in run.output  # the [WARNING] of the ledger read (on stderr)
    record = whole_ledger(staging.state_dir)[-1]  # the append cut the torn line off
    assert record["kind"] == "revalidation"
    report = staging.report(record)
    assert any(named in w for w in report["ledger_warnings"]), report["ledger_warnings"]
    report_dir = Path(record["report_dir"])
    assert named in (report_dir / "report.md").read_text()
    assert named in (report_dir / "report.html").read_text()


def test_promotion_killed_in_its_migration_leaves_what_a_rerun_needs(staging: Interrupted) -> None:
    named = tear_the_ledger(staging.state_dir)
    ledger_before = staging.state_dir.joinpath("ledger.jsonl").read_text()

    out = staging.kill_staging_in_migration("v2-slow")

    assert "TASK [stagegate.release.deploy : Apply the pending migrations]" in out
    # The dead run's session ends its sleep, finds no client and its transaction rolls back.
    deadline = time.monotonic() + 60
    while staging.backends_in("app", "pg_sleep") != 0:
        assert time.monotonic() < deadline, "the killed run's migration never ended"
        time.sleep(0.2)
    # The files before the slow one committed with their tracking rows; the slow one left
    # nothing, and the tracking table does not call it applied.
    tracked = staging.tracked()
    assert tracked[-2:] == ["006_composite_indexes.sql", "007_reporting_views.sql"]
    assert SLOW_MIGRATION not in tracked
    assert "item_archive" not in staging.schema()
    assert staging.schema() >= V2_OBJECTS
    lock = json.loads((staging.state_dir / "lock.json").read_text())
    killed = lock["run_id"]
    assert staging.state_dir.joinpath("ledger.jsonl").read_text() == ledger_before
    # What the killed run left for a rollback or a re-run: the deploy in progress, the release
    # before it and the backup taken before it.
    manifest = staging.manifest("v2-slow")
    assert manifest["in_progress"]["run_id"] == killed
    assert manifest["previous_release"] == "v1"
    assert SLOW_MIGRATION in manifest["migrations_applied"]
    assert Path(manifest["backup"]["path"]).exists()
    # The rollback's plan (--check, nothing changes, the dead run's lock untouched) counts what
    # the database records, not what the deploy was about to apply (its manifest lists 008).
    plan = run_playbook("rollback.yml", staging.vars, options=["--check"])
    said = " ".join(plan.output.split())
    assert plan.rc == 0, said[-4000:]
    assert (
        "Database: restore (v2-slow applied 2 migration(s); its deploy stopped before it applied "
        f"{SLOW_MIGRATION} (not in the database))"
    ) in said, said[-4000:]
    assert "data written since the backup is lost" in said
    assert json.loads((staging.state_dir / "lock.json").read_text()) == lock
    staging.killed = {"lock": lock, "backup": manifest["backup"], "torn": named}


def test_rerun_after_the_kill_is_refused_then_resumes_with_break_lock(staging: Interrupted) -> None:
    lock, backup_before, named = (staging.killed[k] for k in ("lock", "backup", "torn"))
    killed = lock["run_id"]
    # The dead run's lock is live (its TTL has not passed): refused, naming it and the way out.
    refused = staging.staging("v2-slow")
    assert refused.rc != 0
    assert f"(run {killed})" in refused.stdout, refused.stdout[-3000:]
    assert "stagegate_break_lock=true" in refused.stdout
    assert "Refused in preflight, before anything changed" in refused.stdout
    assert json.loads((staging.state_dir / "lock.json").read_text()) == lock

    run = staging.staging("v2-slow", stagegate_break_lock=True)

    assert run.rc == 0, run.output[-6000:]
    record = whole_ledger(staging.state_dir)[-1]  # the torn line was cut off first
    assert (record["release"], record["previous"]) == ("v2-slow", "v1")
    assert record["verdict"] in ("GO", "GO_WITH_WARNINGS")
    report = staging.report(record)
    assert report["resumed"]["run_id"] == killed
    assert report["resumed"]["previous_release"] == "v1"
    assert report["release"]["previous"] == "v1"
    assert any(named in w for w in report["ledger_warnings"]), report["ledger_warnings"]
    report_dir = Path(record["report_dir"])
    md = (report_dir / "report.md").read_text()
    assert f"**Resumed:** This run resumed the deploy of v2-slow that run {killed}" in md
    assert named in md
    assert (
        f"resumed the deploy of v2-slow that run {killed}"
        in (report_dir / "report.html").read_text()
    )
    # It applied what the killed run rolled back, and finished the deploy.
    assert staging.tracked()[-1] == SLOW_MIGRATION
    assert "item_archive" in staging.schema()
    assert staging.api_version() == "v2-slow"
    manifest = staging.manifest("v2-slow")
    assert "in_progress" not in manifest
    assert manifest["backup"] == backup_before, "a rollback restores the state before v2-slow"
    assert manifest["previous_release"] == "v1"
    assert not (staging.state_dir / "lock.json").exists()
