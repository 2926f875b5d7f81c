"""Alembic through the whole procedure, on one isolated sandbox stack, through ansible-playbook.

The sandbox's v1 with an Alembic project added (tags `alembic-v1`: revision a1, a table;
`alembic-v2`: revision b2, a column) is promoted through the database phases of staging.yml
(tests/playbooks/alembic_promote.yml: backup, dry-run on a TEMPLATE copy, deploy): the deploy
applies each release's revisions and its manifest records them with the revision before; the
tracking is read from `alembic_version`. `rollback.yml --check` lists the revisions and the
`alembic downgrade` it would run, and changes nothing; rollback.yml with
`stagegate_rollback_database=downgrade` runs it: the schema is back at a1, rows written under
alembic-v2 stay (the downgrade drops a column, not the rows). All at -vvv: no secret in the
output, and `ps` never shows the database password while Alembic runs.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from conftest import REPO_ROOT
from pg_fixtures import ALEMBIC_ENV
from rollback_fixtures import Rollout, playbook_env
from sandbox_fixtures import INVENTORY, VENV_BIN, SandboxStack, isolated_stack, sandbox_secrets

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1200)]

ALEMBIC_INI = "[alembic]\nscript_location = %(here)s\n"
REVISION = """
from alembic import op

revision = "{rev}"
down_revision = {down}
branch_labels = None
depends_on = None


def upgrade():
{upgrade}


def downgrade():
{downgrade}
"""
A1 = REVISION.format(
    rev="a1",
    down="None",
    upgrade='    op.execute("CREATE TABLE item_notes (id serial PRIMARY KEY, note text NOT NULL)")',
    downgrade='    op.execute("DROP TABLE item_notes")',
)
# b2 takes a few seconds, long enough for `ps` to be sampled while Alembic runs.
B2 = REVISION.format(
    rev="b2",
    down='"a1"',
    upgrade='    op.execute("ALTER TABLE items ADD COLUMN priority integer")\n'
    '    op.execute("SELECT pg_sleep(3)")',
    downgrade='    op.execute("ALTER TABLE items DROP COLUMN priority")',
)


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


def alembic_repo(sandbox_repo: Path, dest: Path) -> Path:
    """A copy of the sandbox's repository with tags alembic-v1 (v1 + revision a1) and
    alembic-v2 (+ revision b2)."""
    bare = dest / "alembic.git"
    git(dest, "clone", "-q", "--bare", str(sandbox_repo), str(bare))
    work = dest / "work"
    git(dest, "clone", "-q", str(bare), str(work))
    git(work, "checkout", "-q", "v1")
    versions = work / "alembic" / "versions"
    versions.mkdir(parents=True)
    (work / "alembic" / "alembic.ini").write_text(ALEMBIC_INI)
    (work / "alembic" / "env.py").write_text(ALEMBIC_ENV)
    (work / "alembic" / "script.py.mako").write_text("")
    for tag, name, text in (("alembic-v1", "a1.py", A1), ("alembic-v2", "b2.py", B2)):
        (versions / name).write_text(text)
        # each release's app image differs, as a release's code does: its containers are new
        (work / "app" / "sandbox_app" / "release_note.py").write_text(f"RELEASE = {tag!r}\n")
        git(work, "add", "alembic", "app")
        git(work, "commit", "-qm", tag)
        git(work, "tag", tag)
    git(work, "push", "-q", "origin", "alembic-v1", "alembic-v2")
    return bare


# The alembic processes stagegate starts (the test's own ansible-playbook command line carries
# the inventory's password in `-e`, as a user's would not: it is not what is looked at).
ALEMBIC_PROCESS = re.compile(r"bin/alembic -c \S+ (upgrade|downgrade|history)\b")


class Watched:
    """`ps -eww -o args` sampled while a playbook runs: the command lines of alembic."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            out = subprocess.run(
                ["ps", "-eww", "-o", "args"], capture_output=True, text=True, check=False
            ).stdout
            self.samples += 1
            self.lines += [line for line in out.splitlines() if ALEMBIC_PROCESS.search(line)]
            time.sleep(0.05)

    def __enter__(self) -> Watched:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


class AlembicRollout(Rollout):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.vars["stagegate_dryrun_alembic_config"] = (
            "{{ stagegate_project_dir }}/alembic/alembic.ini"
        )
        self.vars["stagegate_deploy_unhealthy_grace"] = 90
        self.vars["stagegate_deploy_tier_timeout"] = 240
        self.runs = 0

    def promote(self, release: str) -> str:
        """alembic_promote.yml at -vvv; returns its output."""
        self.runs += 1
        extra = {**self.vars, "stagegate_release": release, "stagegate_run_id": f"al-{self.runs}"}
        proc = subprocess.run(
            [str(VENV_BIN / "ansible-playbook"), "tests/playbooks/alembic_promote.yml",
             "-i", str(INVENTORY), "-e", json.dumps(extra), "-vvv"],
            cwd=REPO_ROOT, env=playbook_env(), capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout[-5000:]
        return proc.stdout + proc.stderr

    def manifest(self, release: str) -> dict[str, Any]:
        path = self.state_dir / "releases" / release / "manifest.json"
        return json.loads(path.read_text())  # type: ignore[no-any-return]

    def revision(self) -> str | None:
        rows = self.sql("SELECT version_num FROM alembic_version")
        return str(rows[0][0]) if rows else None

    def item_columns(self) -> set[str]:
        rows = self.sql(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name = 'items'"
        )
        return {name for (name,) in rows}


def assert_no_secret(output: str) -> None:
    for name, value in sandbox_secrets().items():
        if "password" in name or "secret" in name:
            assert value not in output, f"{name} printed"
            assert quote(value, safe="") not in output, f"{name} printed URL-quoted"


@pytest.fixture(scope="module")
def rollout(sandbox_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rollout]:
    repo = alembic_repo(sandbox_repo, tmp_path_factory.mktemp("alembic-repo"))
    with isolated_stack(repo, "alembic") as stack:
        out = AlembicRollout(stack)
        start_database(stack)
        out.deploy("v1")  # the database and v1's SQL migrations, as a release before Alembic
        yield out


def start_database(stack: SandboxStack, timeout: float = 600) -> None:
    """The database's first start (initdb) before the first deploy: on a loaded machine it
    outlasts the healthcheck's start period, and the container reads unhealthy until it ends."""
    stack.checkout("v1")
    stack.compose("build", "postgres", "redis")
    stack.compose("up", "--detach", "postgres", "redis")
    deadline = time.monotonic() + timeout
    container = f"{stack.project}-postgres-1"
    while True:
        health = subprocess.run(
            ["docker", "inspect", "--format", "{{.State.Health.Status}}", container],
            capture_output=True, text=True, check=False,
        ).stdout.strip()  # fmt: skip
        if health == "healthy":
            return
        assert time.monotonic() < deadline, f"{container} is {health} after {timeout} s"
        time.sleep(2)


def test_promote_then_downgrade_with_alembic(rollout: AlembicRollout) -> None:
    first = rollout.promote("alembic-v1")
    assert rollout.revision() == "a1"
    assert rollout.manifest("alembic-v1")["alembic"] == {"from": None, "revisions": ["a1"]}

    with Watched() as watched:
        second = rollout.promote("alembic-v2")
    assert rollout.revision() == "b2"
    assert "priority" in rollout.item_columns()
    assert rollout.manifest("alembic-v2")["alembic"] == {"from": "a1", "revisions": ["b2"]}
    # the dry-run ran b2 on its copy first (graded in its check record)
    assert re.search(r"Migration dry-run (PASS|WARN): 1\s+pending", second), second[-3000:]
    # Alembic ran (b2 sleeps 3 s) while ps was sampled: its command lines carry no password
    assert any("upgrade" in line for line in watched.lines), (watched.samples, watched.lines)
    password = rollout.password
    assert not [line for line in watched.lines if password in line or "psycopg://" in line]

    # Written under alembic-v2: a row using the new column, and a note in a1's table.
    rollout.sql(
        "INSERT INTO items (name, priority) VALUES ('written under alembic-v2', 5) RETURNING id"
    )
    rollout.sql("INSERT INTO item_notes (note) VALUES ('kept') RETURNING id")

    plan = rollout.rollback("--check", "-vvv", stagegate_rollback_database="downgrade")
    assert plan.returncode == 0, plan.stdout[-5000:]
    assert "alembic revisions reverted: b2 (alembic downgrade a1)" in plan.stdout
    assert "alembic downgrade a1: the database is at b2; reverts b2" in plan.stdout
    assert "ALTER TABLE items DROP COLUMN priority" in plan.stdout  # the offline SQL
    assert rollout.revision() == "b2", "--check changed nothing"

    run = rollout.rollback("-vvv", stagegate_rollback_database="downgrade")
    assert run.returncode == 0, run.stdout[-5000:]
    assert rollout.revision() == "a1"
    assert "priority" not in rollout.item_columns()
    assert rollout.sql("SELECT count(*) FROM items WHERE name = 'written under alembic-v2'") == [
        (1,)
    ]
    assert rollout.sql("SELECT note FROM item_notes") == [("kept",)]
    state = rollout.rollback_state()
    report = json.loads((Path(state["report"]) / "report.json").read_text())
    database = report["rollback_plan"]["database"]
    assert (database["action"], database["alembic"]) == (
        "downgrade",
        {"revisions": ["b2"], "downgrade_to": "a1"},
    )
    assert rollout.ledger()[-1]["release"] == "alembic-v1"

    for output in (first, second, plan.stdout + plan.stderr, run.stdout + run.stderr):
        assert_no_secret(output)
