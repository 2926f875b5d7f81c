"""Trends over the ledger's runs of one release (seed 002's 24-hour stability period).

Pure arithmetic on what the ledger kept: the points of one check metric over the runs
(`points`), and how much it rose across a window of them (`rise`). The `trend` gate
(`stagegate.gates`) grades the rise against bands; the HTML report draws the points
(`polyline`). The records come from `stagegate.ledger.release_history`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

METHODS = ("delta", "fit")


@dataclass(frozen=True)
class Point:
    """One run's value of the metric: the run (its id or finish time), when, the value."""

    run: str
    at: str
    value: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def points(records: Iterable[Mapping[str, Any]], check: str, metric: str) -> list[Point]:
    """The metric's value in each record that kept it (ledger `metrics[check][metric]`),
    oldest first; records without it (the check did not run, a masked value) are left out."""
    found = []
    for record in records:
        value = _number(((record.get("metrics") or {}).get(check) or {}).get(metric))
        if value is not None:
            at = str(record.get("finished") or record.get("started") or "")
            found.append(Point(str(record.get("run_id") or at or "?"), at, value))
    return found


def rise(values: list[float], method: str = "delta") -> tuple[float, float]:
    """(start, rise) across `values`: `delta` is last - first; `fit` is the least-squares
    line's rise from the first run to the last (slope * (n - 1)) and its start, which one
    noisy run moves less than it moves a difference of two."""
    if len(values) < 2:
        return (values[0] if values else 0.0), 0.0
    if method == "delta":
        return values[0], values[-1] - values[0]
    n = len(values)
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    slope = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(values)) / sum(
        (x - mean_x) ** 2 for x in range(n)
    )
    start = mean_y - slope * mean_x
    return start, slope * (n - 1)


def relative(start: float, change: float) -> float:
    """`change` as a percentage of `start` (0 % when nothing changed; an infinite rise from 0)."""
    if change == 0:
        return 0.0
    if start == 0:
        return float("inf") if change > 0 else float("-inf")
    return change / abs(start) * 100.0


def polyline(values: list[float], width: float = 240, height: float = 48, pad: float = 4) -> str:
    """SVG polyline `points` for `values`, scaled into a width x height box (the HTML report)."""
    if not values:
        return ""
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    step = (width - 2 * pad) / max(1, len(values) - 1)
    return " ".join(
        f"{pad + i * step:.1f},{height - pad - (v - low) / span * (height - 2 * pad):.1f}"
        for i, v in enumerate(values)
    )
