"""Grading: every check result becomes PASS / WARN / FAIL / SKIP / ERROR.

A grade comes from two things, in this order:

1. thresholds: when the gate configuration names PASS/WARN bands for a check's metric
   (`thresholds: {api_latency: {metric: p95_ms, unit: ms, pass: "<= 1200ms", warn: "<= 2000ms"}}`),
   the metric is graded against them (seed 003's bands);
2. severity: a FAIL of a `warning` or `info` check becomes WARN (the same rule as the check
   engine's default `stagegate_grade_result`, so grading twice changes nothing); a
   `critical` check keeps its grade.

SKIP and ERROR are never re-graded by thresholds: there is no measured value to hold.
The check engine grades through `stagegate_grade_result` while checks run; the gate grades
again here with the gate configuration's thresholds, which is idempotent for results the
engine already graded and lets results produced elsewhere (passed in as data) be graded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from stagegate.bands import BandError, Bands
from stagegate.results import CheckResult, Severity, Status

# Statuses that mean "did not pass"; ordered worst last for `worst()`.
_ORDER = {Status.SKIP: 0, Status.PASS: 1, Status.WARN: 2, Status.FAIL: 3, Status.ERROR: 4}


class ThresholdError(ValueError):
    """A threshold spec that cannot be used; the message names the check and the key."""


@dataclass(frozen=True)
class Threshold:
    """PASS/WARN bands for one metric of one check."""

    metric: str
    bands: Bands
    unit: str = ""

    @classmethod
    def parse(cls, check: str, spec: Mapping[str, Any]) -> Threshold:
        where = f"stagegate_gates.thresholds.{check}"
        if not isinstance(spec, Mapping) or "metric" not in spec:
            raise ThresholdError(
                f"{where}: expected a mapping with 'metric' and 'pass' (optionally 'warn', "
                f"'unit'), such as {{metric: p95_ms, pass: '<= 1200ms'}}; got {spec!r}"
            )
        band_spec = {k: v for k, v in spec.items() if k in ("pass", "warn")}
        try:
            bands = Bands.parse(band_spec)
        except BandError as exc:
            raise ThresholdError(f"{where}: {exc}") from exc
        return cls(str(spec["metric"]), bands, str(spec.get("unit", "")))


@dataclass(frozen=True)
class Grade:
    """A small typed grading answer, like pytest's `pytest_report_teststatus`."""

    status: Status
    reason: str
    threshold: str | None = None


def worst(statuses: list[Status]) -> Status:
    """The worst of several statuses (ERROR > FAIL > WARN > PASS > SKIP); SKIP when empty."""
    return max(statuses, key=_ORDER.__getitem__, default=Status.SKIP)


def is_failure(status: Status) -> bool:
    return status in (Status.FAIL, Status.ERROR)


def default_grade(result: CheckResult, threshold: Threshold | None = None) -> Grade:
    """Grade one check result from its thresholds, then cap it by its severity."""
    status, reason, band_text = result.status, "as reported by the check", result.threshold
    if threshold is not None and status not in (Status.SKIP, Status.ERROR):
        value = result.metrics.get(threshold.metric)
        if value is None:
            status, reason = Status.ERROR, f"metric {threshold.metric!r} missing from the result"
        else:
            status = threshold.bands.grade(value, threshold.unit)
            reason = f"{threshold.metric} graded against {threshold.bands}"
        band_text = f"{threshold.metric}: {threshold.bands}"
    if result.severity is not Severity.CRITICAL and status is Status.FAIL:
        status, reason = Status.WARN, f"{reason}; capped at WARN (severity {result.severity})"
    return Grade(status, reason, band_text)


def apply_grade(result: CheckResult, grade: Grade) -> CheckResult:
    """A copy of the result carrying the grade (the original keeps the raw status)."""
    details = dict(result.details)
    details["raw_status"] = str(result.status)
    details["grade_reason"] = grade.reason
    return replace(result, status=grade.status, threshold=grade.threshold, details=details)


def parse_thresholds(spec: Mapping[str, Any] | None) -> dict[str, Threshold]:
    """`stagegate_gates.thresholds` -> {check name: Threshold}; raises naming the bad key."""
    return {name: Threshold.parse(name, item) for name, item in (spec or {}).items()}
