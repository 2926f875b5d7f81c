"""staging.yml promotes a fleet over real SSH (docs/fleet.md "Promoting a fleet"): three app
hosts and a database host (tests/fleet_fixtures.py, the sandbox application on this machine's
engine, each host with its own compose project and checkout).

One run, one result: the database phases once, for the database host; one fleet-wide lock and
one ledger record on the state host; the images built once on the first app host and compared
on every app host, in one manifest; the app hosts deployed and validated batch by batch; one
verdict and one score in set_stats; one report dir with results by host. A crash-looping
release promoted one host per batch stops after its first batch, that host goes back to the
release it ran, and the other hosts never leave it.

The tests run in order on one fleet: v1 (a first deploy), v2, then v2-crashloop, then v1 with
a host that goes away mid-rollout.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from fleet_fixtures import (
    FleetHost,
    SandboxFleet,
    run_on_fleet,
    started_containers,
)
from rollback_fixtures import assert_no_secret_printed, phases
from sandbox_fixtures import run_playbook

# Four hosts, three promotions with builds, deploys and validations: longer than test_staging's.
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


def task_output(output: str, task: str) -> str:
    """What one task printed, from its header to the next task's."""
    start = output.index(f"{task}]")
    end = output.find("TASK [", start)
    return output[start : end if end >= 0 else None]


def assert_fleet_runs(sandbox_fleet: SandboxFleet, release: str) -> None:
    """Every app host's checkout names `release` and its api answers with it."""
    for host in sandbox_fleet.fleet.apps:
        assert marker(host) == release, host.name
        status, body = sandbox_fleet.request(host, "/version")
        assert (status, body["version"]) == (200, release), (host.name, body)


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
    assert all(data["hosts"][h]["failed"] for h in ("app1", "app2", "app3")), data["hosts"]
    assert data["score"] < 100.0
    # the engine resets a restarted container's exit code: never "last exit code 0"
    assert "last exit code 0" not in out
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


def test_a_host_that_goes_away_stops_the_promotion_and_a_rerun_converges(
    sandbox_fleet: SandboxFleet, tmp_path: Path
) -> None:
    """Issue 16's fault, twice: app2 goes away (1) while the build host checks the release out,
    before the rollout: the promotion stops there and nothing moved;
    (2) while the first batch (app1) is promoted: its own batch fails, named, before anything
    changes on it, app1 goes back to the release it ran and app3 never leaves it. With app2
    back, the same promotion converges. The fleet runs v2 (left by the tests before), so the
    promotion is to v1, whose api runs on v2's schema (v2's migrations only add)."""
    made = sandbox_fleet.fleet
    first, gone, last = made.apps
    untouched = started_containers(last.compose_project)

    def promote_losing_app2_when(moment: Callable[[], bool], name: str) -> dict[str, Any]:
        assert_fleet_runs(sandbox_fleet, "v2")

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
                sandbox_fleet.promotion_inventory(tmp_path / name, "v1"),
                tmp_path / f"runner-{name}",
                stagegate_serial=1,
            )
        finally:
            run_ended.set()
            watcher.join()
        assert run.rc != 0, run.output[-6000:]
        assert_no_secret_printed(run)
        assert stats["stagegate_verdict"] == "NO_GO"
        # app1 is back on v2 (or never left it), app3 never left it, app2's app still serves v2
        for host in made.apps:
            assert marker(host) == "v2", host.name
            status, body = sandbox_fleet.request(host, "/version")
            assert (status, body["version"]) == (200, "v2"), (host.name, body)
        assert started_containers(last.compose_project) == untouched
        assert not (made.db.state_dir / "lock.json").exists()
        made.start(gone)
        return report(tmp_path / name)

    # (1) lost before the rollout: the build host's checkout names v1 (play 3)
    before = promote_losing_app2_when(lambda: marker(first) == "v1", "before")
    assert before["stopped"]["phase"] == "build", before["stopped"]
    # named with why (a loop's own message, "All items completed", said nothing)
    assert "failed on app2: unreachable: " in before["stopped"]["reason"], before["stopped"]
    assert (made.ledger()[-1]["release"], made.ledger()[-1]["verdict"]) == ("v1", "NO_GO")

    # (2) lost during the rollout: app1 answers v1 (its batch's deploy)
    def app1_serves_v1() -> bool:
        try:
            return sandbox_fleet.request(first, "/version")[1]["version"] == "v1"
        except (OSError, ValueError, KeyError, TypeError):
            return False

    during = promote_losing_app2_when(app1_serves_v1, "during")
    reason = during["stopped"]["reason"]
    assert "batch 2/3 (app2): 1/1 hosts failed (100%); the rollout stops" in reason, reason
    assert "unreachable" in reason, reason
    assert "app1 back on v2" in reason, reason

    # app2 is back: the same promotion converges, every app host on v1
    run, stats = run_on_fleet(
        "staging.yml",
        sandbox_fleet.promotion_inventory(tmp_path / "again", "v1"),
        tmp_path / "runner-again",
        stagegate_serial=1,
    )
    assert run.rc == 0, run.output[-6000:]
    assert stats["stagegate_verdict"] in ("GO", "GO_WITH_WARNINGS"), report(tmp_path / "again")
    assert_fleet_runs(sandbox_fleet, "v1")
    assert [(r["release"], r["verdict"]) for r in made.ledger()[-3:]] == [
        ("v1", "NO_GO"),
        ("v1", "NO_GO"),
        ("v1", stats["stagegate_verdict"]),
    ]
