"""Grading, gates, verdict and recommendations on typed records (no Ansible)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stagegate.bands import Bands
from stagegate.gatekeeper import GateRequest, gate_plugin_manager, plugin_gate_types, run_gate
from stagegate.gates import (
    GateConfigError,
    GateResult,
    GateRule,
    GateType,
    evaluate_gates,
    validate_gates,
)
from stagegate.grading import Threshold, apply_grade, default_grade
from stagegate.hookspecs import hookimpl
from stagegate.plugins import Hooks
from stagegate.profiles import load_profiles
from stagegate.results import CheckResult, Severity, Status
from stagegate.verdict import Decision, decide, manual_items, recommendations

FIXTURES = Path(__file__).parent.parent / "fixtures"
SEED003 = "seed003_load_simulation"


def check(name: str, status: str = "PASS", group: str = "api", **kw: Any) -> CheckResult:
    return CheckResult(name=name, group=group, type="http", status=Status(status), **kw)


def config(spec: dict[str, Any], names: list[str] | None = None):  # type: ignore[no-untyped-def]
    pm = gate_plugin_manager()
    return validate_gates(spec, names, None, plugin_gate_types(pm), profiles=load_profiles())


# ---- grading -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p95", "expected"),
    [(980.0, Status.PASS), (1200.0, Status.PASS), (1650.0, Status.WARN), (2400.0, Status.FAIL)],
)
def test_threshold_bands_grade_the_metric(p95: float, expected: Status) -> None:
    threshold = Threshold.parse(
        "api_latency", {"metric": "p95_ms", "unit": "ms", "pass": "<= 1.2s", "warn": "<= 2s"}
    )
    grade = default_grade(check("api_latency", metrics={"p95_ms": p95}), threshold)
    assert grade.status is expected
    assert grade.threshold == "p95_ms: PASS <= 1.2 s, WARN <= 2 s"


def test_severity_caps_a_failure_and_grading_twice_changes_nothing() -> None:
    failed = check("headers", "FAIL", severity=Severity.WARNING)
    once = apply_grade(failed, default_grade(failed))
    twice = apply_grade(once, default_grade(once))
    assert (once.status, twice.status) == (Status.WARN, Status.WARN)
    assert once.details["check_status"] == twice.details["check_status"] == "FAIL"
    critical = check("health", "FAIL")
    assert default_grade(critical).status is Status.FAIL


def test_missing_metric_is_an_error_not_a_pass() -> None:
    threshold = Threshold.parse("api", {"metric": "p95_ms", "pass": "<= 100ms"})
    grade = default_grade(check("api", metrics={"avg_ms": 3.0}), threshold)
    assert grade.status is Status.ERROR
    assert "p95_ms" in grade.reason


# ---- gates over checks ------------------------------------------------------------------


def test_suite_pass_rates_use_test_counts_seed000_table() -> None:
    spec = {
        "rules": [
            {"name": "unit", "type": "pass_rate", "checks": ["unit"], "min": "99%"},
            {
                "name": "integration",
                "type": "pass_rate",
                "checks": ["integ"],
                "min": 95,
                "critical": False,
            },
        ]
    }
    checks = [
        # the `suite` check's metrics (tests/passed/skipped, as junit_counts reports them)
        check("unit", metrics={"tests": 100, "passed": 98, "skipped": 0}),
        check("integ", metrics={"tests": 102, "passed": 90, "skipped": 2}),
    ]
    unit, integ = evaluate_gates(config(spec, ["unit", "integ"]), checks)
    assert (unit.status, unit.value) == (Status.FAIL, 98.0)
    assert integ.status is Status.WARN  # non-critical suite below its minimum only warns
    verdict = decide(checks, [unit, integ], None)
    assert verdict.decision is Decision.NO_GO
    assert any("unit" in b for b in verdict.blockers)


def test_key_check_fails_the_release_on_its_own() -> None:
    checks = [
        check("health", "FAIL", severity=Severity.WARNING),
        *(check(f"c{i}") for i in range(9)),
    ]
    graded = [apply_grade(c, default_grade(c)) for c in checks]
    cfg = config({"key_checks": ["health"]}, [c.name for c in checks])
    gates = evaluate_gates(cfg, graded)
    assert gates[0].name == "key check health"
    assert gates[0].status is Status.FAIL
    assert decide(graded, gates, None).decision is Decision.NO_GO


def test_weighted_score_with_pass_and_warning_percentages() -> None:
    checks = [check("a"), check("b", "WARN"), check("c", "FAIL", severity=Severity.WARNING)]
    graded = [apply_grade(c, default_grade(c)) for c in checks]  # c becomes WARN
    cfg = config(
        {"weights": {"a": 2}, "score": {"pass": ">= 90%", "warn": ">= 60%"}}, ["a", "b", "c"]
    )
    verdict = decide(graded, [], cfg.score_bands, cfg.weights)
    assert verdict.score == 75.0  # (2*1 + 0.5 + 0.5) / 4
    assert verdict.decision is Decision.GO_WITH_WARNINGS
    cfg_high = config({"score": {"pass": ">= 95%", "warn": ">= 80%"}}, ["a", "b", "c"])
    assert decide(graded, [], cfg_high.score_bands).decision is Decision.NO_GO


def test_a_stopped_run_scores_zero_whatever_ran_before_the_stop() -> None:
    """A trial's crash-looping deploy came out "NO_GO, readiness score 100.0%": the migration
    dry-run, the one check that ran before the stop, had passed."""
    dryrun = check("migration_dryrun")
    stopped = {"phase": "deploy", "reason": "service api: crash loop"}
    verdict = decide([dryrun], [], None, stopped=stopped)
    assert (verdict.decision, verdict.score) == (Decision.NO_GO, 0.0)
    assert decide([dryrun], [], None).score == 100.0


def test_baseline_gate_compares_with_last_good_release() -> None:
    rule = {
        "name": "p95 regression",
        "type": "baseline",
        "check": "lat",
        "metric": "p95_ms",
        "max_regression": "10%",
    }
    cfg = config({"rules": [rule]}, ["lat"])
    base = {"lat": {"p95_ms": 100.0}}
    ok = evaluate_gates(cfg, [check("lat", metrics={"p95_ms": 108.0})], base)[0]
    bad = evaluate_gates(cfg, [check("lat", metrics={"p95_ms": 125.0})], base)[0]
    first = evaluate_gates(cfg, [check("lat", metrics={"p95_ms": 125.0})], {})[0]
    assert ok.status is Status.PASS
    assert bad.status is Status.FAIL
    assert "+25.0%" in bad.message
    assert first.status is Status.SKIP  # no last good release yet


# ---- seed 003 profile ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "verdict", "statuses"),
    [
        ("pass", Decision.GO, {"PASS"}),
        ("warn", Decision.GO_WITH_WARNINGS, {"PASS", "WARN"}),
        ("fail", Decision.NO_GO, {"PASS", "WARN", "FAIL"}),
    ],
)
def test_seed003_results_file_graded(fixture: str, verdict: Decision, statuses: set[str]) -> None:
    cfg = config(
        {
            "profiles": [SEED003],
            "results_files": {"load_simulation": str(FIXTURES / f"seed003_{fixture}.json")},
        }
    )
    gates = evaluate_gates(cfg, [])
    by_name = {g.name: g for g in gates}
    assert {str(g.status) for g in gates} == statuses
    assert decide([], gates, None).decision is verdict
    if fixture == "warn":
        assert by_name["load: state flapping"].status is Status.WARN  # 6 > 4, nothing failed
        assert by_name["load: failure rate per task type"].message == "outside PASS: entity=3.4%"
    if fixture == "fail":
        assert by_name["load: retry cap"].status is Status.FAIL  # hard fail
        assert by_name["load: state flapping"].status is Status.FAIL  # combined with failures
        assert "scheduled_report=7.5%" in by_name["load: failure rate per task type"].message
        drain = by_name["load: queue drain"]
        assert "57.1%" in drain.message
        assert "58.3%" in drain.message


def test_seed003_tuning_rule_recommends_more_workers() -> None:
    cfg = config(
        {
            "profiles": [SEED003],
            "results_files": {"load_simulation": str(FIXTURES / "seed003_warn.json")},
        }
    )
    gates = evaluate_gates(cfg, [])
    advice = recommendations(cfg.recommendations, gates, Decision.GO_WITH_WARNINGS)
    ids = [a["id"] for a in advice]
    assert "scale-workers" in ids
    assert "readiness-warn" in ids
    passing = evaluate_gates(cfg, [], documents={"load_simulation": _load("seed003_pass.json")})
    assert "scale-workers" not in [
        a["id"] for a in recommendations(cfg.recommendations, passing, Decision.GO)
    ]


def test_seed003_readiness_estimate_from_the_load_gates_only() -> None:
    """All load gates PASS reads 97-98% even when an unrelated check warns (the verdict is
    GO_WITH_WARNINGS); before, the estimate followed the verdict and read 95-96%."""
    cfg = config(
        {
            "profiles": [SEED003],
            "results_files": {"load_simulation": str(FIXTURES / "seed003_pass.json")},
        }
    )
    gates = evaluate_gates(cfg, [])
    advice = recommendations(cfg.recommendations, gates, Decision.GO_WITH_WARNINGS)
    ids = {a["id"] for a in advice}
    assert "readiness-all-pass" in ids
    assert not ids & {"readiness-warn", "readiness-fail"}
    failing = evaluate_gates(cfg, [], documents={"load_simulation": _load("seed003_fail.json")})
    ids = {a["id"] for a in recommendations(cfg.recommendations, failing, Decision.NO_GO)}
    assert "readiness-fail" in ids
    assert "readiness-all-pass" not in ids


def test_seed003_parameters_replace_what_the_runbook_names_no_field_for() -> None:
    """The load phase comes from --load-phase-seconds (a parameter), polling failures from a
    JMESPath parameter; the results file needs only the runbook's own fields."""
    doc = _load("seed003_pass.json")
    doc["Failure Metrics"]["health_metrics_polling_failures"] = 3
    doc["Failure Metrics"]["polls_failed"] = 3
    default = config({"profiles": [SEED003], "results_files": {"load_simulation": "x.json"}})
    by_name = {g.name: g for g in evaluate_gates(default, [], documents={"load_simulation": doc})}
    assert by_name["load: health metrics polling"].status is Status.FAIL  # hard fail
    assert by_name["load: degraded-state share"].status is Status.PASS  # 30 s of 300 s
    tuned = config(
        {
            "profiles": [
                {
                    "name": SEED003,
                    "load_phase_seconds": 100,
                    "polling_failures": '"Failure Metrics".polls_failed',
                    "max_polling_failures": "<= 5",
                }
            ],
            "results_files": {"load_simulation": "x.json"},
        }
    )
    by_name = {g.name: g for g in evaluate_gates(tuned, [], documents={"load_simulation": doc})}
    assert by_name["load: health metrics polling"].status is Status.PASS
    assert by_name["load: degraded-state share"].status is Status.WARN  # 30 s of 100 s
    with pytest.raises(GateConfigError, match=r"unknown parameter\(s\) \['load_seconds'\]"):
        config({"profiles": [{"name": SEED003, "load_seconds": 1}]})


def _load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


# ---- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        (
            {"rules": [{"name": "g1", "type": "pass_rate", "checks": ["nope"], "min": "99%"}]},
            "gate 'g1' (pass_rate), key 'checks': names check 'nope'",
        ),
        (
            {
                "rules": [
                    {
                        "name": "g2",
                        "type": "value",
                        "file": "f",
                        "query": "a.b",
                        "pass": "fast enough",
                    }
                ]
            },
            "gate 'g2' (value), key 'pass/warn'",
        ),
        (
            {
                "rules": [
                    {"name": "g3", "type": "value", "file": "f", "query": "a[?", "pass": "<= 1"}
                ]
            },
            "gate 'g3' (value), key 'query': JMESPath 'a[?'",
        ),
        (
            {
                "rules": [
                    {"name": "g4", "type": "value", "file": "other", "query": "a", "pass": "<= 1"}
                ]
            },
            "gate 'g4' (value), key 'file': 'other' is not declared",
        ),
        ({"rules": [{"name": "g5", "type": "teleport"}]}, "gate 'g5' (teleport), key 'type'"),
        (
            {
                "rules": [
                    {
                        "name": "g6",
                        "type": "value",
                        "file": "f",
                        "query": "a",
                        "pass": "<= 1",
                        "qurey": "x",
                    }
                ]
            },
            "gate 'g6' (value), key 'qurey': not an option",
        ),
        ({"key_checks": ["ghost"]}, "stagegate_gates.key_checks: names check 'ghost'"),
        ({"profiles": ["seed999"]}, "unknown profile 'seed999'"),
    ],
)
def test_bad_gate_configuration_names_the_gate_and_key(spec: dict[str, Any], needle: str) -> None:
    spec = {"results_files": {"f": "/nonexistent.json"}, **spec}
    with pytest.raises(GateConfigError) as info:
        config(spec, ["known"])
    assert needle in str(info.value)


def test_missing_or_malformed_results_file_is_an_error_naming_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    rule = {"name": "p95", "type": "value", "file": "load", "query": "a", "pass": "<= 1"}
    for path, needle in ((tmp_path / "missing.json", "file not found"), (broken, "not valid JSON")):
        cfg = config({"rules": [rule], "results_files": {"load": str(path)}})
        gate = evaluate_gates(cfg, [])[0]
        assert gate.status is Status.ERROR
        assert "'load'" in gate.message
        assert needle in gate.message
        assert decide([], [gate], None).decision is Decision.NO_GO


def test_query_that_finds_no_number_is_an_error() -> None:
    rule = {"name": "p95", "type": "value", "file": "load", "query": "nothing.here", "pass": "<= 1"}
    cfg = config({"rules": [rule], "results_files": {"load": "unused"}})
    gate = evaluate_gates(cfg, [], documents={"load": {"a": 1}})[0]
    assert gate.status is Status.ERROR
    assert "expected a number" in gate.message


# ---- verdict policy, manual items, plugin gate types ------------------------------------------


def test_strict_policy_plugin_turns_warnings_into_no_go() -> None:
    hooks = Hooks(gate_plugin_manager())
    args = {"verdict": "GO_WITH_WARNINGS", "results": [], "gates": []}
    assert hooks.adjust_verdict(**args, config={"strict": True}) == "NO_GO"
    assert hooks.adjust_verdict(**args, config={}) == "GO_WITH_WARNINGS"
    assert hooks.adjust_verdict(verdict="GO", results=[], gates=[], config={"strict": True}) == "GO"


def test_manual_items_pending_until_confirmed_by_a_named_person() -> None:
    items = [
        {"name": "owasp_review", "category": "security"},
        {"name": "dr_drill", "blocking": True},
        {"name": "alerts"},
    ]
    results = {
        r.name: r
        for r in manual_items(
            items, {"owasp_review": "alice@2026-11-22T10:00Z", "alerts": {"by": "bob"}}
        )
    }
    assert results["owasp_review"].status is Status.PASS
    assert results["owasp_review"].details["confirmed"] == {
        "by": "alice",
        "at": "2026-11-22T10:00Z",
    }
    assert results["alerts"].status is Status.PASS
    assert results["dr_drill"].status is Status.FAIL  # blocking and pending
    assert "pending" in results["dr_drill"].message
    emails = manual_items(
        [{"name": "a"}, {"name": "b"}],
        {"a": "carol@example.com@2026-11-21", "b": "dave@example.com"},
    )
    assert [r.details["confirmed"] for r in emails] == [
        {"by": "carol@example.com", "at": "2026-11-21"},
        {"by": "dave@example.com", "at": ""},
    ]
    pending = manual_items([{"name": "x"}], {})[0]
    assert pending.status is Status.WARN


def test_a_plugin_gate_type_is_registered_through_the_hook() -> None:
    def evaluate(rule: GateRule, ctx: Any) -> GateResult:
        return rule.result(
            Status.PASS if len(ctx.checks) >= rule.options["n"] else Status.FAIL,
            f"{len(ctx.checks)} checks",
        )

    class AtLeast:
        @hookimpl
        def stagegate_gate_types(self) -> list[GateType]:
            return [GateType("at_least", frozenset({"n"}), lambda rule, ctx: None, evaluate)]

    pm = gate_plugin_manager()
    pm.register(AtLeast())
    cfg = validate_gates(
        {"rules": [{"name": "enough", "type": "at_least", "n": 2}]},
        types=plugin_gate_types(pm),
    )
    assert evaluate_gates(cfg, [check("a")])[0].status is Status.FAIL
    assert evaluate_gates(cfg, [check("a"), check("b")])[0].status is Status.PASS


def test_run_that_stopped_is_no_go_with_the_phase_named(tmp_path: Path) -> None:
    outcome = run_gate(
        GateRequest(
            release="v2",
            report_dir=str(tmp_path),
            phases=[
                {"name": "preflight", "status": "ok", "seconds": 1.0},
                {"name": "deploy", "status": "failed", "seconds": 4.0},
            ],
            stopped={"phase": "deploy", "reason": "api crash-looped (3 restarts)"},
        )
    )
    assert outcome.verdict is Decision.NO_GO
    assert outcome.report["blockers"][0] == (
        "run stopped in phase deploy: api crash-looped (3 restarts)"
    )
    assert "stopped in phase `deploy`" in (tmp_path / "report.md").read_text()


def test_bands_text_is_readable() -> None:
    assert str(Bands.parse({"pass": "<=1200ms", "warn": "<= 2000 ms"})) == (
        "PASS <= 1200 ms, WARN <= 2000 ms"
    )
