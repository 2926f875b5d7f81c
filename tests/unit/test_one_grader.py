"""Issue 14's grading bugs through the real check engine, the real gate and the real CLI.

Each test ran red against the code before the fix (see the commit messages): two graders
(the gate re-graded with its own severity cap), two default check groups, a pass rate that
read `total` where the suite check reports `tests`, and gate types that were not plugins.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest

from stagegate.catalog import load_catalog
from stagegate.checks import Outcome
from stagegate.cli import main as cli_main
from stagegate.engine import result_from_outcome, run_checks
from stagegate.gatekeeper import GateRequest, gate_plugin_manager, run_gate
from stagegate.gates import GateConfigError, GateResult, GateRule, GateType
from stagegate.grading import Grade, default_grade
from stagegate.hookspecs import hookimpl
from stagegate.plugins import Hooks, get_hooks
from stagegate.results import CheckResult, Severity, Status
from stagegate.verdict import Decision


def _run(catalog: list[dict[str, Any]], hooks: Hooks) -> list[dict[str, Any]]:
    specs = load_catalog(catalog, hooks.check_types())
    return [r.to_dict() for r in run_checks(specs, hooks=hooks)]


JUnit = Callable[[int, int], Path]  # the junit_file fixture (tests/gate_fixtures.py)


class EscalateWarnings:
    """A third-party grading policy: a `warning` check that did not pass is a FAIL after all."""

    @hookimpl(wrapper=True)
    def stagegate_grade_result(self, check: Any) -> Generator[None, Grade, Grade]:
        grade = yield
        if check.severity is Severity.WARNING and grade.status is Status.WARN:
            return Grade.of(Status.FAIL)
        return grade


def test_a_plugin_escalation_survives_the_gate(tmp_path: Path, junit_file: JUnit) -> None:
    """Bug 1: the gate graded again with its own severity cap and turned the FAIL into WARN."""
    pm = gate_plugin_manager()
    pm.register(EscalateWarnings(), name="escalate-warnings")
    catalog = [
        {
            "name": "unit_tests",
            "type": "suite",
            "group": "tests",
            "severity": "warning",
            "junit": str(junit_file(10, 5)),
            "min_pass_rate": ">= 99%",
        }
    ]
    results = _run(catalog, Hooks(pm))
    assert results[0]["status"] == "FAIL"  # the engine asked the hook: escalated
    outcome = run_gate(
        GateRequest(release="v2", report_dir=str(tmp_path / "report"), checks=results), pm
    )
    graded = outcome.report["checks"][0]
    assert graded["status"] == "FAIL"
    assert outcome.verdict is Decision.NO_GO
    assert outcome.failed_checks == ["unit_tests"]
    # without the plugin, the one grader caps the warning check at WARN, once
    plain = gate_plugin_manager()
    relaxed = _run(catalog, Hooks(plain))
    assert relaxed[0]["status"] == "WARN"
    again = run_gate(
        GateRequest(release="v2", report_dir=str(tmp_path / "r2"), checks=relaxed), plain
    )
    assert again.verdict is Decision.GO_WITH_WARNINGS


def test_a_pass_rate_rule_on_the_default_group_is_accepted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bug 2: a check without `group` is `functionality` in the engine; the gate said `default`."""
    gates = tmp_path / "gates.yml"
    gates.write_text(
        "rules:\n  - {name: features, type: pass_rate, group: functionality, min: '90%'}\n",
        encoding="utf-8",
    )
    checks = tmp_path / "checks.yml"
    checks.write_text(
        "- {name: api_health, type: http, url: 'http://127.0.0.1:9/health'}\n", encoding="utf-8"
    )
    assert cli_main(["gates", "validate", str(gates), "--checks", str(checks)]) == 0
    assert "1 gate(s) valid: features" in capsys.readouterr().out
    gates.write_text(
        "rules:\n  - {name: features, type: pass_rate, group: default, min: '90%'}\n",
        encoding="utf-8",
    )
    assert cli_main(["gates", "validate", str(gates), "--checks", str(checks)]) == 2
    assert "no check in the catalog has group 'default'" in capsys.readouterr().err


def test_pass_rate_counts_the_tests_of_a_real_junit_file(tmp_path: Path, junit_file: JUnit) -> None:
    """Bug 3: 98 of 100 JUnit tests against a 99% rule came out "1/1 passed = 100%"."""
    pm = gate_plugin_manager()
    catalog = [
        {
            "name": "unit_tests",
            "type": "suite",
            "group": "tests",
            "junit": str(junit_file(100, 2)),
        }
    ]
    results = _run(catalog, Hooks(pm))
    assert results[0]["status"] == "PASS"  # no band on the check itself: the gate decides
    gates = {
        "rules": [{"name": "unit", "type": "pass_rate", "checks": ["unit_tests"], "min": "99%"}]
    }
    outcome = run_gate(
        GateRequest(
            release="v2",
            report_dir=str(tmp_path / "report"),
            checks=results,
            gates=gates,
            catalog=["unit_tests"],
        ),
        pm,
    )
    gate = next(g for g in outcome.report["gates"] if g["name"] == "unit")
    assert gate["status"] == "FAIL"
    assert gate["message"].startswith("98/100 passed = 98.0%")
    assert outcome.verdict is Decision.NO_GO


def test_built_in_gate_types_are_a_plugin_that_a_third_party_extends_and_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bug 4: the built-in gate types were hard-coded beside the hook."""

    def at_least(rule: GateRule, ctx: Any) -> GateResult:
        enough = len(ctx.checks) >= rule.options["n"]
        return rule.result(Status.PASS if enough else Status.FAIL, f"{len(ctx.checks)} checks")

    def strict_pass_rate(rule: GateRule, ctx: Any) -> GateResult:
        return rule.result(Status.FAIL, "the third party's pass_rate ran")

    class ThirdParty:
        @hookimpl
        def stagegate_gate_types(self) -> list[GateType]:
            return [
                GateType("at_least", frozenset({"n"}), lambda rule, ctx: None, at_least),
                GateType(
                    "pass_rate",
                    frozenset({"checks", "min"}),
                    lambda rule, ctx: None,
                    strict_pass_rate,
                ),
            ]

    pm = gate_plugin_manager()
    assert pm.get_plugin("stagegate.gates") is not None
    builtin = Hooks(pm).gate_types()
    assert {"value", "ratio", "each", "pass_rate", "baseline", "all", "flapping"} <= set(builtin)
    pm.register(ThirdParty(), name="third-party")
    checks = [
        CheckResult("a", "tests", "suite", Status.PASS).to_dict(),
        CheckResult("b", "tests", "suite", Status.PASS).to_dict(),
    ]
    rules = [
        {"name": "two", "type": "at_least", "n": 2},
        {"name": "rate", "type": "pass_rate", "checks": ["a"], "min": "50%"},
    ]
    outcome = run_gate(
        GateRequest(release="v2", report_dir=str(tmp_path), checks=checks, gates={"rules": rules}),
        pm,
    )
    by_name = {g["name"]: g for g in outcome.report["gates"]}
    assert by_name["two"]["status"] == "PASS"
    assert by_name["rate"]["message"] == "the third party's pass_rate ran"
    monkeypatch.setenv("STAGEGATE_BLOCK_PLUGINS", "stagegate.gates")
    with pytest.raises(GateConfigError, match="unknown gate type"):
        run_gate(
            GateRequest(
                release="v2",
                report_dir=str(tmp_path),
                gates={"rules": [{"name": "v", "type": "value"}]},
            ),
            gate_plugin_manager(),
        )


def test_a_graded_measurement_shows_the_figure_its_metric_holds() -> None:
    """1505.6951 ms: the metric kept 1505.695 (shown "1505.69") while the grade's text showed
    the unrounded figure ("1505.7"); CI failed on the mismatch once. One figure now."""
    outcome = Outcome(status="PASS", message="measured")
    outcome.measure("p95_ms", 1505.6951, "ms", {"pass": "<= 1s", "warn": "<= 1.2s"})
    catalog = [{"name": "slow", "type": "http", "url": "http://127.0.0.1:9/"}]
    spec = load_catalog(catalog, get_hooks().check_types())[0]
    grade = default_grade(result_from_outcome(spec, outcome))
    assert grade.status is Status.FAIL
    assert f"p95_ms {outcome.metrics['p95_ms']:g}ms outside PASS" in grade.reason
