"""One rule each (#14 "one of each"): which ledger record is a release's deploy, its
re-validations and the last good release; a run's id and owner; the check-mode rule of both
check runners. The playbook tests (test_staging's validate.yml run, test_runbook_validate_only,
test_preflight_playbook's run identity, test_rollback) drive the callers."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.stagegate.release.plugins.filter.releases import (
    FilterModule as ReleaseFilters,
)
from ansible_collections.stagegate.release.plugins.filter.revalidation import FilterModule
from ansible_collections.stagegate.release.plugins.module_utils import _ledger, _run_identity
from ansible_collections.stagegate.release.plugins.module_utils._checks_common import (
    CheckError,
    CheckType,
    FinalCheckError,
    Outcome,
)
from ansible_collections.stagegate.release.plugins.module_utils._checks_runner import (
    NOT_READ_ONLY,
    run_checks_here,
)
from ansible_collections.stagegate.release.plugins.module_utils._rollback import (
    considered_releases,
)

from stagegate import ledger
from stagegate.catalog import load_catalog
from stagegate.engine import run_checks
from stagegate.gatekeeper import who_ran
from stagegate.results import Status

FILTERS = FilterModule().filters()

LEDGER: list[dict[str, Any]] = [
    {"release": "v1", "verdict": "GO", "run_id": "r1", "finished": "t1", "score": 99},
    {"release": "v2", "verdict": "GO", "run_id": "r2", "finished": "t2", "score": 97},
    {"release": "v2", "verdict": "GO", "kind": "revalidation", "finished": "t3", "score": 96},
    {"release": "v2", "verdict": "NO_GO", "kind": "revalidation", "finished": "t4", "score": 50},
    {"release": "v1", "verdict": "GO", "kind": "rollback", "run_id": "r5", "finished": "t5"},
    {"release": "current", "verdict": "GO", "kind": "validation", "finished": "t6", "score": 90},
]


def test_the_deploy_record_is_the_newest_good_promotion_of_the_release() -> None:
    assert _ledger.deploy_record(LEDGER, "v2")["run_id"] == "r2"
    assert _ledger.deploy_record(LEDGER, "v1")["run_id"] == "r1"  # not the rollback record
    assert _ledger.deploy_record(LEDGER, "current") is None  # a validation is no deploy
    assert FILTERS["deploy_record"](LEDGER, "v9") == {}


def test_a_validation_only_run_is_never_the_last_good_release() -> None:
    # Failed before: the validation-only record of "current" came back as the baseline.
    assert _ledger.last_good(LEDGER)["release"] == "v1"
    assert _ledger.last_good(LEDGER, "v1")["release"] == "v2"
    considered = {c["release"] for c in considered_releases(LEDGER, "v2", "/nonexistent")}
    assert considered == {"v1", "v2"}


def test_revalidations_are_of_one_release_and_one_kind() -> None:
    finished = [r["finished"] for r in _ledger.revalidations(LEDGER, "v2")]
    assert finished == ["t3", "t4"]
    assert _ledger.revalidations(LEDGER, "current", _ledger.VALIDATION)[0]["score"] == 90
    assert [_ledger.is_revalidation(r) for r in LEDGER[-3:]] == [True, False, True]


def test_the_trend_line_is_the_deploy_then_the_last_ten_revalidations() -> None:
    record = {"release": "v2", "kind": "revalidation", "verdict": "GO", "score": 95}
    line = FILTERS["revalidation_trend"](LEDGER, record, _ledger.deploy_record(LEDGER, "v2"))
    assert line == "v2 since its deploy (t2, score 97%): t3 GO 96%; t4 NO_GO 50%; ? GO 95%"
    many = [{**LEDGER[2], "finished": f"n{i}"} for i in range(12)]
    line = FILTERS["revalidation_trend"](many, record, {})
    assert line.startswith("v2 since its deploy (?, score ?%): n3 GO 96%; ")
    assert line.count(";") == 9
    # A target stagegate only validates has no deploy: its validations, no "since its deploy (?".
    validation = {"release": "current", "kind": "validation", "verdict": "GO", "score": 80}
    line = FILTERS["revalidation_trend"](LEDGER, validation, None, True)
    assert line == "current validations: t6 GO 90%; ? GO 80%"


def test_baseline_items_become_stability_gates_after_the_inventory_rules() -> None:
    gates = {"rules": [{"name": "own", "type": "min_score", "min": 80}], "score": {}}
    baseline = [
        {"check": "api_latency", "metric": "p95_ms", "max_regression": "50%"},
        {"check": "db", "metric": "rows", "max_regression": 10, "direction": "higher_is_better",
         "critical": True},
    ]  # fmt: skip
    out = FILTERS["revalidation_gates"](gates, baseline)
    assert out["score"] == {}
    assert out["rules"][0]["name"] == "own"
    assert out["rules"][1] == {
        "name": "stable since deploy: api_latency p95_ms",
        "type": "baseline",
        "check": "api_latency",
        "metric": "p95_ms",
        "max_regression": "50%",
        "direction": "lower_is_better",
        "critical": False,
        "category": "stability",
    }
    assert (out["rules"][2]["direction"], out["rules"][2]["critical"]) == ("higher_is_better", True)
    assert FILTERS["revalidation_gates"]({}, []) == {"rules": []}
    with pytest.raises(AnsibleFilterError, match=r"stagegate_validate_baseline\[0\]: metric"):
        FILTERS["revalidation_gates"](gates, [{"check": "x", "max_regression": 1}])


def test_the_run_identity_is_one_rule_for_preflight_the_gate_and_rollback() -> None:
    local: dict[str, Any] = {}
    assert _run_identity.run_id(local, environ={}) == _run_identity.playbook_run_id()
    owner = _run_identity.run_owner(local, environ={})
    assert owner == _run_identity.default_owner()
    awx = {"awx_job_id": 42, "awx_user_name": "release-bot"}
    assert _run_identity.run_identity(awx, environ={}) == {
        "stagegate_run_id": "awx-42",
        "stagegate_run_owner": f"release-bot@{owner.split('@', 1)[1]} (AWX job 42)",
    }
    assert _run_identity.run_id({}, environ={"JOB_ID": "7"}) == "awx-7"
    given = {"stagegate_run_id": "mine", "stagegate_run_owner": "me@here", "awx_job_id": 42}
    assert _run_identity.run_identity(given) == {
        "stagegate_run_id": "mine",
        "stagegate_run_owner": "me@here",
    }
    # The report's run_by is the run's owner, with the AWX job id beside it.
    assert who_ran(given) == ("me@here", "42")
    assert who_ran(awx)[0] == _run_identity.run_owner(awx)


def test_the_controller_process_is_known_alive_only_here() -> None:
    me = _run_identity.controller_identity()
    assert me["pid_start"]
    assert _run_identity.is_alive_here(me)
    assert not _run_identity.is_alive_here({**me, "pid_start": "1"})
    assert not _run_identity.is_alive_here({**me, "host": "elsewhere"})
    assert not _run_identity.is_alive_here({})


RAN: list[str] = []


def _writes(options: dict[str, Any], context: Any) -> Outcome:
    RAN.append(options["what"])
    return Outcome("PASS", "wrote")


WRITES = CheckType(
    name="writes", options={"what": {"type": "str"}}, run=_writes, read_only=lambda o: False
)


class _HooksWith:
    """The real hooks, with one more check type (the engine's side of a two-runner test)."""

    def __init__(self, extra: CheckType) -> None:
        from stagegate.plugins import get_hooks  # noqa: PLC0415

        self.real = get_hooks()
        self.extra = extra

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def check_types(self) -> dict[str, CheckType]:
        return {**self.real.check_types(), self.extra.name: self.extra}


def test_check_mode_runs_only_read_only_checks_in_both_runners() -> None:
    entries = [
        {"name": "w", "type": "writes", "options": {"what": "w"}},
        {"name": "ro", "type": "writes", "options": {"what": "ro"}, "read_only": True},
    ]
    specs = load_catalog(entries, {"writes": WRITES})
    RAN.clear()
    host = run_checks_here([s.to_dict() for s in specs], {"writes": WRITES}, 2, check_mode=True)
    assert [(o["status"], o["message"]) for o in host] == [
        ("SKIP", NOT_READ_ONLY),
        ("PASS", "wrote"),
    ]
    assert RAN == ["ro"]

    RAN.clear()
    results = run_checks(specs, hooks=_HooksWith(WRITES), check_mode=True)  # type: ignore[arg-type]
    assert [(r.status, r.message) for r in results] == [
        (Status.SKIP, NOT_READ_ONLY),
        (Status.PASS, "wrote"),
    ]
    assert RAN == ["ro"]


def test_the_previous_release_is_the_interrupted_deploys_else_the_marker_else_git() -> None:
    previous = ReleaseFilters().filters()["previous_release"]
    interrupted = {"release": "v2", "previous_release": "v1", "run_id": "r9"}
    assert previous("v2\n", interrupted, "") == "v1"  # resuming v2: v1 ran before it
    assert previous("v2\n", {"release": "v2", "previous_release": None}) == ""
    assert previous("v1\n", {}, "") == "v1"
    assert previous("", {}, "v0-3-gabc123\n") == "v0-3-gabc123"
    assert previous(None) == ""
    with pytest.raises(AnsibleFilterError, match="interrupted: expected"):
        previous("v1", "v0")


def test_the_controller_reads_the_same_ledger_rules() -> None:
    assert ledger.deploy_record(LEDGER, "v2") is _ledger.deploy_record(LEDGER, "v2")
    assert ledger.revalidations(LEDGER, "v2") == _ledger.revalidations(LEDGER, "v2")
    assert ledger.last_good(LEDGER) is _ledger.last_good(LEDGER)


def _refused(options: dict[str, Any], context: Any) -> Outcome:
    RAN.append(options["what"])
    raise (FinalCheckError if options["what"] == "refused" else CheckError)(options["what"])


REFUSED = CheckType(name="refused", options={"what": {"type": "str"}}, run=_refused)


def test_a_final_error_is_not_retried_in_both_runners() -> None:
    """A refusal another attempt cannot change (a wrong password) is tried once; any other
    error as many times as `retries` allows, in the host module's runner and the engine."""
    entries = [
        {"name": n, "type": "refused", "options": {"what": n}, "retries": 2, "delay": 0}
        for n in ("refused", "down")
    ]
    specs = load_catalog(entries, {"refused": REFUSED})
    RAN.clear()
    host = run_checks_here([s.to_dict() for s in specs], {"refused": REFUSED}, 1, False)
    assert [(o["status"], o["attempts"]) for o in host] == [("ERROR", 1), ("ERROR", 3)]
    assert sorted(RAN) == ["down", "down", "down", "refused"]

    RAN.clear()
    results = run_checks(specs, hooks=_HooksWith(REFUSED), concurrency=1)  # type: ignore[arg-type]
    assert [(r.status, r.attempts) for r in results] == [(Status.ERROR, 1), (Status.ERROR, 3)]
    assert results[0].details["not_retried"] == "another attempt gets the same"
