"""The `trend` gate and its arithmetic (`stagegate.trend`), the history it reads
(`stagegate.ledger.release_history`) and how the reports draw it, on typed records."""

from __future__ import annotations

from typing import Any

import pytest

from stagegate.gatekeeper import gate_plugin_manager, plugin_gate_types
from stagegate.gates import GateConfigError, evaluate_gates, validate_gates
from stagegate.ledger import release_history
from stagegate.reports import _md_trends, trend_rows
from stagegate.results import CheckResult, Status
from stagegate.trend import polyline, relative, rise


def check(name: str, **metrics: float) -> CheckResult:
    return CheckResult(
        name=name, group="api", type="prometheus", status=Status.PASS, metrics=metrics
    )


def record(
    release: str, kind: str | None, run: str, verdict: str = "GO", **metrics: float
) -> dict[str, Any]:
    found: dict[str, Any] = {"release": release, "verdict": verdict, "run_id": run}
    if kind:
        found["kind"] = kind
    found["metrics"] = {"memory": dict(metrics)} if metrics else {}
    return found


def gate(rule: dict[str, Any], now: float, history: list[dict[str, Any]]) -> Any:
    spec = {"rules": [{"name": "memory trend", "type": "trend", "check": "memory", **rule}]}
    config = validate_gates(spec, ["memory"], None, plugin_gate_types(gate_plugin_manager()))
    (result,) = evaluate_gates(config, [check("memory", mb=now)], history=history)
    return result


def test_rise_by_delta_and_by_fit() -> None:
    assert rise([10, 12, 11, 15], "delta") == (10, 5)
    start, change = rise([10, 11, 12, 13], "fit")
    assert (start, change) == pytest.approx((10, 3))
    # one noisy run moves the fitted rise less than the difference of first and last
    assert rise([10, 10, 10, 14], "fit")[1] < rise([10, 10, 10, 14], "delta")[1]
    assert relative(50, 5) == 10
    assert relative(0, 0) == 0
    assert relative(0, 1) == float("inf")


def test_history_is_this_release_since_its_last_deploy() -> None:
    records = [
        record("v1", None, "d1", mb=1),
        record("v1", "revalidation", "r1", mb=2),
        record("v2", None, "d2", mb=3),
        record("v1", None, "d3", mb=4),  # v1 deployed again: its trend starts over
        record("v1", "rollback", "rb", mb=5),
        record("v1", "revalidation", "r2", mb=6),
        record("v2", "revalidation", "r3", mb=7),
        record("v1", None, "d4", "NO_GO", mb=8),  # a failed promotion is no deploy to watch
        record("v1", "adopt", "a1", "ADOPTED"),
    ]
    assert [r["run_id"] for r in release_history(records, "v1")] == ["d3", "r2"]
    assert [r["run_id"] for r in release_history(records, "v2")] == ["d2", "r3"]
    validations = [record("current", "validation", f"v{i}", mb=i) for i in range(5)]
    assert [r["run_id"] for r in release_history(validations, "current", limit=2)] == ["v3", "v4"]


def test_trend_gate_skips_until_min_runs_then_grades_the_rise() -> None:
    history = [record("v1", None, "d", mb=100), record("v1", "revalidation", "r1", mb=101)]
    rule = {"metric": "mb", "relative": True, "method": "fit", "pass": "<= 5%", "warn": "<= 20%"}
    too_few = gate({**rule, "min_runs": 4}, 102, history)
    assert too_few.status is Status.SKIP
    assert "3 run(s)" in too_few.message
    steady = gate(rule, 100.5, history)
    assert steady.status is Status.PASS, steady.message
    growing = gate(rule, 112, history)
    assert growing.status is Status.WARN, growing.message
    assert "100 -> 112" in growing.message
    assert [p["value"] for p in growing.details["trend"]] == [100, 101, 112]
    leaking = gate(rule, 150, history)
    assert leaking.status is Status.FAIL


def test_trend_gate_absolute_window_and_direction() -> None:
    history = [record("v1", "revalidation", f"r{i}", mb=v) for i, v in enumerate([9, 0, 0, 0])]
    restarts = {"metric": "mb", "runs": 3, "pass": "<= 0"}
    assert gate(restarts, 0, history).status is Status.PASS  # the 9 is outside the window
    assert gate(restarts, 2, history).status is Status.FAIL
    falling = {"metric": "mb", "runs": 3, "direction": "higher_is_better", "pass": "<= 0"}
    assert gate(falling, 5, history).status is Status.PASS
    assert gate({**restarts, "critical": False}, 2, history).status is Status.WARN


def test_trend_gate_without_the_metric_this_run_is_an_error() -> None:
    result = gate({"metric": "rss", "pass": "<= 0"}, 1, [])
    assert result.status is Status.ERROR
    assert "no metric 'rss'" in result.message


@pytest.mark.parametrize(
    ("rule", "key"),
    [
        ({"metric": "mb", "pass": "<= 0", "runs": 1}, "runs"),
        ({"metric": "mb", "pass": "<= 0", "runs": 3, "min_runs": 4}, "min_runs"),
        ({"metric": "mb", "pass": "<= 0", "method": "median"}, "method"),
        ({"metric": "mb", "pass": "<= 0", "direction": "up"}, "direction"),
        ({"metric": "mb", "pass": "<= 5MB", "relative": True}, "pass/warn"),
        ({"metric": "mb"}, "pass"),
        ({"pass": "<= 0"}, "metric"),
        ({"metric": "mb", "pass": "<= 0", "window": 3}, "window"),
    ],
)
def test_trend_gate_options_are_validated(rule: dict[str, Any], key: str) -> None:
    with pytest.raises(GateConfigError) as raised:
        gate(rule, 1, [])
    assert f"gate 'memory trend' (trend), key '{key}'" in str(raised.value)


def test_reports_draw_the_trend() -> None:
    history = [record("v1", "revalidation", f"r{i}", mb=v) for i, v in enumerate([10, 20])]
    result = gate({"metric": "mb", "pass": "<= 100"}, 15, history)
    report = {"gates": [result.to_dict()]}
    (row,) = trend_rows(report)
    assert row["values"] == [10, 20, 15]
    assert row["polyline"] == polyline([10, 20, 15])
    assert row["polyline"].split(" ")[1].endswith(",4.0")  # the highest run at the top
    assert _md_trends(report)[0].endswith("10 → 20 → 15")
