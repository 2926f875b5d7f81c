"""Grading: the one grader that turns what a check measured into PASS/WARN/FAIL/SKIP/ERROR.

Checks measure: a check type returns the status of its own assertions (status code, JSON
paths, headers...), its metrics, and `measurements` to hold against PASS/WARN bands. The
grade comes from `default_grade`, the built-in `stagegate_grade_result` hook implementation,
in this order:

1. the check's own status; SKIP and ERROR stay as they are (nothing measured to grade);
2. each measurement against its bands (the check's `bands`, `latency`, `min_pass_rate`...);
3. the gate configuration's threshold for the check, when there is one
   (`stagegate_gates.thresholds: {api_latency: {metric: p95_ms, pass: "<= 1200ms"}}`);
   a missing metric is ERROR, never PASS;
4. severity: a FAIL of a `warning` or `info` check becomes WARN; `critical` keeps its grade.

The worst of 1-3 wins. Grading is a pure function of the result as the check left it
(`details.check_status` keeps that status once graded), so it can be asked again with the
same answer. A plugin changes grades only through the hook (`stagegate_grade_result`,
firstresult): the check engine calls it while checks run, and the gate calls it only for
results that were not graded yet (a module's result passed in as data) or that a gate
threshold names. Gates read grades; they never grade.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from stagegate.bands import BandError, Bands
from stagegate.results import CheckResult, Severity, Status

# Ordered worst last for `worst()`.
_ORDER = {Status.SKIP: 0, Status.PASS: 1, Status.WARN: 2, Status.FAIL: 3, Status.ERROR: 4}
CHECK_STATUS = "check_status"
"""`details` key holding the status the check itself reported, before grading."""


class ThresholdError(ValueError):
    """A threshold spec that cannot be used; the message names the check and the key."""


@dataclass(frozen=True)
class Threshold:
    """PASS/WARN bands for one metric of one check (`stagegate_gates.thresholds`)."""

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

    def __str__(self) -> str:
        return f"{self.metric}: {self.bands}"


@dataclass(frozen=True)
class Grade:
    """The answer of `stagegate_grade_result`, like pytest's `pytest_report_teststatus`.

    `status` is the grade, `reason` why (shown in reports when it is not a plain PASS),
    `threshold` the bands the result was held against, as text.
    """

    status: Status
    reason: str = ""
    threshold: str | None = None

    @property
    def letter(self) -> str:
        """One letter for progress output: P, W, F, E, s."""
        return "s" if self.status is Status.SKIP else self.status.value[0]

    @property
    def word(self) -> str:
        return self.status.value

    @classmethod
    def of(cls, status: Status, reason: str = "") -> Grade:
        return cls(status, reason)


def worst(statuses: list[Status]) -> Status:
    """The worst of several statuses (ERROR > FAIL > WARN > PASS > SKIP); SKIP when empty."""
    return max(statuses, key=_ORDER.__getitem__, default=Status.SKIP)


def is_failure(status: Status) -> bool:
    return status in (Status.FAIL, Status.ERROR)


def check_status(result: CheckResult) -> Status:
    """The status the check itself reported (before any grade)."""
    return Status(result.details.get(CHECK_STATUS, result.status))


def is_graded(result: CheckResult) -> bool:
    return CHECK_STATUS in result.details


def _measurements(result: CheckResult) -> tuple[Status, list[str], list[str]]:
    """(worst band grade, findings, band texts) of the result's measurements."""
    status = Status.PASS
    findings: list[str] = []
    texts: list[str] = []
    for measured in result.details.get("measurements") or []:
        name = measured.get("name", "?")
        try:
            bands = Bands.parse(measured["bands"])
            graded = bands.grade(float(measured["value"]), str(measured.get("unit", "")))
        except (BandError, KeyError, TypeError, ValueError) as exc:
            status = worst([status, Status.ERROR])
            findings.append(f"{name}: {exc}")
            continue
        texts.append(f"{name}: {bands}")
        if graded is not Status.PASS:
            where = f"outside PASS {bands.pass_band}"
            if bands.warn_band is not None:
                inside = graded is Status.WARN
                where += f" ({'within' if inside else 'and outside'} WARN {bands.warn_band})"
            findings.append(
                f"{name} {float(measured['value']):g}{measured.get('unit', '')} {where}"
            )
        status = worst([status, graded])
    return status, findings, texts


def _threshold(result: CheckResult, threshold: Threshold) -> tuple[Status, str]:
    value = result.metrics.get(threshold.metric)
    if value is None:
        return Status.ERROR, f"metric {threshold.metric!r} missing from the result"
    status = threshold.bands.grade(value, threshold.unit)
    if status is Status.PASS:
        return status, ""
    return status, f"{threshold.metric} {value:g}{threshold.unit} outside PASS ({threshold})"


def default_grade(
    result: CheckResult, threshold: Threshold | None = None, severity: Severity | None = None
) -> Grade:
    """The built-in grade (see the module docstring); `severity` defaults to the result's."""
    own = check_status(result)
    own_threshold = result.details.get("check_threshold", result.threshold)
    if own in (Status.SKIP, Status.ERROR):
        return Grade(own, "", own_threshold)
    band_status, findings, texts = _measurements(result)
    status = worst([own, band_status])
    if threshold is not None:
        threshold_status, finding = _threshold(result, threshold)
        status = worst([status, threshold_status])
        findings += [finding] if finding else []
        texts.append(str(threshold))
    severity = severity or result.severity
    if status is Status.FAIL and severity is not Severity.CRITICAL:
        status = Status.WARN
        findings.append(f"capped at WARN (severity {severity})")
    shown = "; ".join([*([own_threshold] if own_threshold else []), *texts]) or None
    return Grade(status, "; ".join(findings), shown)


def apply_grade(result: CheckResult, grade: Grade) -> CheckResult:
    """A copy of the result carrying the grade; `details.check_status` keeps the check's own."""
    own = check_status(result)
    details = dict(result.details)
    details[CHECK_STATUS] = str(own)
    details.setdefault("check_threshold", result.threshold)
    base_message = str(details.get("check_message", result.message))
    details["check_message"] = base_message
    message = base_message
    if grade.reason:
        details["grade_reason"] = grade.reason
        message = f"{base_message}; {grade.reason}" if base_message else grade.reason
    return replace(
        result,
        status=grade.status,
        threshold=grade.threshold,
        message=message,
        details=details,
    )


def parse_thresholds(spec: Mapping[str, Any] | None) -> dict[str, Threshold]:
    """`stagegate_gates.thresholds` -> {check name: Threshold}; raises naming the bad key."""
    return {name: Threshold.parse(name, item) for name, item in (spec or {}).items()}
