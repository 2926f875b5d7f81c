"""Verdict and readiness score; manual checklist items; recommendation rules.

The score is Keptn-like: every graded check and every evaluated gate is an objective with a
weight (checks: `stagegate_gates.weights`, default 1; gates: their `weight`), worth its full
weight on PASS, half on WARN and nothing on FAIL/ERROR; SKIP does not count. The score is
always reported; it decides only when `stagegate_gates.score` gives bands (e.g. PASS
`>= 90%`, WARN `>= 75%`, as Keptn's pass and warning percentages).

The verdict is NO_GO when a run stopped before the gate, a check is graded FAIL (the grader
already turned a failed `warning` check into WARN, so a FAIL here is one that a plugin kept
or escalated), a critical check is ERROR, a critical gate failed (key checks are critical
gates), or the score is below the WARN band; GO_WITH_WARNINGS when anything warned (or a
non-critical check errored, or the score is below the PASS band); GO otherwise. Plugins
then adjust it through the `stagegate_adjust_verdict` wrappers (e.g. `stagegate.policies.strict`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Any

from stagegate.bands import Bands
from stagegate.gates import GateResult
from stagegate.grading import is_failure, worst
from stagegate.results import CheckResult, Severity, Status

_CREDIT = {Status.PASS: 1.0, Status.WARN: 0.5, Status.FAIL: 0.0, Status.ERROR: 0.0}


class Decision(StrEnum):
    GO = "GO"
    GO_WITH_WARNINGS = "GO_WITH_WARNINGS"
    NO_GO = "NO_GO"


@dataclass
class Verdict:
    """The decision and why: `blockers` made it NO_GO (`run_blockers` are the ones no single
    check or gate carries: the run stopped, nothing was checked, the score is too low)."""

    decision: Decision
    score: float
    score_status: Status
    blockers: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    policy: str | None = None
    run_blockers: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": str(self.decision),
            "score": self.score,
            "score_status": str(self.score_status),
            "blockers": self.blockers,
            "warnings": self.warnings,
            "policy": self.policy,
        }


def readiness_score(
    checks: list[CheckResult], gates: list[GateResult], weights: Mapping[str, float]
) -> float:
    """Weighted share of objectives met, in % (0 when nothing was graded)."""
    earned = total = 0.0
    objectives = [(c.status, weights.get(c.name, 1.0)) for c in checks]
    objectives += [(g.status, g.weight) for g in gates]
    for status, weight in objectives:
        if status is Status.SKIP:
            continue
        earned += _CREDIT[status] * weight
        total += weight
    return round(earned / total * 100.0, 1) if total else 0.0


def check_blocks(check: CheckResult) -> bool:
    """Whether a graded check makes the run NO_GO. The grader already applied the severity:
    a FAIL grade blocks whatever the severity (a plugin may escalate); an ERROR blocks only a
    critical check."""
    critical = check.severity is Severity.CRITICAL
    return check.status is Status.FAIL or (check.status is Status.ERROR and critical)


def gate_blocks(gate: GateResult) -> bool:
    """Whether a gate makes the run NO_GO: a critical gate (key checks included) that failed."""
    return is_failure(gate.status) and gate.critical


def _check_findings(checks: list[CheckResult]) -> tuple[list[str], list[str]]:
    blockers, warnings = [], []
    for check in checks:
        line = f"check {check.name} {check.status}: {check.message}".rstrip(": ")
        if check_blocks(check):
            blockers.append(line)
        elif check.status is Status.WARN or is_failure(check.status):
            warnings.append(line)
    return blockers, warnings


def _gate_findings(gates: list[GateResult]) -> tuple[list[str], list[str]]:
    blockers, warnings = [], []
    for gate in gates:
        line = f"gate {gate.name} {gate.status}: {gate.message}"
        if gate_blocks(gate):
            blockers.append(line)
        elif gate.status is Status.WARN or is_failure(gate.status):
            warnings.append(line)
    return blockers, warnings


def decide(
    checks: list[CheckResult],
    gates: list[GateResult],
    score_bands: Bands | None,
    weights: Mapping[str, float] | None = None,
    stopped: Mapping[str, str] | None = None,
) -> Verdict:
    """The verdict the gates reach, before any policy plugin. A run that stopped scores 0: its
    release was not validated, whatever the checks that ran before the stop (the dry-run's)
    earned."""
    score = 0.0 if stopped else readiness_score(checks, gates, weights or {})
    score_status = score_bands.grade(score, "%") if score_bands else Status.SKIP
    check_blockers, check_warnings = _check_findings(checks)
    gate_blockers, gate_warnings = _gate_findings(gates)
    run_blockers = []
    warnings = check_warnings + gate_warnings
    if stopped:
        run_blockers.append(f"run stopped in phase {stopped.get('phase')}: {stopped.get('reason')}")
    if not checks and not gates and not stopped:
        run_blockers.append("nothing was checked: no check result and no gate")
    if score_status is Status.FAIL:
        run_blockers.append(f"readiness score {score}% is below the WARN band ({score_bands})")
    elif score_status is Status.WARN:
        warnings.append(f"readiness score {score}% is below the PASS band ({score_bands})")
    first = 1 if stopped else 0  # the stop first, as the reports tell it
    blockers = run_blockers[:first] + check_blockers + gate_blockers + run_blockers[first:]
    if blockers:
        decision = Decision.NO_GO
    elif warnings:
        decision = Decision.GO_WITH_WARNINGS
    else:
        decision = Decision.GO
    return Verdict(decision, score, score_status, blockers, warnings, run_blockers=run_blockers)


# ---- manual checklist -------------------------------------------------------------------


def _confirmation(raw: Any) -> dict[str, str] | None:
    """`{by: alice, at: 2026-11-22T10:00Z}` or an AWX survey string `alice@2026-11-22T10:00Z`."""
    if isinstance(raw, Mapping) and raw.get("by"):
        return {"by": str(raw["by"]), "at": str(raw.get("at", ""))}
    if isinstance(raw, str) and raw.strip():
        # "who@when": split at the last '@' followed by a date, so an e-mail stays whole.
        by, sep, at = raw.strip().rpartition("@")
        if not sep or not at[:1].isdigit():
            by, at = raw.strip(), ""
        return {"by": by.strip(), "at": at.strip()}
    return None


def manual_items(
    items: Sequence[Mapping[str, Any]], confirmations: Mapping[str, Any] | None
) -> list[CheckResult]:
    """Checklist items no machine can check, as results: PASS once confirmed, else pending.

    A pending item is a WARN (severity warning), or a FAIL when it is `blocking: true`.
    """
    out = []
    for item in items:
        name = str(item["name"])
        confirmed = _confirmation((confirmations or {}).get(name))
        blocking = bool(item.get("blocking", False))
        details: dict[str, Any] = {"description": str(item.get("description", ""))}
        if confirmed:
            status = Status.PASS
            message = f"confirmed by {confirmed['by']}" + (
                f" at {confirmed['at']}" if confirmed["at"] else ""
            )
            details["confirmed"] = confirmed
        else:
            status = Status.FAIL if blocking else Status.WARN
            message = f"pending: confirm with stagegate_manual_confirmations.{name} (who and when)"
        out.append(
            CheckResult(
                name=name,
                group=str(item.get("category", "manual")),
                type="manual",
                status=status,
                severity=Severity.CRITICAL if blocking else Severity.WARNING,
                message=message,
                value="confirmed" if confirmed else "pending",
                threshold="confirmed by a named person",
                tags=["manual"],
                details=details,
            )
        )
    return out


# ---- recommendations ----------------------------------------------------------------------


def recommendations(
    rules: Sequence[Mapping[str, Any]], gates: list[GateResult], decision: Decision
) -> list[dict[str, Any]]:
    """Advice whose `when` matches: every named gate's status is among the listed ones.

    A name with a glob (`"load: *"`) stands for the worst status of the gates it matches, so
    `{"load: *": [PASS]}` reads "every load gate PASS" and `{"load: *": [WARN]}` "some WARN,
    no FAIL" (seed 003's readiness estimate, from its load gates alone).
    """
    out = []
    for rule in rules:
        when = dict(rule["when"])
        if all(when_status(name, gates, decision) in set(wanted) for name, wanted in when.items()):
            out.append(
                {"advice": str(rule["advice"]), "because": when, "id": str(rule.get("id", ""))}
            )
    return out


def when_status(name: str, gates: Sequence[GateResult], decision: Decision) -> str | None:
    """The status a recommendation's `when` key names: a gate, a glob of gates, or `verdict`."""
    if name == "verdict":
        return str(decision)
    exact = [g.status for g in gates if g.name == name]
    matched = exact or [g.status for g in gates if fnmatchcase(g.name, name)]
    return str(worst(matched)) if matched else None
