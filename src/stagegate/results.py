"""Typed records that flow from checks to grades, gates, verdict and reports."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """The grade of one check (report.json `checks[].status`)."""

    PASS = "PASS"  # noqa: S105 - a grade, not a password
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"
    ERROR = "ERROR"


class Severity(StrEnum):
    """How much a check matters: a failed `critical` check fails the run."""

    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


@dataclass
class CheckResult:
    """The outcome of one check, as report.json `checks[]` carries it.

    `value` is the measured value (JSON-serialisable), `threshold` the human-readable
    band or expectation it was held against, `metrics` named numbers (avg_ms, p95_ms,
    pass_rate, ...) that gates and baselines compare, `details` anything else a report
    may show. No field ever holds a secret value.
    """

    name: str
    group: str
    type: str
    status: Status
    severity: Severity = Severity.CRITICAL
    message: str = ""
    value: Any = None
    threshold: str | None = None
    duration_ms: float = 0.0
    attempts: int = 1
    tags: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = str(self.status)
        data["severity"] = str(self.severity)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["status"] = Status(known["status"])
        known["severity"] = Severity(known.get("severity", Severity.CRITICAL))
        return cls(**known)
