# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The contract every check type follows, on the controller and on the target host.

Standard library only. A check type is a name, an option schema and a `run(options,
context)` function returning an `Outcome`: the status of its own assertions (PASS, FAIL,
ERROR, SKIP), a message, the measured value, and `measurements` that the controller
grades against PASS/WARN bands (`stagegate.bands`), so band logic lives in one place.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ansible.module_utils.common.validation import (
    check_type_bool,
    check_type_float,
    check_type_int,
)
from ansible_collections.stagegate.release.plugins.module_utils._checks_redact import MASK, Redactor

PASS, WARN, FAIL, SKIP, ERROR = "PASS", "WARN", "FAIL", "SKIP", "ERROR"
_RANK = {PASS: 0, SKIP: 0, WARN: 1, FAIL: 2, ERROR: 3}


def worst(*statuses: str) -> str:
    """The most severe of some statuses (ERROR > FAIL > WARN > PASS/SKIP)."""
    return max(statuses, key=lambda s: _RANK[s]) if statuses else PASS


class CheckError(Exception):
    """A check could not measure (unreachable, bad response): becomes an ERROR outcome."""


class FinalCheckError(CheckError):
    """A failure another attempt cannot change (a refused password): an ERROR outcome that is
    not retried; its details say so under NOT_RETRIED."""


NOT_RETRIED = "not_retried"


def worth_retrying(status: str, details: dict[str, Any]) -> bool:
    """Whether a check's attempt is tried again (while it has retries left): a FAIL or an ERROR,
    unless the ERROR said another attempt cannot change it (FinalCheckError)."""
    return status in (FAIL, ERROR) and not details.get(NOT_RETRIED)


@dataclass
class Outcome:
    """What one attempt of one check found."""

    status: str
    message: str = ""
    value: Any = None
    threshold: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    measurements: list[dict[str, Any]] = field(default_factory=list)

    def measure(self, name: str, value: float, unit: str = "", bands: Any = None) -> None:
        """Record a metric; with `bands` ({pass:, warn:}) the controller grades it."""
        # one figure for the metric and its graded measurement, so their texts never differ
        self.metrics[name] = figure = round(float(value), 3)
        if bands is not None:
            self.measurements.append({"name": name, "value": figure, "unit": unit, "bands": bands})

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            # one line: libpq's and other libraries' messages hold newlines and tabs, which broke
            # the progress lines and report.md's lists and tables
            "message": " ".join(self.message.split()),
            "value": self.value,
            "threshold": self.threshold,
            "metrics": dict(self.metrics),
            "details": dict(self.details),
            "measurements": list(self.measurements),
        }


class Assertions:
    """Collects failed expectations of one check into an Outcome."""

    def __init__(self) -> None:
        self.failures: list[str] = []
        self.passed: list[str] = []

    def expect(self, ok: bool, what: str, failure: str) -> bool:
        (self.passed if ok else self.failures).append(what if ok else failure)
        return ok

    def outcome(self, ok_message: str, **fields: Any) -> Outcome:
        if self.failures:
            return Outcome(FAIL, "; ".join(self.failures), **fields)
        return Outcome(PASS, ok_message, **fields)


@dataclass
class RunContext:
    """What a check's run function may use besides its options."""

    name: str = ""
    timeout: float = 10.0
    check_mode: bool = False
    redactor: Redactor = field(default_factory=Redactor)
    extra: dict[str, Any] = field(default_factory=dict)
    cancelled: threading.Event = field(default_factory=threading.Event)


RunFunction = Callable[[dict[str, Any], RunContext], Outcome]


def _none(options: dict[str, Any]) -> list[str]:
    return []


@dataclass(frozen=True)
class CheckType:
    """A kind of check: the catalog's `type:` name, its options and how to run it.

    `options` maps option names to specs like Ansible's argument_spec:
    {type: str|int|float|bool|list|dict|intlist|bands|raw, required, default, choices,
    minimum, maximum, elements, no_log, description}; values are converted by `coerce`.
    `read_only` (a bool, or a function of the options) says whether a check only
    observes: only those run in check mode.
    `host_capable` types may run on the target host through the module.
    `extra_seconds(options, timeout)` is how long one attempt may take beyond `timeout`
    (a series of requests, each with its own timeout): the engine's deadline adds it.
    `validate(options)` returns what the option schema cannot say (options that exclude or
    need each other), each problem naming the option; `option_errors` runs it.
    `runs_alone` types (a load run) start after the other checks of the run have finished and
    nothing runs beside them: their load would distort the others' latencies and timeouts.
    """

    name: str
    options: Mapping[str, Mapping[str, Any]]
    run: RunFunction
    description: str = ""
    read_only: bool | Callable[[dict[str, Any]], bool] = True
    host_capable: bool = True
    extra_seconds: Callable[[dict[str, Any], float], float] | None = None
    validate: Callable[[dict[str, Any]], list[str]] | None = None
    runs_alone: bool = False

    def option_errors(self, where: str, options: dict[str, Any]) -> list[str]:
        """The type's own cross-option problems of options that passed the schema."""
        return [f"{where}: {problem}" for problem in (self.validate or _none)(options)]

    def is_read_only(self, options: dict[str, Any], override: Any = None) -> bool:
        """Whether a check with these options only observes (and so runs in check mode): the
        catalog entry's own `read_only` (`override`, a bool) wins over the type's."""
        if isinstance(override, bool):
            return override
        return self.read_only(options) if callable(self.read_only) else self.read_only

    def attempt_seconds(self, options: dict[str, Any], timeout: float) -> float:
        """The longest one attempt of a check with these options may take."""
        extra = self.extra_seconds(options, timeout) if self.extra_seconds else 0.0
        return timeout + extra

    def secret_options(self) -> list[str]:
        return [name for name, spec in self.options.items() if spec.get("no_log")]


_TYPE_CHECKS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "str": (str, "a string"),
    "int": (int, "an integer"),
    "float": ((int, float), "a number"),
    "bool": (bool, "true or false"),
    "list": (list, "a list"),
    "dict": (dict, "a mapping"),
}
_SCALAR_CHECKS: dict[str, Callable[[Any], Any]] = {
    "int": check_type_int,
    "float": check_type_float,
    "bool": check_type_bool,
}


def coerce(value: Any, kind: str) -> tuple[Any, bool]:
    """(value as `kind`, True), or (value, False) when it is not one.

    The one conversion rule for every check option, catalog key and `stagegate_*` variable:
    Ansible's own argument-spec conversions (`check_type_int`, `check_type_float`,
    `check_type_bool`), so a number or boolean written as text (what Jinja templating and
    `-e` give: `timeout: "{{ t }}"` arrives as "3") is accepted exactly where Ansible would
    accept it. A boolean is never a number; numbers must be finite. Containers and strings
    are not converted here.
    """
    convert = _SCALAR_CHECKS.get(kind)
    if convert is None:
        return value, True
    if kind in ("int", "float") and isinstance(value, bool):
        return value, False
    if kind == "bool" and not isinstance(value, (bool, str, int, float)):
        return value, False
    try:
        converted = convert(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        return value, False
    if kind == "float" and not math.isfinite(converted):
        return value, False
    return converted, True


def _int_list(value: Any) -> tuple[Any, bool]:
    items = value if isinstance(value, list) else [value]
    converted = [coerce(item, "int") for item in items]
    if not all(ok for _, ok in converted):
        return value, False
    numbers = [number for number, _ in converted]
    return (numbers if isinstance(value, list) else numbers[0]), True


def _regex(value: Any) -> tuple[Any, bool]:
    try:
        re.compile(value)
    except (re.error, TypeError):
        return value, False
    return value, isinstance(value, str)


_SPECIAL_KINDS: dict[str, tuple[Callable[[Any], tuple[Any, bool]], str]] = {
    "regex": (_regex, "a regular expression (Python re syntax)"),
    "raw": (lambda value: (value, True), "anything"),
    "intlist": (_int_list, "an integer or a list of integers"),
    "bands": (
        lambda value: (
            value,
            isinstance(value, (str, int, float, dict)) and not isinstance(value, bool),
        ),
        "a band such as '<= 200ms' or {pass: '<= 200ms', warn: '<= 500ms'}",
    ),
}


def _typed(value: Any, kind: str, elements: str | None) -> tuple[Any, str | None]:
    """(value converted to `kind`, None), or (value, what it should have been)."""
    if kind in _SPECIAL_KINDS:
        accepts, expected = _SPECIAL_KINDS[kind]
        converted, ok = accepts(value)
        return (converted, None) if ok else (value, expected)
    py_type, expected = _TYPE_CHECKS[kind]
    value, ok = coerce(value, kind)
    if not ok or not isinstance(value, py_type):
        return value, expected
    if kind == "list" and elements:
        items = [_typed(item, elements, None) for item in value]
        wrong = [(n, v) for n, (v, bad) in enumerate(items) if bad]
        if wrong and elements in _SPECIAL_KINDS:
            n, item = wrong[0]
            return value, f"a list of items each {_SPECIAL_KINDS[elements][1]}; item {n} = {item!r}"
        if wrong:
            return value, f"a list of {_TYPE_CHECKS.get(elements, (None, elements))[1]}"
        return [item for item, _ in items], None
    return value, None


def validate_options(
    where: str,
    options: Mapping[str, Any],
    schema: Mapping[str, Mapping[str, Any]],
    band_parser: Callable[[Any], Any] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Check `options` against `schema`; return (options with defaults, errors).

    Each error names `where` (the check), the key, the value (masked for no_log options)
    and what was expected. A `dict` option with its own `options` is checked the same way.
    """
    errors = [
        f"{where}: unknown option '{key}'; expected one of: {', '.join(sorted(schema))}"
        for key in sorted(set(options) - set(schema))
    ]
    normal: dict[str, Any] = {}
    for key, spec in schema.items():
        if key not in options or options[key] is None:
            if spec.get("required"):
                described = spec.get("description", spec["type"])
                errors.append(f"{where}: option '{key}' is required ({described})")
            normal[key] = spec.get("default")
            continue
        normal[key], expected = _checked_value(
            where, key, value=options[key], spec=spec, band_parser=band_parser, errors=errors
        )
        if expected is not None:
            shown = MASK if spec.get("no_log") else repr(options[key])
            errors.append(f"{where}: option '{key}' = {shown}: expected {expected}")
    return normal, errors


def typed_value(value: Any, spec: Mapping[str, Any]) -> tuple[Any, str | None]:
    """(the value converted by `coerce` to the spec's type, None), or (value, what was
    expected) when its type, choices, minimum or maximum do not fit (nested options not
    included)."""
    value, expected = _typed(value, spec["type"], spec.get("elements"))
    if expected is None and "choices" in spec and value not in spec["choices"]:
        expected = "one of " + ", ".join(map(str, spec["choices"]))
    low, high = spec.get("minimum"), spec.get("maximum")
    if (low is not None or high is not None) and (
        expected is not None
        or (low is not None and value < low)
        or (high is not None and value > high)
    ):
        expected = _range_text(spec["type"], low, high)
    return value, expected


def _range_text(kind: str, low: float | None, high: float | None) -> str:
    """'a number >= 0.1', 'an integer <= 64' or 'an integer from 1 to 64'."""
    what = _TYPE_CHECKS[kind][1]
    if low is not None and high is not None:
        return f"{what} from {low:g} to {high:g}"
    return f"{what} >= {low:g}" if low is not None else f"{what} <= {high:g}"


def _checked_value(
    where: str,
    key: str,
    *,
    value: Any,
    spec: Mapping[str, Any],
    band_parser: Callable[[Any], Any] | None,
    errors: list[str],
) -> tuple[Any, str | None]:
    """(the normalised value, what was expected when it is wrong, else None)."""
    value, expected = typed_value(value, spec)
    if expected is None and spec["type"] == "bands" and band_parser is not None:
        try:
            band_parser(value)
        except ValueError as exc:
            expected = str(exc)
    if expected is None and spec["type"] == "dict" and "options" in spec:
        value, nested = validate_options(
            f"{where} option '{key}'", value, spec["options"], band_parser
        )
        errors.extend(nested)
    return value, expected


# The keys of a catalog entry besides its type's options that take a value of a type (the
# controller's catalog and the host module read them with the same rule).
ENTRY_OPTIONS: dict[str, dict[str, Any]] = {
    "timeout": {"type": "float", "default": 10.0, "minimum": 0.001},
    "retries": {"type": "int", "default": 0, "minimum": 0},
    "delay": {"type": "float", "default": 1.0, "minimum": 0},
    "read_only": {"type": "bool"},
}
