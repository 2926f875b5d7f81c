"""rollback.yml over a fleet on real SSH hosts (docs/fleet.md, "Rolling a fleet back"): three app
hosts and a database host run the sandbox (tests/fleet_fixtures.py, runtime fleet), v1 laid out
as a fleet promotion lays it out, then v2 promoted as one leaves it (tests/fleet/promote.yml:
the backup on the database host, its release manifest naming it, markers, a GO record in the
state host's ledger). rollback.yml with no input plans from that ledger, takes one lock on the
state host, stops every app tier, restores the database once on the database host, starts every
app host on v1 and verifies each, folded into one verdict, one report, one ledger record.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fleet_fixtures import SANDBOX_HOST_CHECKS, SANDBOX_PROMOTE, SANDBOX_UP, SandboxFleet, fleet
from rollback_fixtures import GOOD, assert_no_secret_printed, project_containers
from sandbox_fixtures import PlaybookRun, run_playbook

ROLLBACK = "rollback.yml"
V2_MIGRATIONS = {"006_composite_indexes.sql", "007_reporting_views.sql"}

# Four hosts' checkouts, two builds and deploys, a backup and several rollbacks.
pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(2400)]


@pytest.fixture(scope="module")
def v2_fleet(
    tmp_path_factory: pytest.TempPathFactory, sandbox_repo: Path
) -> Iterator[SandboxFleet]:
    """The sandbox on three app hosts and a database host: v1, then v2 promoted (ledger: v1 GO,
    v2 GO)."""
    workdir = tmp_path_factory.mktemp("fleet_rollback")
    with fleet(workdir, apps=3, runtime=True, shared=[sandbox_repo]) as made:
        laid_out = SandboxFleet(made, sandbox_repo)
        try:
            made.trust_checkouts()
            run = run_playbook(str(SANDBOX_UP), {}, inventory(laid_out, workdir, "v1"))
            assert run.rc == 0, run.output[-4000:]
            made.seed_ledger("v1")
            promote(laid_out, workdir, "v2", "v1")
            yield laid_out
        finally:
            made.remove_projects()
            laid_out.remove_images()


def inventory(laid_out: SandboxFleet, workdir: Path, release: str, **host_vars: Any) -> Path:
    """The fleet's inventory naming `release` (a user's inventory names the release it promotes
    last; rollback.yml needs none), `host_vars` per app host ({host: {var: value}})."""
    path = laid_out.inventory(
        workdir / f"hosts-{release}.yml",
        stagegate_release=release,
        stagegate_checks=SANDBOX_HOST_CHECKS,
        stagegate_gates={"key_checks": ["api_ready"]},
        # a container whose first healthchecks fail on the loaded test machine may still start
        stagegate_deploy_unhealthy_grace=90,
    )
    if host_vars:
        data = yaml.safe_load(path.read_text())
        apps = data["staging"]["children"]["stagegate_app"]["hosts"]
        for host, values in host_vars.items():
            apps[host].update(values)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def promote(laid_out: SandboxFleet, workdir: Path, release: str, previous: str) -> None:
    run = run_playbook(
        str(SANDBOX_PROMOTE),
        {"fleet_previous_release": previous},
        inventory(laid_out, workdir, release),
    )
    assert run.rc == 0, run.output[-4000:]
    assert_no_secret_printed(run)


def rollback(inventory_path: Path, reports: Path, *args: str, **extra: Any) -> PlaybookRun:
    return run_playbook(ROLLBACK, {"stagegate_report_dir": str(reports), **extra},
                        inventory_path, options=args)  # fmt: skip


def state(laid_out: SandboxFleet) -> dict[str, Any]:
    """What a rollback changes: markers, every host's containers, the ledger, the lock."""
    made = laid_out.fleet
    return {
        "markers": {h.name: h.release() for h in made.hosts},
        "containers": {h.name: sorted(project_containers(h.compose_project)) for h in made.hosts},
        "ledger": made.ledger(),
        "lock": (made.db.state_dir / "lock.json").exists(),
    }


def applied_migrations(laid_out: SandboxFleet) -> set[str]:
    """The migrations the one database's tracking table holds (on the database host)."""
    out = subprocess.run(
        ["docker", "exec", f"{laid_out.fleet.db.compose_project}-postgres-1", "psql", "-U", "app",
         "-d", "app", "-Atc", "SELECT filename FROM public.stagegate_schema_migrations"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return set(out.split())


def flat(run: PlaybookRun) -> str:
    return " ".join(run.output.split())


def task_hosts(run: PlaybookRun, task: str) -> list[str]:
    """`changed: [host]` / `ok: [host]` lines of a task, every time it ran."""
    found = []
    for block in re.split(r"\nTASK \[", run.output):
        if block.split("]", 1)[0].endswith(task):
            found += re.findall(r"^(?:changed|ok): \[([^\]]+)\]", block, flags=re.M)
    return found


def report(reports: Path) -> dict[str, Any]:
    return json.loads((reports / "rollback" / "report.json").read_text())


def test_no_input_rolls_every_app_host_back_and_restores_the_database_once(
    v2_fleet: SandboxFleet, tmp_path: Path
) -> None:
    made = v2_fleet.fleet
    hosts = inventory(v2_fleet, tmp_path, "v2")
    assert applied_migrations(v2_fleet) >= V2_MIGRATIONS
    before = state(v2_fleet)
    assert set(before["markers"].values()) == {"v2"}

    # --check: the one plan (who moves, who stays, how the database comes back), no change
    run = rollback(hosts, tmp_path / "check", "--check")
    assert run.rc == 0, run.output[-5000:]
    text = flat(run)
    assert (
        "Fleet rollback: roll back app1 (v2), app2 (v2), app3 (v2) to v1 (last good release in "
        "the ledger (GO" in text
    ), text[-5000:]
    restore = r"Database on db1: restore (by dump )?of /srv/stagegate/state/backups/\S+ "
    assert re.search(restore + r"\(v2 applied 2 migration\(s\)\)", text), text[-5000:]
    assert "App tiers stopped: app1, app2, app3" in text
    assert state(v2_fleet) == before
    assert not (tmp_path / "check" / "rollback").exists()

    run = rollback(hosts, tmp_path / "reports")
    assert run.rc == 0, run.output[-6000:]
    assert_no_secret_printed(run)
    after = state(v2_fleet)
    assert after["markers"] == {"app1": "v1", "app2": "v1", "app3": "v1", "db1": "v1"}
    assert not after["lock"]
    # every app tier was recreated on v1; the data tier kept running
    for host in made.apps:
        assert set(after["containers"][host.name]).isdisjoint(before["containers"][host.name])
        status, body = v2_fleet.request(host, "/version")
        assert (status, body["version"]) == (200, "v1"), (host.name, body)
    assert after["containers"]["db1"] == before["containers"]["db1"]
    # the database once, on the database host, from the backup v2's manifest names
    assert task_hosts(run, "Restore the backup taken before the bad release") == ["db1"]
    assert applied_migrations(v2_fleet).isdisjoint(V2_MIGRATIONS)

    # one ledger record for the fleet, one report with results by host
    (record,) = after["ledger"][len(before["ledger"]) :]
    assert (record["kind"], record["release"]) == ("rollback", "v1")
    assert record["rolled_back_from"] == "v2"
    assert record["verdict"] in GOOD, record
    assert record["hosts"]["moved"] == ["app1", "app2", "app3"]
    assert (record["database"]["host"], record["database"]["action"]) == ("db1", "restore")
    data = report(tmp_path / "reports")
    assert data["verdict"] in GOOD, data["blockers"]
    assert set(data["hosts"]) == {"app1", "app2", "app3"}
    checks = {c["name"]: c for c in data["checks"]}
    assert checks["fleet_release"]["message"] == "all 3 app hosts run v1"
    assert checks["release_version"]["status"] == "PASS"
    assert checks["rollback_services_healthy"]["status"] == "PASS"
    assert data["rollback_plan"]["move"] == ["app1", "app2", "app3"]

    # a re-run has nothing to do: no lock, no report, no record
    run = rollback(hosts, tmp_path / "again")
    assert run.rc == 0, run.output[-5000:]
    assert "every app host runs v1, rolled back from v2: nothing to do" in flat(run)
    assert state(v2_fleet) == after


def test_an_interrupted_rollback_is_finished_and_a_stopped_rollout_moves_only_its_batch(
    v2_fleet: SandboxFleet, tmp_path: Path
) -> None:
    """After the test above every host runs v1: v2 is promoted again; a rollback whose start
    fails on app3 leaves app1 and app2 moved; the re-run (naming v1) moves app3 alone, and the
    database is not restored again."""
    made = v2_fleet.fleet
    app1, app2, app3 = made.apps
    promote(v2_fleet, tmp_path, "v2", "v1")
    # app3's start fails: a tier names a service the compose project does not have
    no_such_tier = {"stagegate_tiers": [["api", "worker", "no_such_service"]]}
    broken = inventory(v2_fleet, tmp_path, "v2", app3=no_such_tier)
    run = rollback(broken, tmp_path / "first")
    assert run.rc != 0, run.output[-5000:]
    first = state(v2_fleet)
    assert first["markers"] == {"app1": "v1", "app2": "v1", "app3": "v2", "db1": "v1"}, flat(run)[
        -5000:
    ]
    assert not first["lock"]
    assert applied_migrations(v2_fleet).isdisjoint(V2_MIGRATIONS)
    data = report(tmp_path / "first")
    assert data["verdict"] == "NO_GO"
    assert data["hosts"]["app3"]["status"] == "ERROR"
    why = data["hosts"]["app3"]["checks"][0]["message"]
    assert why.startswith('host app3 did not report: rollback stopped at "Start'), why
    assert first["ledger"][-1]["hosts"]["failed"].keys() == {"app3"}

    # the re-run plans the host the first did not get to; the database stays
    hosts = inventory(v2_fleet, tmp_path, "v2")
    run = rollback(hosts, tmp_path / "second", stagegate_rollback_to="v1")
    assert run.rc == 0, run.output[-6000:]
    text = flat(run)
    assert (
        "Fleet rollback: roll back app3 (v2) to v1 (named by stagegate_rollback_to); app1, app2 "
        "already run it" in text
    ), text[-5000:]
    assert "Database on db1: none (app1, app2 already run v1" in text
    assert "App tiers stopped: app3" in text
    second = state(v2_fleet)
    assert set(second["markers"].values()) == {"v1"}
    for host in (app1, app2, made.db):
        assert second["containers"][host.name] == first["containers"][host.name], host.name
    assert task_hosts(run, "Restore the backup taken before the bad release") == []
    record = second["ledger"][-1]
    assert (record["kind"], record["rolled_back_from"]) == ("rollback", "v2")
    assert record["verdict"] in GOOD, record
    assert record["hosts"]["moved"] == ["app3"]
    assert record["database"]["action"] == "none"

    # a serial rollout that stopped after its first batch: app1 on v2-crashloop (its marker and
    # the NO_GO record such a promotion leaves), app2 and app3 on v1: app1 alone goes back
    app1.set_release("v2-crashloop")
    with (made.db.state_dir / "ledger.jsonl").open("a") as ledger:
        ledger.write(json.dumps({"release": "v2-crashloop", "previous": "v1", "verdict": "NO_GO",
                                 "environment": "staging", "run_id": "crashloop-rollout",
                                 "finished": "2026-12-01T04:00:00Z"}) + "\n")  # fmt: skip
    before = state(v2_fleet)
    run = rollback(hosts, tmp_path / "third")
    assert run.rc == 0, run.output[-6000:]
    text = flat(run)
    assert "Fleet rollback: roll back app1 (v2-crashloop) to v1 (last good release" in text, text[
        -5000:
    ]
    assert "app2, app3 already run it" in text
    assert "App tiers stopped: app1" in text
    after = state(v2_fleet)
    assert after["markers"]["app1"] == "v1"
    for host in (app2, app3, made.db):
        assert after["containers"][host.name] == before["containers"][host.name], host.name
    assert after["ledger"][-1]["database"]["action"] == "none"
