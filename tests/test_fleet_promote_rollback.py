"""staging.yml promotes a fleet and rollback.yml rolls it back, over real SSH (docs/fleet.md
"Promoting a fleet", "Rolling a fleet back"): three app hosts and a database host
(tests/fleet_fixtures.py, the sandbox application on this machine's engine, each host with its
own compose project and checkout).

One run, one result: the database phases once, for the database host; one fleet-wide lock and
one ledger record on the state host; the images built once on the first app host and compared
on every app host, in one manifest; the app hosts deployed and validated batch by batch; one
verdict and one score in set_stats; one report dir with results by host. A crash-looping
release promoted one host per batch stops after its first batch, that host goes back to the
release it ran, and the other hosts never leave it. rollback.yml with no input then plans from
the state host's ledger, takes one lock, stops every app tier, restores the database once on
the database host, starts every app host on the good release and verifies each.

The tests run in order on one fleet (one set-up for all): v1 (a first deploy), v2, then
v2-crashloop, then rollback.yml to v1, an interrupted rollback and a stopped rollout's, then
v2 with a host that goes away mid-rollout.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from fleet_fixtures import (
    SANDBOX_HOST_CHECKS,
    SANDBOX_PROMOTE,
    FleetHost,
    SandboxFleet,
    run_on_fleet,
    started_containers,
)
from rollback_fixtures import GOOD, assert_no_secret_printed, phases, project_containers
from sandbox_fixtures import PlaybookRun, run_playbook, task_output

ROLLBACK = "rollback.yml"
V2_MIGRATIONS = {"006_composite_indexes.sql", "007_reporting_views.sql"}

# Four hosts, six promotions with builds, deploys and validations, and four rollbacks.
pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1800)]


def report(where: Path) -> dict[str, Any]:
    return dict(json.loads((where / "reports" / "report.json").read_text()))


def marker(host: FleetHost) -> str:
    return (host.root / "checkout" / ".stagegate-release").read_text().strip()


def migrations_applied(host: FleetHost, release: str) -> list[str]:
    manifest = host.state_dir / "releases" / release / "manifest.json"
    return list(json.loads(manifest.read_text())["migrations_applied"])


def image_id(reference: str) -> str:
    return subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", reference],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


def started_services(project: str) -> list[str]:
    """The compose services of `project` that run on this machine's engine."""
    return subprocess.run(
        ["docker", "ps", "--format", '{{.Label "com.docker.compose.service"}}', "--filter",
         f"label=com.docker.compose.project={project}"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip


def assert_fleet_runs(sandbox_fleet: SandboxFleet, release: str) -> None:
    """Every app host's checkout names `release` and its api answers with it."""
    for host in sandbox_fleet.fleet.apps:
        assert marker(host) == release, host.name
        status, body = sandbox_fleet.request(host, "/version")
        assert (status, body["version"]) == (200, release), (host.name, body)


def rollback_inventory(
    laid_out: SandboxFleet, workdir: Path, release: str, **host_vars: Any
) -> Path:
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


def promote_as_recorded(laid_out: SandboxFleet, workdir: Path, release: str, previous: str) -> None:
    """`release` laid out and recorded as a fleet promotion leaves it (tests/fleet/promote.yml),
    without staging.yml's build and checks."""
    run = run_playbook(
        str(SANDBOX_PROMOTE),
        {"fleet_previous_release": previous},
        rollback_inventory(laid_out, workdir, release),
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


def migrations_in_database(laid_out: SandboxFleet) -> set[str]:
    """The migrations the one database's tracking table holds (on the database host); the
    release manifests' own list: migrations_applied."""
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


def rollback_report(reports: Path) -> dict[str, Any]:
    return json.loads((reports / "rollback" / "report.json").read_text())


def test_stagegate_serial_from_the_inventory_is_refused_before_anything_changes(
    sandbox_fleet: SandboxFleet, tmp_path: Path
) -> None:
    """Ansible templates `serial` before it reads the inventory: an inventory's
    stagegate_serial would silently promote every app host in one batch, so play 1 refuses it,
    naming the key, before the lock or any change."""
    made = sandbox_fleet.fleet
    hosts = sandbox_fleet.promotion_inventory(tmp_path, "v1")
    data = yaml.safe_load(hosts.read_text())
    data["staging"]["vars"]["stagegate_serial"] = 1
    hosts.write_text(yaml.safe_dump(data))
    run = run_playbook("staging.yml", {}, hosts)
    out = " ".join(run.output.split())
    assert run.rc != 0, out[-4000:]
    assert "stagegate_serial: 1 is set in the inventory, where Ansible's `serial` does not" in out
    assert "-e stagegate_serial=1" in out
    # --check, which a fleet promotion does not do yet: refused, naming --check alone
    check = run_playbook(
        "staging.yml", {}, sandbox_fleet.promotion_inventory(tmp_path, "v1"), options=["--check"]
    )
    said = " ".join(check.output.split())
    assert check.rc != 0, said[-4000:]
    assert "its promotion cannot run as asked: --check: a fleet promotion has no check mode" in said
    assert "stagegate_db host" not in said
    assert "--tags" not in said
    assert not (tmp_path / "reports").exists()
    for host in made.hosts:
        assert not (host.state_dir / "lock.json").exists(), host.name
        assert not (host.state_dir / "ledger.jsonl").exists(), host.name
        assert not (host.root / "checkout" / ".stagegate-release").exists(), host.name


def test_a_fleet_is_promoted_go_v1_then_v2(sandbox_fleet: SandboxFleet, tmp_path: Path) -> None:
    made = sandbox_fleet.fleet

    # v1, a first deploy, as a user runs it: ansible-playbook.
    run = run_playbook("staging.yml", {}, sandbox_fleet.promotion_inventory(tmp_path / "v1", "v1"))
    assert run.rc == 0, run.output[-6000:]
    assert_no_secret_printed(run)
    first = report(tmp_path / "v1")
    assert first["verdict"] == "GO", first["blockers"]
    # a first deploy backs nothing up and dry-runs nothing (no phase says ok for them)
    assert phases(first).get("backup") != "ok", phases(first)
    assert phases(first).get("migration_dryrun") != "ok", phases(first)
    assert_fleet_runs(sandbox_fleet, "v1")

    # v2 through ansible_runner, as AWX runs it: backup, dry-run and migrations once. With a
    # proxy host, as inventory/examples/fleet has one: reached, validated, deploys nothing.
    hosts = sandbox_fleet.promotion_inventory(tmp_path / "v2", "v2", proxy=True)
    run, stats = run_on_fleet("staging.yml", hosts, tmp_path / "runner-v2")
    assert run.rc == 0, run.output[-6000:]
    assert_no_secret_printed(run)
    second = report(tmp_path / "v2")
    # one verdict and one score (three hosts once gave "GOGOGO" and 300.0)
    assert (stats["stagegate_verdict"], stats["stagegate_score"]) == ("GO", second["score"])
    assert second["verdict"] == "GO", second["blockers"]
    assert 0 < second["score"] <= 100
    assert stats["stagegate_report"] == str(tmp_path / "v2" / "reports" / "report.json")
    # one report dir, results by host; the fleet checks and the dry-run once
    assert set(second["hosts"]) == {"app1", "app2", "app3"}
    assert "ok: [proxy1]" in task_output(run.output, "Reach every host of the fleet")
    checks = {c["name"]: c for c in second["checks"]}
    assert checks["fleet_release"]["message"] == "all 3 app hosts run v2"
    assert checks["base_schema"]["status"] == "PASS"
    assert "migration_dryrun" in checks, sorted(checks)
    ran = phases(second)
    for phase in ("preflight", "source", "backup", "migration_dryrun", "build", "deploy"):
        assert ran[phase] == "ok", ran
    assert [p["name"] for p in second["phases"]].count("deploy") == 1
    assert_fleet_runs(sandbox_fleet, "v2")

    # The database phases once, for the database host: its backup, its migrations.
    assert list((made.db.state_dir / "backups").iterdir()), "no backup on the database host"
    assert not any((h.state_dir / "backups").exists() for h in made.apps)
    new = sorted(p.name for p in (made.db.root / "checkout" / "migrations").glob("00[67]*.sql"))
    assert migrations_applied(made.db, "v2") == new
    assert all(migrations_applied(h, "v2") == [] for h in made.apps)

    # One ledger record per promotion, on the state host; the one image manifest in it.
    ledger = made.ledger()
    assert [(r["release"], r["verdict"]) for r in ledger] == [("v1", "GO"), ("v2", "GO")]
    assert not any((h.state_dir / "ledger.jsonl").exists() for h in made.apps)
    images = ledger[-1]["fleet"]["images"]
    assert sorted(images) == ["api", "postgres", "redis", "worker"]
    for entry in images.values():
        assert entry["id"] == image_id(entry["image"]), entry
    assert images["api"]["image"] == f"{sandbox_fleet.image_prefix}/api:v2"
    # built once, on the build host (the first app host); the others only compared
    build = task_output(run.output, "Build the release's images and tag them with the release")
    assert "changed: [app1]" in build or "ok: [app1]" in build, build
    assert all(f"skipping: [{h.name}]" in build for h in made.apps[1:]), build
    # the lock taken once, released; kept reports on the state host
    assert not any((h.state_dir / "lock.json").exists() for h in made.hosts)
    assert (made.db.state_dir / "runs" / ledger[-1]["run_id"] / "report.json").exists()


def test_each_host_runs_its_tiers_and_validate_grades_the_promoted_fleet(
    sandbox_fleet: SandboxFleet, tmp_path: Path
) -> None:
    made = sandbox_fleet.fleet
    # Each app host runs only the app tier, in its own project; the data tier runs once.
    for host in made.hosts:
        expected = ["postgres", "redis"] if host is made.db else ["api", "worker"]
        assert sorted(started_services(host.compose_project)) == expected, host.name

    # validate.yml grades the promoted fleet: one GO, results by host, the schema checked once.
    checked = tmp_path / "validate"
    run = run_playbook("validate.yml", {}, sandbox_fleet.promotion_inventory(checked, "v2"))
    assert run.rc == 0, run.output[-4000:]
    assert_no_secret_printed(run)
    validated = report(checked)
    assert validated["verdict"] == "GO", validated["blockers"]
    assert set(validated["hosts"]) == {"app1", "app2", "app3"}
    checks = {c["name"]: c for c in validated["checks"]}
    assert checks["base_schema"]["status"] == "PASS"
    assert checks["fleet_release"]["message"] == "all 3 app hosts run v2"


def test_a_crash_looping_release_stops_after_its_first_batch_and_returns_that_host(
    sandbox_fleet: SandboxFleet, tmp_path: Path
) -> None:
    made = sandbox_fleet.fleet
    assert_fleet_runs(sandbox_fleet, "v2")  # left by the test before
    waiting = made.apps[1:]
    before = {h.name: started_containers(h.compose_project) for h in waiting}
    assert all(before.values()), before
    records = len(made.ledger())

    run, stats = run_on_fleet(
        "staging.yml",
        sandbox_fleet.promotion_inventory(tmp_path, "v2-crashloop"),
        tmp_path / "runner",
        stagegate_serial=1,
    )
    out = " ".join(run.output.split())
    assert run.rc != 0, out[-6000:]
    assert_no_secret_printed(run)
    # batch_outcome decided: the first batch failed, the rollout stopped there
    decided = "batch 1/3 (app1): 1/1 hosts failed (100%); the rollout stops, app2, app3 never"
    assert decided in out, out[-6000:]
    assert stats["stagegate_verdict"] == "NO_GO"
    data = report(tmp_path)
    assert data["verdict"] == "NO_GO"
    assert "app1" in data["stopped"]["reason"]
    assert "app1 back on v2" in data["stopped"]["reason"], data["stopped"]
    assert any("app1" in blocker for blocker in data["blockers"]), data["blockers"]
    # every app host named in the report, with why it has no results of v2-crashloop, and a
    # score that says so (a new user's trial: no host section and 100.0 beside NO_GO)
    assert set(data["hosts"]) == {"app1", "app2", "app3"}, data.get("hosts")
    why = {h: d["checks"][0]["message"] for h, d in data["hosts"].items()}
    assert "crash loop" in why["app1"], why
    for host in ("app2", "app3"):
        assert why[host].startswith(f"host {host} did not report: not promoted: batch 1/3"), why
    assert data["score"] < 100.0
    # what the fleet ran before, not the release it was checked out from again
    assert data["release"]["previous"] == "v2", data["release"]
    # the batch's deploy failed: nothing was validated
    assert phases(data).get("validate") in (None, "skipped", "not run"), phases(data)
    # the engine resets a restarted container's exit code: its `die` events name it
    assert "last exit code 0" not in out
    # app1 came back and app2, app3 never left: no rollback to advise
    assert "nothing to roll back" in (tmp_path / "reports" / "report.md").read_text()
    assert "NO_GO for v2-crashloop" in out
    assert "app1" in out.split("NO_GO for v2-crashloop")[1]

    # app1 went back to v2 (app tier only); app2 and app3 never left it: same containers
    assert_fleet_runs(sandbox_fleet, "v2")
    # the database host's checkout names what the fleet runs, so a rollback from v2 restores
    # the backup taken before v2 (a new user's fleet trial: left on v2-crashloop, it did not)
    assert marker(made.db) == "v2"
    assert {h.name: started_containers(h.compose_project) for h in waiting} == before

    # one ledger record for the run, which names the host it returned; the lock released
    ledger = made.ledger()
    assert len(ledger) == records + 1
    assert (ledger[-1]["release"], ledger[-1]["verdict"]) == ("v2-crashloop", "NO_GO")
    assert ledger[-1]["fleet"]["returned"] == {"app1": "back on v2"}
    assert not any((h.state_dir / "lock.json").exists() for h in made.hosts)


def test_after_a_stopped_rollout_no_input_rolls_every_app_host_back_and_restores_the_database(
    sandbox_fleet: SandboxFleet, tmp_path: Path
) -> None:
    """From where the crash-loop test left the fleet: v2 on every host, v2-crashloop stopped
    after its first batch (its own backup and NO_GO record). rollback.yml with no input goes to
    v1, the last good release, and restores the backup taken before v2, once (a new user's
    trial: left on v2-crashloop, the database host's plan restored nothing)."""
    made = sandbox_fleet.fleet
    made.trust_checkouts()
    assert made.ledger()[-1]["release"] == "v2-crashloop"
    hosts = rollback_inventory(sandbox_fleet, tmp_path, "v2")
    assert migrations_in_database(sandbox_fleet) >= V2_MIGRATIONS
    before = state(sandbox_fleet)
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
    assert state(sandbox_fleet) == before
    assert not (tmp_path / "check" / "rollback").exists()

    run = rollback(hosts, tmp_path / "reports")
    assert run.rc == 0, run.output[-6000:]
    assert_no_secret_printed(run)
    after = state(sandbox_fleet)
    assert after["markers"] == {"app1": "v1", "app2": "v1", "app3": "v1", "db1": "v1"}
    assert not after["lock"]
    # every app tier was recreated on v1; the data tier kept running
    for host in made.apps:
        assert set(after["containers"][host.name]).isdisjoint(before["containers"][host.name])
        status, body = sandbox_fleet.request(host, "/version")
        assert (status, body["version"]) == (200, "v1"), (host.name, body)
    assert after["containers"]["db1"] == before["containers"]["db1"]
    # the database once, on the database host, from the backup v2's manifest names
    assert task_hosts(run, "Restore the backup taken before the bad release") == ["db1"]
    assert migrations_in_database(sandbox_fleet).isdisjoint(V2_MIGRATIONS)

    # one ledger record for the fleet, one report with results by host
    (record,) = after["ledger"][len(before["ledger"]) :]
    assert (record["kind"], record["release"]) == ("rollback", "v1")
    assert record["rolled_back_from"] == "v2"
    assert record["verdict"] in GOOD, record
    assert record["hosts"]["moved"] == ["app1", "app2", "app3"]
    assert (record["database"]["host"], record["database"]["action"]) == ("db1", "restore")
    data = rollback_report(tmp_path / "reports")
    assert data["verdict"] in GOOD, data["blockers"]
    assert (data["kind"], data["release"]["previous"]) == ("rollback", "v2")
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
    assert state(sandbox_fleet) == after


def test_an_interrupted_rollback_is_finished_and_a_stopped_rollout_moves_only_its_batch(
    sandbox_fleet: SandboxFleet, tmp_path: Path
) -> None:
    """After the test above every host runs v1: v2 is laid out and recorded again; a rollback
    whose start fails on app3 leaves app1 and app2 moved; the re-run (naming v1) moves app3
    alone, and the database is not restored again."""
    made = sandbox_fleet.fleet
    app1, app2, app3 = made.apps
    promote_as_recorded(sandbox_fleet, tmp_path, "v2", "v1")
    # app3's start fails: a tier names a service the compose project does not have
    no_such_tier = {"stagegate_tiers": [["api", "worker", "no_such_service"]]}
    broken = rollback_inventory(sandbox_fleet, tmp_path, "v2", app3=no_such_tier)
    run = rollback(broken, tmp_path / "first")
    assert run.rc != 0, run.output[-5000:]
    first = state(sandbox_fleet)
    assert first["markers"] == {"app1": "v1", "app2": "v1", "app3": "v2", "db1": "v1"}, flat(run)[
        -5000:
    ]
    assert not first["lock"]
    assert migrations_in_database(sandbox_fleet).isdisjoint(V2_MIGRATIONS)
    data = rollback_report(tmp_path / "first")
    assert data["verdict"] == "NO_GO"
    assert data["hosts"]["app3"]["status"] == "ERROR"
    why = data["hosts"]["app3"]["checks"][0]["message"]
    assert why.startswith('host app3 did not report: rollback stopped at "Start'), why
    assert first["ledger"][-1]["hosts"]["failed"].keys() == {"app3"}

    # the re-run plans the host the first did not get to; the database stays
    hosts = rollback_inventory(sandbox_fleet, tmp_path, "v2")
    run = rollback(hosts, tmp_path / "second", stagegate_rollback_to="v1")
    assert run.rc == 0, run.output[-6000:]
    text = flat(run)
    assert (
        "Fleet rollback: roll back app3 (v2) to v1 (named by stagegate_rollback_to); app1, app2 "
        "already run it" in text
    ), text[-5000:]
    assert "Database on db1: none (app1, app2 already run v1" in text
    assert "App tiers stopped: app3" in text
    second = state(sandbox_fleet)
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
    before = state(sandbox_fleet)
    run = rollback(hosts, tmp_path / "third")
    assert run.rc == 0, run.output[-6000:]
    text = flat(run)
    assert "Fleet rollback: roll back app1 (v2-crashloop) to v1 (last good release" in text, text[
        -5000:
    ]
    assert "app2, app3 already run it" in text
    assert "App tiers stopped: app1" in text
    after = state(sandbox_fleet)
    assert after["markers"]["app1"] == "v1"
    for host in (app2, app3, made.db):
        assert after["containers"][host.name] == before["containers"][host.name], host.name
    assert after["ledger"][-1]["database"]["action"] == "none"


def test_a_host_that_goes_away_stops_the_promotion_and_a_rerun_converges(
    sandbox_fleet: SandboxFleet, tmp_path: Path
) -> None:
    """Issue 16's fault, twice: app2 goes away (1) while the build host checks the release out,
    before the rollout: the promotion stops there and nothing moved;
    (2) while the first batch (app1) is promoted: its own batch fails, named, before anything
    changes on it, app1 goes back to the release it ran and app3 never leaves it (v1, on v2's
    schema: v2's migrations only add). With app2 back, the same promotion converges. The fleet
    runs v1 (left by the rollback tests before), so the promotion is to v2."""
    made = sandbox_fleet.fleet
    first, gone, last = made.apps
    untouched = started_containers(last.compose_project)

    def promote_losing_app2_when(moment: Callable[[], bool], name: str) -> dict[str, Any]:
        assert_fleet_runs(sandbox_fleet, "v1")

        run_ended = threading.Event()

        def take_app2_away() -> None:
            while not run_ended.is_set() and not moment():
                time.sleep(0.1)
            if not run_ended.is_set():
                made.stop(gone)

        watcher = threading.Thread(target=take_app2_away, daemon=True)
        watcher.start()
        try:
            run, stats = run_on_fleet(
                "staging.yml",
                sandbox_fleet.promotion_inventory(tmp_path / name, "v2"),
                tmp_path / f"runner-{name}",
                stagegate_serial=1,
            )
        finally:
            run_ended.set()
            watcher.join()
        assert run.rc != 0, run.output[-6000:]
        assert_no_secret_printed(run)
        assert stats["stagegate_verdict"] == "NO_GO"
        # app1 is back on v1 (or never left it), app3 never left it, app2's app still serves v1
        for host in made.apps:
            assert marker(host) == "v1", host.name
            status, body = sandbox_fleet.request(host, "/version")
            assert (status, body["version"]) == (200, "v1"), (host.name, body)
        assert started_containers(last.compose_project) == untouched
        assert not (made.db.state_dir / "lock.json").exists()
        made.start(gone)
        return report(tmp_path / name)

    # (1) lost before the rollout: the build host's checkout names v2 (play 3)
    before = promote_losing_app2_when(lambda: marker(first) == "v2", "before")
    assert before["stopped"]["phase"] == "build", before["stopped"]
    # named with why (a loop's own message, "All items completed", said nothing)
    assert "failed on app2: unreachable: " in before["stopped"]["reason"], before["stopped"]
    assert (made.ledger()[-1]["release"], made.ledger()[-1]["verdict"]) == ("v2", "NO_GO")

    # (2) lost during the rollout: app1 answers v2 (its batch's deploy)
    def app1_serves_v2() -> bool:
        try:
            return sandbox_fleet.request(first, "/version")[1]["version"] == "v2"
        except (OSError, ValueError, KeyError, TypeError):
            return False

    during = promote_losing_app2_when(app1_serves_v2, "during")
    reason = during["stopped"]["reason"]
    assert "batch 2/3 (app2): 1/1 hosts failed (100%); the rollout stops" in reason, reason
    assert "unreachable" in reason, reason
    assert "app1 back on v1" in reason, reason

    # app2 is back: the same promotion converges, every app host on v2
    run, stats = run_on_fleet(
        "staging.yml",
        sandbox_fleet.promotion_inventory(tmp_path / "again", "v2"),
        tmp_path / "runner-again",
        stagegate_serial=1,
    )
    assert run.rc == 0, run.output[-6000:]
    assert stats["stagegate_verdict"] in ("GO", "GO_WITH_WARNINGS"), report(tmp_path / "again")
    assert_fleet_runs(sandbox_fleet, "v2")
    assert [(r["release"], r["verdict"]) for r in made.ledger()[-3:]] == [
        ("v2", "NO_GO"),
        ("v2", "NO_GO"),
        ("v2", stats["stagegate_verdict"]),
    ]
