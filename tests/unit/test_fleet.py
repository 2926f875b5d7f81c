"""Fleets without Ansible: the inventory shape, folding per-host results into one result per
check, the `hosts` gate ("all hosts" / "at least N%"), and one verdict through run_gate."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from stagegate.fleet import (
    FleetError,
    batch_failures,
    batch_outcome,
    failure_budget,
    fleet_images,
    fleet_rollback_database,
    fleet_rollback_plan,
    fleet_shape,
    parse_quorum,
    promotion_refusals,
    remote_command,
    rollout_batches,
    ssh_command,
)
from stagegate.gatekeeper import GateRequest, gate_plugin_manager, run_gate
from stagegate.reports import render_junit, render_markdown


def result(name: str, status: str = "PASS", **kw: Any) -> dict[str, Any]:
    return {"name": name, "group": "infrastructure", "type": "http", "status": status,
            "severity": "critical", "message": kw.pop("message", ""), **kw}  # fmt: skip


def test_a_single_host_inventory_is_its_own_fleet() -> None:
    shape = fleet_shape({"all": ["localhost"], "staging": ["localhost"]}, ["localhost"])
    assert (shape.app, shape.db, shape.state_host, shape.is_fleet) == (
        ["localhost"], [], "localhost", False
    )  # fmt: skip


def test_the_state_host_is_the_db_host_or_the_named_one() -> None:
    groups = {"all": ["a1", "a2", "db1", "ops"], "stagegate_app": ["a1", "a2"],
              "stagegate_db": ["db1"]}  # fmt: skip
    shape = fleet_shape(groups, ["a1", "a2", "db1"])
    assert (shape.app, shape.state_host, shape.is_fleet) == (["a1", "a2"], "db1", True)
    assert fleet_shape(groups, [], "ops").state_host == "ops"
    assert fleet_shape({"stagegate_app": ["a1", "a2"]}, []).state_host == "a1"


def test_an_ambiguous_or_unknown_state_host_is_refused_naming_the_key() -> None:
    groups = {"all": ["a1", "db1", "db2"], "stagegate_app": ["a1"], "stagegate_db": ["db1", "db2"]}
    with pytest.raises(
        FleetError, match=r"stagegate_db: 2 hosts \(db1, db2\).*stagegate_state_host"
    ):
        fleet_shape(groups, [])
    with pytest.raises(FleetError, match="stagegate_state_host: 'db9' is not a host"):
        fleet_shape(groups, [], "db9")
    assert fleet_shape(groups, [], "db2").state_host == "db2"


@pytest.mark.parametrize(("raw", "share"), [("all", 100.0), ("66%", 66.0), (">= 50%", 50.0),
                                            (75, 75.0)])  # fmt: skip
def test_quorum_is_all_or_a_share_of_hosts(raw: object, share: float) -> None:
    assert parse_quorum(raw) == share


@pytest.mark.parametrize("raw", ["most", "<= 50%", "150%", "0%", "5ms"])
def test_a_bad_quorum_is_named(raw: str) -> None:
    with pytest.raises(FleetError, match="not 'all' or a share of hosts"):
        parse_quorum(raw)


def gate(tmp_path: Path, per_host: dict[str, list[dict[str, Any]]], gates: dict[str, Any],
         **kw: Any):  # type: ignore[no-untyped-def]  # fmt: skip
    request = GateRequest(release="v2", report_dir=str(tmp_path), gates=gates,
                          host_results=per_host, **kw)  # fmt: skip
    return run_gate(request, gate_plugin_manager())


def fleet_results(bad: dict[str, str] | None = None) -> dict[str, list[dict[str, Any]]]:
    bad = bad or {}
    return {
        host: [result("api_ready", bad.get(host, "PASS"), message="503" if host in bad else ""),
               result("items", "PASS", metrics={"avg_ms": 10.0})]
        for host in ("app1", "app2", "app3")
    }  # fmt: skip


def test_three_healthy_hosts_give_one_go_and_one_score(tmp_path: Path) -> None:
    outcome = gate(tmp_path, fleet_results(), {},
                   host_releases={"app1": "v2", "app2": "v2", "app3": "v2"})  # fmt: skip
    assert (str(outcome.verdict), outcome.score) == ("GO", 100.0)
    names = [c["name"] for c in outcome.report["checks"]]
    assert names == ["api_ready", "items", "fleet_release"]  # one result per check
    assert list(outcome.report["hosts"]) == ["app1", "app2", "app3"]
    assert json.loads((tmp_path / "report.json").read_text())["hosts"]["app2"]["status"] == "PASS"


def test_one_failing_host_fails_the_check_and_is_named_first(tmp_path: Path) -> None:
    outcome = gate(tmp_path, fleet_results({"app2": "FAIL"}), {})
    assert str(outcome.verdict) == "NO_GO"
    api = next(c for c in outcome.report["checks"] if c["name"] == "api_ready")
    assert api["status"] == "FAIL"
    assert api["message"] == "2/3 hosts ok (needs all hosts); FAIL on app2: 503; PASS on app1, app3"
    assert next(iter(outcome.report["hosts"])) == "app2"
    md = render_markdown(outcome.report)
    assert "| app2 | ❌ FAIL | 2 | api_ready |" in md
    assert 'classname="stagegate.host.app2"' in render_junit(outcome.report)


def test_a_hosts_gate_allows_at_least_n_percent(tmp_path: Path) -> None:
    rule = {"name": "api on most hosts", "type": "hosts", "checks": ["api_ready"], "min": "60%"}
    outcome = gate(tmp_path, fleet_results({"app2": "FAIL"}), {"rules": [rule]})
    assert str(outcome.verdict) == "GO_WITH_WARNINGS"
    api = next(c for c in outcome.report["checks"] if c["name"] == "api_ready")
    assert api["status"] == "WARN"  # tolerated by the quorum, still named
    found = next(g for g in outcome.report["gates"] if g["name"] == "api on most hosts")
    assert found["status"] == "PASS"
    assert found["message"] == (
        "2/3 hosts pass (67%, needs at least 60% of hosts); failing: app2: api_ready FAIL"
    )
    # two of three failing is below 60%: the gate and the check fail
    outcome = gate(tmp_path, fleet_results({"app2": "FAIL", "app3": "FAIL"}), {"rules": [rule]})
    assert str(outcome.verdict) == "NO_GO"
    assert any("api on most hosts" in b for b in outcome.report["blockers"])


def test_a_host_that_did_not_report_is_an_error_on_every_check(tmp_path: Path) -> None:
    results = fleet_results()
    del results["app3"]
    outcome = gate(tmp_path, results, {}, missing_hosts={"app3": "unreachable: Connection refused"})
    assert str(outcome.verdict) == "NO_GO"
    assert outcome.report["hosts"]["app3"]["failed"] == ["api_ready", "items"]
    api = next(c for c in outcome.report["checks"] if c["name"] == "api_ready")
    assert api["status"] == "ERROR"
    assert "host app3 did not report: unreachable: Connection refused" in api["message"]


def test_hosts_that_all_did_not_report_are_each_named_and_lower_the_score(tmp_path: Path) -> None:
    # A rollout stopped in its first batch's deploy: no app host has results, only the fleet's
    # once-run checks (the migration dry-run) do. The report still names every host and why.
    why = "not promoted: batch 1 of 3 (app1) failed"
    outcome = gate(tmp_path, {}, {}, checks=[result("migration_dryrun")],
                   missing_hosts={"app1": why, "app2": why, "app3": why},
                   stopped={"phase": "deploy", "reason": "batch 1 failed"})  # fmt: skip
    assert str(outcome.verdict) == "NO_GO"
    assert list(outcome.report["hosts"]) == ["app1", "app2", "app3"]
    assert outcome.report["hosts"]["app2"]["failed"] == ["host_reported"]
    reported = next(c for c in outcome.report["checks"] if c["name"] == "host_reported")
    assert reported["status"] == "ERROR"
    assert f"host app1 did not report: {why}" in reported["message"]
    assert outcome.score < 100.0
    md = render_markdown(outcome.report)
    assert "| app1 | ❌ ERROR | 1 | host_reported |" in md
    assert "fix the check or the target" not in md  # the hosts' own reasons are the advice
    assert "Read each host's reason" in md


def test_a_stopped_rollout_that_returned_its_hosts_advises_no_rollback(tmp_path: Path) -> None:
    why = {"app2": "not promoted: batch 1/3 (app1) failed", "app3": "not promoted: batch 1/3"}
    stopped = {"phase": "deploy", "reason": "batch 1/3 (app1) failed. app1 back on v1"}
    missing = {"app1": "crash loop", **why}
    outcome = gate(tmp_path, {}, {}, missing_hosts=missing, stopped=stopped,
                   auto_rollback=False, returned={"app1": "back on v1"})  # fmt: skip
    md = render_markdown(outcome.report)
    assert "roll back with playbooks/rollback.yml" not in md
    assert (
        "The stopped rollout returned app1 back on v1; the other hosts never left the release "
        "they ran: nothing to roll back."
    ) in md
    # a host that could not be returned is the one to roll back
    returned = {"app1": "back on v1", "app2": "NOT returned (start failed)"}
    outcome = gate(tmp_path, {}, {}, missing_hosts=missing, stopped=stopped,
                   auto_rollback=False, returned=returned)  # fmt: skip
    assert "app2 NOT returned: roll it back with playbooks/rollback.yml" in render_markdown(
        outcome.report
    )
    # a first deploy's host has nothing to return to: its stopped app tier is no rollback
    first = {"app1": "app tier stopped (a first deploy: no release to return to)"}
    outcome = gate(tmp_path, {}, {}, missing_hosts=missing, stopped=stopped,
                   auto_rollback=False, returned=first)  # fmt: skip
    md = render_markdown(outcome.report)
    assert "nothing to roll back" in md
    assert "NOT returned" not in md


def test_hosts_on_another_release_fail_the_fleet_release_check(tmp_path: Path) -> None:
    outcome = gate(tmp_path, fleet_results(), {},
                   host_releases={"app1": "v2", "app2": "v1", "app3": "v2"})  # fmt: skip
    assert str(outcome.verdict) == "NO_GO"
    agreement = next(c for c in outcome.report["checks"] if c["name"] == "fleet_release")
    assert agreement["message"] == "app2 runs v1 (the others run v2)"


def test_a_single_host_report_has_no_hosts_section(tmp_path: Path) -> None:
    request = GateRequest(release="v2", report_dir=str(tmp_path), checks=[result("api_ready")])
    outcome = run_gate(request, gate_plugin_manager())
    assert "hosts" not in outcome.report
    assert "Results by Host" not in render_markdown(outcome.report)


def test_a_check_skipped_on_every_host_stays_skip_and_listed_by_host(tmp_path: Path) -> None:
    results = {h: [result("api_ready"), result("suite", "SKIP")] for h in ("app1", "app2")}
    outcome = gate(tmp_path, results, {})
    suite = next(c for c in outcome.report["checks"] if c["name"] == "suite")
    assert suite["status"] == "SKIP"
    assert [e["host"] for e in suite["details"]["hosts"]] == ["app1", "app2"]
    assert str(outcome.verdict) == "GO"


# ---- rollouts ---------------------------------------------------------------------------

APPS = ["app1", "app2", "app3"]


@pytest.mark.parametrize(
    ("serial", "batches"),
    [
        (1, [["app1"], ["app2"], ["app3"]]),
        ("2", [["app1", "app2"], ["app3"]]),
        ("34%", [["app1"], ["app2"], ["app3"]]),  # a share rounds down, as Ansible's serial
        ("10%", [["app1"], ["app2"], ["app3"]]),  # ... to at least one host
        ("67%", [["app1", "app2"], ["app3"]]),
        (0, [APPS]),
        (None, [APPS]),
        ("100%", [APPS]),
        ([1, "100%"], [["app1"], ["app2", "app3"]]),  # a list: the last size repeats
        ([1, 5], [["app1"], ["app2", "app3"]]),
    ],
)
def test_serial_makes_ansibles_batches(serial: object, batches: list[list[str]]) -> None:
    assert rollout_batches(APPS, serial) == batches


@pytest.mark.parametrize("serial", ["half", "-1", "0%", "150%", True, ["1", "x"]])
def test_a_bad_serial_is_named(serial: object) -> None:
    with pytest.raises(FleetError, match=r"stagegate_serial: .* is not a number of hosts"):
        rollout_batches(APPS, serial)


@pytest.mark.parametrize(("raw", "value"), [(0, 0.0), ("25", 25.0), ("50%", 50.0), (None, 0.0)])
def test_the_failure_budget_is_a_share_of_a_batch(raw: object, value: float) -> None:
    assert failure_budget(raw) == value


@pytest.mark.parametrize("raw", ["many", -1, 101, True])
def test_a_bad_failure_budget_is_named(raw: object) -> None:
    with pytest.raises(FleetError, match=r"stagegate_max_fail_percentage: .* from 0 to 100"):
        failure_budget(raw)


def test_a_failed_first_batch_stops_the_rollout_and_names_who_never_moved() -> None:
    batches = rollout_batches(APPS, 1)
    out = batch_outcome(batches, 0, {"app1": "NO_GO: api_ready FAIL"})
    assert (out.stop, out.moved, out.waiting) == (True, ["app1"], ["app2", "app3"])
    assert out.message == (
        "batch 1/3 (app1): 1/1 hosts failed (100%); the rollout stops, app2, app3 never left "
        "the previous release; app1: NO_GO: api_ready FAIL"
    )
    ok = batch_outcome(batches, 1, {"app1": "an earlier batch's failure is not this one's"})
    assert (ok.stop, ok.failed, ok.moved) == (False, {}, ["app1", "app2"])
    assert ok.message == "batch 2/3 (app2): every host passed"


def test_the_failure_budget_lets_a_share_of_a_batch_fail_but_never_all_of_it() -> None:
    batches = [["a1", "a2", "a3", "a4"], ["a5"]]
    within = batch_outcome(batches, 0, {"a2": "unreachable"}, budget=25)
    assert not within.stop  # 25% failed is not above a budget of 25%
    assert "within the failure budget of 25%" in within.message
    assert batch_outcome(batches, 0, {"a2": "x", "a3": "y"}, budget=25).stop
    assert batch_outcome(batches, 1, {"a5": "x"}, budget=100).stop  # the whole batch failed
    with pytest.raises(FleetError, match="batch 3 of 2"):
        batch_outcome(batches, 2, {})


def record(release: str, verdict: str = "GO", **kw: Any) -> dict[str, Any]:
    return {"release": release, "verdict": verdict, "finished": "2026-11-30T10:00:00Z", **kw}


def test_a_batch_host_fails_on_an_error_no_report_or_a_critical_or_key_check() -> None:
    def result(name: str, status: str, severity: str = "critical") -> dict[str, str]:
        return {"name": name, "status": status, "severity": severity}

    reports = {
        "app1": {"error": "unreachable: ssh: connect to host 127.0.0.1 port 2201"},
        "app2": {"results": [result("api_ready", "PASS"), result("disk", "FAIL", "warning")]},
        "app3": {"results": [result("api_ready", "ERROR"), result("items", "FAIL")]},
        "app4": {"results": [result("latency", "WARN", "warning"), result("lat", "FAIL", "info")]},
    }
    failed = batch_failures(["app1", "app2", "app3", "app4", "app5"], reports, ["lat"])
    assert failed == {
        "app1": "unreachable: ssh: connect to host 127.0.0.1 port 2201",
        "app3": "failed api_ready ERROR, items FAIL",
        "app4": "failed lat FAIL",  # a key check, whatever its severity
        "app5": "no check results",
    }
    outcome = batch_outcome([["app2", "app3"], ["app4"]], 0, failed, 50)
    assert (outcome.stop, outcome.failed) == (False, {"app3": "failed api_ready ERROR, items FAIL"})


def test_the_fleet_rolls_back_to_the_ledgers_good_release_in_one_plan() -> None:
    """The rule of a single host's rollback (rollback_plan), over the hosts' releases."""
    records = [record("v1"), record("v2-crashloop", "NO_GO")]
    # a serial rollout stopped after its first batch: app1 moved, the others did not
    plan = fleet_rollback_plan(records, {"app1": "v2-crashloop", "app2": "v1", "app3": "v1"})
    assert (plan["release"], plan["current"]) == ("v1", "v2-crashloop")
    assert (plan["move"], plan["stay"]) == (["app1"], ["app2", "app3"])
    assert not plan["nothing_to_do"]
    assert plan["summary"] == (
        "roll back app1 (v2-crashloop) to v1 (last good release in the ledger "
        "(GO 2026-11-30T10:00:00Z)); app2, app3 already run it"
    )
    # every host on a good v2: no input goes back one good release, as on one host
    promoted = [record("v1"), record("v2")]
    plan = fleet_rollback_plan(promoted, {"app1": "v2", "app2": "v2"})
    assert (plan["release"], plan["move"]) == ("v1", ["app1", "app2"])
    # an interrupted fleet rollback: the hosts still on v2 move, a re-run converges
    plan = fleet_rollback_plan(promoted, {"app1": "v1", "app2": "v2"})
    assert (plan["release"], plan["move"]) == ("v1", ["app2"])
    # a release the ledger never recorded counts as the one running now
    assert fleet_rollback_plan(promoted, {"app1": "hotfix", "app2": "v2"})["release"] == "v2"
    # after the fleet's rollback (its ledger record), a re-run has nothing left to do
    rolled = [*promoted, record("v1", kind="rollback", rolled_back_from="v2"),
              record("v1", kind="revalidation")]  # fmt: skip
    done = fleet_rollback_plan(rolled, {"app1": "v1", "app2": "v1"})
    assert (done["nothing_to_do"], done["release"]) == (True, "v1")
    assert done["summary"] == "every app host runs v1, rolled back from v2: nothing to do"
    # a host still on v2 after it (an interrupted run) is planned; a named release is gone to
    again = fleet_rollback_plan(rolled, {"app1": "v1", "app2": "v2"})
    assert (again["release"], again["current"], again["move"]) == ("v1", "v2", ["app2"])
    assert again["reason"] == "finishes the rollback from v2"
    named = fleet_rollback_plan(rolled, {"app1": "v1", "app2": "v2"}, target="v1")
    assert (named["current"], named["reason"]) == ("v2", "named by stagegate_rollback_to")
    further = fleet_rollback_plan(rolled, {"app1": "v1"}, target="v0")
    assert (further["current"], further["move"]) == ("v1", ["app1"])
    named = fleet_rollback_plan(promoted, {"app1": "v1"}, target="v1")
    assert named["nothing_to_do"]
    assert named["summary"] == "every app host runs v1: nothing to do"
    with pytest.raises(FleetError, match=r"stagegate_rollback_to: no previous good release"):
        fleet_rollback_plan([record("v2")], {"app1": "v2"})


def test_the_database_is_put_back_only_while_no_app_host_runs_the_target() -> None:
    """The database host's own plan decides (restore what the bad release migrated) while every
    app host leaves it; app hosts already on the target served from it since, so it stays."""
    promoted = [record("v1"), record("v2")]
    every = fleet_rollback_plan(promoted, {"app1": "v2", "app2": "v2"})
    assert fleet_rollback_database(every)["setting"] == "auto"
    stopped_rollout = fleet_rollback_plan(
        [record("v1"), record("v2-crashloop", "NO_GO")], {"app1": "v2-crashloop", "app2": "v1"}
    )
    kept = fleet_rollback_database(stopped_rollout)
    assert kept["setting"] == "none"
    assert kept["reason"].startswith("app2 already run v1 on the database as it is")
    # said explicitly, it is done; nothing moves, nothing happens
    assert fleet_rollback_database(stopped_rollout, "restore")["setting"] == "restore"
    assert fleet_rollback_database(every, "none")["setting"] == "none"
    done = fleet_rollback_plan(promoted, {"app1": "v1"}, target="v1")
    assert fleet_rollback_database(done, "restore")["setting"] == "none"
    with pytest.raises(FleetError, match=r"stagegate_rollback_database: 'drop' is not one of"):
        fleet_rollback_database(every, "drop")


ID_A, ID_B = f"sha256:{'a' * 64}", f"sha256:{'b' * 64}"
BUILT = {
    "worker": {"image": "sb/worker:v2", "release_image": "sb/worker:v2", "id": ID_B},
    "api": {"image": "sb/api:v2", "release_image": "sb/api:v2", "id": ID_A},
}
SAME = {"sb/api:v2": ID_A, "sb/worker:v2": ID_B}


def test_images_built_once_and_held_by_every_app_host_make_one_manifest() -> None:
    plan = fleet_images(BUILT, {"app1": SAME, "app2": SAME, "app3": SAME})
    assert plan["agree"]
    assert plan["manifest"] == {
        "api": {"image": "sb/api:v2", "id": ID_A},
        "worker": {"image": "sb/worker:v2", "id": ID_B},
    }
    assert plan["message"] == "all 3 app hosts hold the 2 images of the build"


def test_a_host_lacking_an_image_or_holding_another_build_is_named() -> None:
    other = {**SAME, "sb/api:v2": "sha256:" + "c" * 64}
    plan = fleet_images(BUILT, {"app1": SAME, "app2": {**SAME, "sb/worker:v2": ""}, "app3": other})
    assert not plan["agree"]
    assert plan["missing"] == {"app2": ["sb/worker:v2"]}
    assert plan["different"] == {"app3": {"sb/api:v2": "sha256:" + "c" * 64}}
    assert plan["message"] == (
        "app2 lacks sb/worker:v2; app3 holds another sb/api:v2 (sha256:cccccccccccc, "
        "the build made sha256:aaaaaaaaaaaa)"
    )


def test_save_load_copies_to_each_host_only_what_it_lacks_or_holds_another_build_of() -> None:
    other = {**SAME, "sb/api:v2": "sha256:" + "c" * 64}
    seen = {"app1": SAME, "app2": {**SAME, "sb/worker:v2": ""}, "app3": other, "app4": {}}
    plan = fleet_images(BUILT, seen, source="app1", copy="save_load")
    assert not plan["agree"]
    assert plan["stop"] == ""
    assert plan["copies"] == {
        "app2": ["sb/worker:v2"],
        "app3": ["sb/api:v2"],
        "app4": ["sb/api:v2", "sb/worker:v2"],
    }
    assert plan["copy_message"] == (
        "sb/worker:v2 from app1 to app2; sb/api:v2 from app1 to app3; "
        "sb/api:v2, sb/worker:v2 from app1 to app4"
    )


def test_a_fleet_that_holds_the_build_copies_nothing() -> None:
    plan = fleet_images(BUILT, {"app1": SAME, "app2": SAME}, source="app1", copy="save_load")
    assert plan["agree"]
    assert (plan["copies"], plan["copy_message"], plan["stop"]) == ({}, "", "")


def test_copy_none_stops_naming_the_hosts_without_the_build() -> None:
    plan = fleet_images(BUILT, {"app1": SAME, "app2": {}}, source="app1", copy="none")
    assert plan["copies"] == {}
    assert plan["stop"] == (
        "app2 lacks sb/api:v2, sb/worker:v2 (stagegate_fleet_image_copy is none: nothing is copied)"
    )


def test_a_build_host_without_its_own_build_has_nothing_to_copy_from() -> None:
    plan = fleet_images(BUILT, {"app1": {}, "app2": SAME}, source="app1", copy="save_load")
    assert plan["stop"] == (
        "the build host app1 does not hold its own build, nothing to copy from: "
        "app1 lacks sb/api:v2, sb/worker:v2"
    )


def test_an_unknown_copy_mode_is_refused_naming_the_key_and_the_choices() -> None:
    with pytest.raises(
        FleetError, match=r"stagegate_fleet_image_copy: 'scp' is not one of save_load \(.*\), none"
    ):
        fleet_images(BUILT, {"app1": SAME}, source="app1", copy="scp")


def test_the_copy_reaches_each_host_as_ansible_does() -> None:
    argv = ssh_command(
        "app3",
        {
            "ansible_host": "10.0.0.13",
            "ansible_port": 2203,
            "ansible_user": "deploy",
            "ansible_ssh_private_key_file": "~/.ssh/fleet",
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o ProxyJump='bastion'",
        },
    )
    assert argv == [
        "ssh", "-o", "BatchMode=yes", "-p", "2203", "-i", os.path.expanduser("~/.ssh/fleet"),
        "-l", "deploy", "-o", "StrictHostKeyChecking=no", "-o", "ProxyJump=bastion", "10.0.0.13",
    ]  # fmt: skip
    assert ssh_command("app1", {"ansible_ssh_host": "app1.example.com"})[-1] == "app1.example.com"
    assert ssh_command("app1", {}) == ["ssh", "-o", "BatchMode=yes", "app1"]
    assert remote_command(["ssh", "app1"], ["docker", "save", "sb/api:v2", "a b"]) == [
        "ssh", "app1", "docker save sb/api:v2 'a b'"
    ]  # fmt: skip
    # The controller itself runs its end directly.
    assert ssh_command("ctl", {"ansible_connection": "local"}) == []
    assert remote_command([], ["docker", "load"]) == ["docker", "load"]
    with pytest.raises(FleetError, match=r"ansible_connection: app2 is reached by 'winrm'"):
        ssh_command("app2", {"ansible_connection": "winrm"})


def test_a_refused_fleet_promotion_names_what_was_asked() -> None:
    """A trial's fleet `--check` was refused with every possible reason listed."""
    asked = {"check_mode": False, "run_tags": ["all"], "skip_tags": [], "adopt_release": ""}
    assert promotion_refusals(["db1"], **asked, strategy="compose") == []
    assert promotion_refusals(["db1"], **{**asked, "check_mode": True}, strategy="compose") == [
        "--check: a fleet promotion has no check mode yet (validate.yml grades what runs, "
        "rollback.yml --check plans a fleet's rollback)"
    ]
    reasons = promotion_refusals(
        ["db1", "db2"],
        check_mode=False,
        run_tags=["deploy"],
        skip_tags=["build"],
        adopt_release="v1",
        strategy="symlink",
    )
    assert reasons == [
        "it needs exactly one stagegate_db host (found: db1, db2)",
        "--tags deploy --skip-tags build: a fleet promotion runs every phase",
        "stagegate_adopt_release=v1: a fleet's running release cannot be adopted yet",
        "stagegate_deploy_strategy=symlink: a fleet runs the compose strategy",
    ]
