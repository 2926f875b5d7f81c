"""PASS/WARN bands: `{pass: "<= 1200ms", warn: "<= 2000ms"}` graded against a measured value.

A band is a comparison and a number with an optional unit. The value and the band
are brought to the same base unit (ms for durations, bytes for sizes, % for shares)
so a user may write `p95: {pass: "<= 1.2s"}` against a value measured in ms.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from stagegate.results import Status

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
    "==": operator.eq,
    "!=": operator.ne,
}

# unit -> (dimension, factor to the dimension's base unit)
UNITS: dict[str, tuple[str, float]] = {
    "ms": ("time", 1.0),
    "s": ("time", 1000.0),
    "m": ("time", 60_000.0),
    "h": ("time", 3_600_000.0),
    "d": ("time", 86_400_000.0),
    "days": ("time", 86_400_000.0),
    "b": ("size", 1.0),
    "kb": ("size", 1024.0),
    "mb": ("size", 1024.0**2),
    "gb": ("size", 1024.0**3),
    "%": ("share", 1.0),
    "": ("number", 1.0),
}

_BAND_RE = re.compile(
    r"^\s*(?P<op><=|>=|==|!=|<|>)\s*(?P<num>-?\d+(?:\.\d+)?)\s*(?P<unit>[a-zA-Z%]*)\s*$"
)


class BandError(ValueError):
    """A band that cannot be parsed; the message names the text and the expected form."""


@dataclass(frozen=True)
class Band:
    """One comparison such as `<= 1200 ms`."""

    op: str
    number: float
    unit: str

    @classmethod
    def parse(cls, text: str | float) -> Band:
        if isinstance(text, int | float):
            return cls("<=", float(text), "")
        match = _BAND_RE.match(str(text))
        if not match or match["unit"].lower() not in UNITS:
            raise BandError(
                f"cannot parse band {text!r}: expected a comparison, a number and an optional "
                f"unit, such as '<= 1200ms', '>= 95%', '< 2s' (units: {', '.join(sorted(UNITS))})"
            )
        return cls(match["op"], float(match["num"]), match["unit"].lower())

    def holds(self, value: float, value_unit: str = "") -> bool:
        return _OPS[self.op](convert(value, value_unit, self.unit), self.number)

    def __str__(self) -> str:
        number = f"{self.number:g}"
        return f"{self.op} {number}{(' ' + self.unit) if self.unit else ''}"


def convert(value: float, from_unit: str, to_unit: str) -> float:
    """Convert between units of one dimension; a bare number takes the band's unit."""
    src, dst = from_unit.lower(), to_unit.lower()
    if not src or not dst or src == dst:
        return float(value)
    (src_dim, src_factor), (dst_dim, dst_factor) = UNITS[src], UNITS[dst]
    if src_dim != dst_dim:
        raise BandError(f"cannot compare {from_unit!r} with {to_unit!r}")
    return float(value) * src_factor / dst_factor


@dataclass(frozen=True)
class Bands:
    """A PASS band and an optional WARN band; outside both is FAIL."""

    pass_band: Band
    warn_band: Band | None = None

    @classmethod
    def parse(cls, spec: dict[str, str | float] | str | float) -> Bands:
        if not isinstance(spec, dict):
            return cls(Band.parse(spec))
        unknown = set(spec) - {"pass", "warn"}
        if unknown or "pass" not in spec:
            raise BandError(
                f"bands {spec!r}: expected a mapping with 'pass' and optionally 'warn', "
                f"such as {{pass: '<= 1200ms', warn: '<= 2000ms'}}"
            )
        warn = spec.get("warn")
        return cls(Band.parse(spec["pass"]), Band.parse(warn) if warn is not None else None)

    def grade(self, value: float, value_unit: str = "") -> Status:
        if self.pass_band.holds(value, value_unit):
            return Status.PASS
        if self.warn_band is not None and self.warn_band.holds(value, value_unit):
            return Status.WARN
        return Status.FAIL

    def __str__(self) -> str:
        text = f"PASS {self.pass_band}"
        return f"{text}, WARN {self.warn_band}" if self.warn_band else text
