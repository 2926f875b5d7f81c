"""Rollback by TEMPLATE snapshot (stagegate_backup_snapshot) on one isolated sandbox stack,
through the real playbooks, the database reached over TCP and its dumps through its container.

v1 is deployed, the app database given what a TEMPLATE copy does not copy (owner, grants,
settings, connection limit, comment); staging.yml promotes v2 with the snapshot on;
`rollback.yml --check` says snapshot (and dump) with estimates; rollback.yml renames the
snapshot back in, properties included; v2 is promoted again and its snapshot dropped, and the
rollback restores the dump, saying so; v2 once more, the rollback SIGKILLed between its two
renames, and a re-run (through ansible_runner, as AWX) finishes it: never two and never no `app`.
The tests share the stack and run in file order.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rollback_fixtures import GOOD, V2_OBJECTS, Rollout
from sandbox_fixtures import SandboxStack, isolated_stack, run_playbook

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)]

# Set as the container's superuser; stagegate connects as `app` (owner, CREATEDB, no
# superuser), which can re-apply all of these (a per-role setting it could not: pg_snapshot
# reports that in `problems`; tests/test_pg_snapshot.py covers those as superuser).
PROPERTY_SQL = (
    "CREATE ROLE sgt_reader LOGIN",
    "ALTER DATABASE app SET work_mem = '7MB'",
    "ALTER DATABASE app SET search_path = '$user', public",
    "ALTER DATABASE app CONNECTION LIMIT 50",
    "REVOKE ALL ON DATABASE app FROM PUBLIC",
    "GRANT CONNECT, TEMPORARY ON DATABASE app TO app, sgt_reader",
    "COMMENT ON DATABASE app IS 'sandbox app database'",
)


class Snapshots(Rollout):
    def __init__(self, stack: SandboxStack) -> None:
        super().__init__(stack)
        self.vars["sandbox_latency_bands"] = {"p95": {"pass": "<= 60s"}}
        # A healthcheck may fail once on a machine this busy before the service settles.
        self.vars["stagegate_deploy_unhealthy_grace"] = 90
        self.vars["stagegate_deploy_tier_timeout"] = 240
        self.runs = 0

    def promote(
        self, release: str, playbook: str = "../tests/playbooks/snapshot_deploy.yml"
    ) -> str:
        """Promote with the snapshot on; returns the output."""
        self.runs += 1
        run = run_playbook(
            "../tests/playbooks/snapshot_deploy.yml",
            {
                **self.vars,
                "stagegate_release": release,
                "stagegate_backup_snapshot": True,
                "stagegate_run_id": f"snaptest-{self.runs}",
            },
        )
        assert run.rc == 0, run.output[-5000:]
        return run.output

    def admin(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with self.connect("postgres", autocommit=True) as conn:
            cur = conn.execute(query, params or None)
            return cur.fetchall() if cur.description else []

    def superuser(self, query: str) -> None:
        subprocess.run(
            ["docker", "exec", f"{self.stack.project}-postgres-1", "psql", "-X", "-q",
             "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", query],
            check=True, capture_output=True,
        )  # fmt: skip

    def databases(self) -> set[str]:
        return {name for (name,) in self.admin("SELECT datname FROM pg_database")} - {
            "postgres",
            "template0",
            "template1",
        }

    def properties(self) -> dict[str, Any]:
        row = self.admin(
            "SELECT r.rolname, d.datacl::text[], d.datconnlimit, "
            "shobj_description(d.oid, 'pg_database'), "
            "(SELECT array_agg(coalesce(sr.rolname, '-') || ':' "
            "  || array_to_string(s.setconfig, ';') ORDER BY 1) "
            "  FROM pg_db_role_setting s LEFT JOIN pg_roles sr ON sr.oid = s.setrole "
            "  WHERE s.setdatabase = d.oid) "
            "FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = 'app'"
        )[0]
        return {
            "owner": row[0],
            "acl": sorted(row[1] or []),
            "connlimit": row[2],
            "comment": row[3],
            "settings": sorted(row[4] or []),
        }

    def manifest(self, release: str) -> dict[str, Any]:
        path = self.state_dir / "releases" / release / "manifest.json"
        return json.loads(path.read_text())  # type: ignore[no-any-return]

    def rollback_ok(self, *args: str) -> str:
        run = self.rollback(*args)
        assert run.returncode == 0, run.stdout[-5000:]
        return run.stdout


@pytest.fixture(scope="module")
def snaps(sandbox_repo: Path) -> Iterator[Snapshots]:
    with isolated_stack(sandbox_repo, "snapshot") as stack:
        out = Snapshots(stack)
        out.deploy("v1")
        for query in PROPERTY_SQL:
            out.superuser(query)
        out.v1_properties = out.properties()  # type: ignore[attr-defined]
        yield out


def test_staging_promotes_with_a_snapshot(snaps: Snapshots) -> None:
    run = run_playbook(
        "staging.yml",
        {**snaps.vars, "stagegate_release": "v2", "stagegate_backup_snapshot": True},
    )
    assert run.rc == 0, run.output[-5000:]
    snapshot = snaps.manifest("v2")["backup"]["snapshot"]
    assert snapshot["name"].startswith("app_stagegate_")
    assert snapshot["source"] == "app"
    assert snapshot["size_bytes"] > 0
    assert "public.items" in snapshot["tables"]
    assert snaps.databases() == {"app", snapshot["name"]}
    assert f"Snapshot {snapshot['name']} of app:" in run.output  # its cost: seconds, bytes
    # `app` may not read data_directory: the free disk is read in the container's PGDATA
    assert "free disk for the snapshot not measured" not in run.output
    assert snaps.schema() >= V2_OBJECTS
    promoted = snaps.ledger()[-1]
    assert promoted["phases"]["deploy"] > 0  # measured: the next rollback estimates from them
    report = json.loads((Path(promoted["report_dir"]) / "report.json").read_text())
    assert "estimate" in report["rollback_plan"]  # the promotion's plan says how long it takes
    assert "**estimate:** seconds: " in (Path(promoted["report_dir"]) / "report.md").read_text()


def test_check_says_snapshot_with_estimates_and_changes_nothing(snaps: Snapshots) -> None:
    before = snaps.databases()
    out = snaps.rollback_ok("--check")
    assert "Database restore by: snapshot" in out
    assert "snapshot  rename app_stagegate_" in out
    assert "dump      pg_restore of the backup: ~" in out  # the backup phase's time, at least
    # Seed 004's estimated rollback time: the promotion's deploy + validate phases; no snapshot
    # rollback measured yet, so the swap is named, not guessed
    assert "median deploy + validate phases of 1 promotion(s) in the ledger" in out
    assert "plus database: snapshot swap (not measured)" in out
    assert "Estimated time with the database by snapshot: ~" in out
    assert snaps.databases() == before
    assert snaps.schema() >= V2_OBJECTS


def test_rollback_by_snapshot_carries_the_properties(snaps: Snapshots) -> None:
    snapshot = snaps.manifest("v2")["backup"]["snapshot"]
    out = snaps.rollback_ok()
    assert "Not by snapshot" not in out
    assert not V2_OBJECTS & snaps.schema()
    assert snaps.api_version() == "v1"
    rows = {t.split(".")[-1]: i["rows"] for t, i in snapshot["tables"].items()}
    rows.pop("stagegate_schema_migrations", None)
    assert snaps.row_counts() == rows
    failed = f"app_stagegate_failed_{snapshot['run_id']}"
    assert snaps.databases() == {"app", failed}  # the v2 database, kept for forensics
    assert snaps.properties() == snaps.v1_properties  # type: ignore[attr-defined]
    record = [r for r in snaps.ledger() if r.get("kind") == "rollback"][-1]
    assert record["verdict"] in GOOD
    assert record["database"]["method"] == "snapshot"
    assert record["database"]["seconds"] > 0
    # the rollback's own report says how the database came back, as the ledger does
    report = json.loads((Path(record["report_dir"]) / "report.json").read_text())
    assert report["rollback_plan"]["database_put_back"]["method"] == "snapshot"
    assert (
        "**database_put_back:** method: snapshot"
        in (Path(record["report_dir"]) / "report.md").read_text()
    )


def test_rollback_by_dump_when_the_snapshot_was_dropped(snaps: Snapshots) -> None:
    snaps.promote("v2")
    snapshot = snaps.manifest("v2")["backup"]["snapshot"]
    assert snapshot["run_id"] == "snaptest-1"
    assert snapshot["name"] in snaps.databases()
    snaps.admin(f'DROP DATABASE "{snapshot["name"]}"')

    planned = snaps.rollback_ok("--check")
    assert "Database restore by: dump (the snapshot app_stagegate_snaptest-1 is gone" in planned
    # the rollback above measured its wall time and its swap: the estimate rests on them now
    assert "median of 1 rollback(s) in the ledger, wall time less their database step" in planned
    assert "snapshot  rename app_stagegate_snaptest-1 back in: ~" in planned  # the last one's time
    # the whole estimate counts the way chosen, not the swap the plan expected (a new user's find)
    assert re.search(r"Estimated time with the database by dump: ~[0-9.]+ s\"", planned), planned

    out = snaps.rollback_ok()
    assert "Not by snapshot: the snapshot app_stagegate_snaptest-1 is gone" in out
    assert "Restoring the dump" in out
    assert not V2_OBJECTS & snaps.schema()
    assert snaps.row_counts() == snaps.backup_rows("v2")
    record = [r for r in snaps.ledger() if r.get("kind") == "rollback"][-1]
    assert record["database"]["method"] == "dump"
    assert record["database"]["bytes"] > 0


def test_killed_between_the_renames_a_rerun_finishes(snaps: Snapshots) -> None:
    # What the snapshot records (a dump restore before this re-created `app` without them).
    before = snaps.properties()
    snaps.promote("v2")
    snapshot = snaps.manifest("v2")["backup"]["snapshot"]
    # Keep the second rename waiting: a transaction of ours holds a lock on the snapshot's
    # pg_database entry (COMMENT ON DATABASE), so the rollback stops after its first rename.
    with snaps.connect("postgres") as holder:
        holder.execute(f'COMMENT ON DATABASE "{snapshot["name"]}" IS NULL')
        seen: dict[str, Any] = {}

        def between_renames(pid: int) -> bool:
            """A session waits for the snapshot's lock while it holds `app`'s exclusively:
            it renamed `app` aside and waits to rename the snapshot."""
            waiting = snaps.admin(
                "SELECT count(*) FROM pg_locks w JOIN pg_locks h ON h.pid = w.pid "
                "WHERE NOT w.granted AND w.locktype = 'object' "
                "AND w.classid = 'pg_database'::regclass "
                "AND h.granted AND h.locktype = 'object' AND h.mode = 'AccessExclusiveLock' "
                "AND h.classid = 'pg_database'::regclass "
                "AND h.objid = (SELECT oid FROM pg_database WHERE datname = 'app')"
            )[0][0]
            if waiting:
                seen["databases"] = snaps.databases()
            return bool(waiting)

        interrupted = snaps.kill_rollback_when(between_renames, "the second rename")
        holder.rollback()
    assert "database" not in interrupted["steps_done"]
    # At the kill: one `app` (the first rename is not visible before both are committed).
    assert "app" in seen["databases"]
    # The killed session's server side ends once it finds its client gone: its transaction,
    # the first rename included, is rolled back.
    deadline = time.monotonic() + 60
    while snaps.admin(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'object' "
        "AND classid = 'pg_database'::regclass AND pid <> pg_backend_pid()"
    )[0][0]:
        assert time.monotonic() < deadline, "the killed rollback's session stayed"
        time.sleep(0.2)
    assert {"app", snapshot["name"]} <= snaps.databases()

    report = snaps.rerun_as_awx(interrupted)

    assert report["rollback_plan"]["database"]["snapshot"]["name"] == snapshot["name"]
    names = snaps.databases()
    assert "app" in names
    assert snapshot["name"] not in names
    assert f"app_stagegate_failed_{snapshot['run_id']}" in names
    assert snaps.api_version() == "v1"
    assert not V2_OBJECTS & snaps.schema()
    assert snaps.properties() == before
