# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PASS/WARN bands: `{pass: "<= 1200ms", warn: "<= 2000ms"}` graded against a measured value.

The one band grammar of stagegate: check measurements, gate thresholds and rules, the
readiness score, image size budgets (module `compose_build`) and the migration dry-run's
time limits all parse their bands here. Standard library only, Python 3.9-safe: modules
import it on the deploy host and `stagegate.bands` re-exports it on the controller.

A band is an optional comparison (default `<=`), a number and an optional unit. The value
and the band are brought to the same base unit (ms for durations, bytes for sizes, % for
shares), so `p95: {pass: "<= 1.2s"}` works on a value measured in ms and `"300MB"` on a
size in bytes. Grades are the strings PASS, WARN and FAIL.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, Union

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
    "==": operator.eq,
    "!=": operator.ne,
}

_KIB = 1024.0
# unit -> (dimension, factor to the dimension's base unit); sizes are binary (1 MB = 1024**2 B)
UNITS: dict[str, tuple[str, float]] = {
    "ms": ("time", 1.0),
    "s": ("time", 1000.0),
    "m": ("time", 60_000.0),
    "h": ("time", 3_600_000.0),
    "d": ("time", 86_400_000.0),
    "days": ("time", 86_400_000.0),
    "b": ("size", 1.0),
    "kb": ("size", _KIB),
    "kib": ("size", _KIB),
    "mb": ("size", _KIB**2),
    "mib": ("size", _KIB**2),
    "gb": ("size", _KIB**3),
    "gib": ("size", _KIB**3),
    "tb": ("size", _KIB**4),
    "tib": ("size", _KIB**4),
    "%": ("share", 1.0),
    "": ("number", 1.0),
}

_BAND_RE = re.compile(
    r"^\s*(?P<op><=|>=|==|!=|<|>)?\s*(?P<num>-?\d+(?:\.\d+)?)\s*(?P<unit>[a-zA-Z%]*)\s*$"
)

# typing.Union, not `|`: these aliases are evaluated at import on Python 3.9 deploy hosts.
Number = Union[int, float]
BandSpec = Union[str, int, float]
_B = TypeVar("_B", bound="Bands")


class BandError(ValueError):
    """A band that cannot be parsed; the message names the text and the expected form."""


def dimension(unit: str) -> str:
    """`time`, `size`, `share` or `number` for a known unit."""
    return UNITS[unit.lower()][0]


@dataclass(frozen=True)
class Band:
    """One comparison such as `<= 1200 ms`."""

    op: str
    number: float
    unit: str

    @classmethod
    def parse(cls, text: BandSpec, dimension: str | None = None) -> Band:
        """`'<= 1200ms'`, `'>= 95%'`, `'300MB'` (a bare figure means `<=`) or a number.

        With `dimension` (e.g. `size`), a unit of another dimension is refused.
        """
        if isinstance(text, bool):
            raise BandError(f"cannot parse band {text!r}: expected a number or a comparison")
        if isinstance(text, (int, float)):
            return cls("<=", float(text), "")
        match = _BAND_RE.match(str(text))
        if not match or match["unit"].lower() not in UNITS:
            raise BandError(
                f"cannot parse band {text!r}: expected a comparison, a number and an optional "
                f"unit, such as '<= 1200ms', '>= 95%', '< 2s', '300MB' "
                f"(units: {', '.join(sorted(u for u in UNITS if u))})"
            )
        band = cls(match["op"] or "<=", float(match["num"]), match["unit"].lower())
        if dimension and band.unit and UNITS[band.unit][0] != dimension:
            units = sorted(u for u, (dim, _) in UNITS.items() if u and dim == dimension)
            raise BandError(
                f"band {text!r}: unit {band.unit!r} is not a {dimension} unit "
                f"(expected one of: {', '.join(units)})"
            )
        return band

    def holds(self, value: Number, value_unit: str = "") -> bool:
        return _OPS[self.op](convert(value, value_unit, self.unit), self.number)

    def __str__(self) -> str:
        return f"{self.op} {self.number:g}{(' ' + self.unit) if self.unit else ''}"


def convert(value: Number, from_unit: str, to_unit: str) -> float:
    """Convert between units of one dimension; a bare number takes the other side's unit."""
    src, dst = from_unit.lower(), to_unit.lower()
    if not src or not dst or src == dst:
        return float(value)
    if src not in UNITS or dst not in UNITS:
        raise BandError(f"unknown unit {from_unit if src not in UNITS else to_unit!r}")
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
    def parse(cls: type[_B], spec: Any, dimension: str | None = None) -> _B:
        """A band (`'<= 1200ms'`, a number) or `{pass: ..., warn: ...}`."""
        if not isinstance(spec, dict):
            return cls(Band.parse(spec, dimension))
        unknown = set(spec) - {"pass", "warn"}
        if unknown or "pass" not in spec:
            raise BandError(
                f"bands {spec!r}: expected a mapping with 'pass' and optionally 'warn', "
                f"such as {{pass: '<= 1200ms', warn: '<= 2000ms'}}"
            )
        warn = spec.get("warn")
        return cls(
            Band.parse(spec["pass"], dimension),
            Band.parse(warn, dimension) if warn is not None else None,
        )

    def grade(self, value: Number, value_unit: str = "") -> str:
        """PASS inside the PASS band, WARN inside the WARN band, else FAIL."""
        if self.pass_band.holds(value, value_unit):
            return PASS
        if self.warn_band is not None and self.warn_band.holds(value, value_unit):
            return WARN
        return FAIL

    def __str__(self) -> str:
        text = f"PASS {self.pass_band}"
        return f"{text}, WARN {self.warn_band}" if self.warn_band else text
