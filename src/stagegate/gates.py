"""Gates: rules over graded check results and over values in result files.

`stagegate_gates` is data (see docs/gates.md)::

    score: {pass: ">= 90%", warn: ">= 75%"}      # Keptn-like total score (optional)
    key_checks: [api_health]                       # fail the gate on their own
    weights: {api_latency: 2}                      # score weight per check (default 1)
    thresholds: {api_latency: {metric: p95_ms, pass: "<= 1200ms", warn: "<= 2000ms"}}
    results_files: {load_simulation: /path/staging_load_simulation.json}
    profiles: [seed003_load_simulation]
    rules:
      - {name: unit tests, type: pass_rate, group: unit, min: "99%", critical: true}
      - {name: p95 regression, type: baseline, check: api_latency, metric: p95_ms,
         max_regression: "10%"}
      - {name: p95, type: value, file: load_simulation,
         query: '"Performance Metrics".P95_latency_ms', unit: ms,
         pass: "<= 1200ms", warn: "<= 2000ms", critical: true}
      - {name: memory not growing, type: trend, check: containers, metric: api.memory_mb,
         runs: 6, method: fit, relative: true, pass: "<= 5%", warn: "<= 20%"}

Each rule's `type` names a gate type. The built-in types (`BUILTIN_GATE_TYPES`) come from
this module's `stagegate_gate_types` implementation, registered as the default plugin
``stagegate.gates`` before entry points, so a plugin adds a type (or replaces one) the same
way, and `STAGEGATE_BLOCK_PLUGINS=stagegate.gates` removes them. Everything is validated up
front (`validate_gates`): an unknown check, a band that does not parse, a JMESPath that does
not compile, an undeclared results file each raise `GateConfigError` naming the gate and
the key.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import jmespath
import jmespath.exceptions

from stagegate.bands import Band, BandError, Bands
from stagegate.grading import ThresholdError, check_status, is_failure, parse_thresholds, worst
from stagegate.hookspecs import hookimpl
from stagegate.results import CheckResult, Status
from stagegate.trend import METHODS, points, relative, rise

_RULE_KEYS = {"name", "type", "critical", "weight", "category", "description"}


class GateConfigError(ValueError):
    """Bad gate configuration; the message starts with the gate and the key."""


@dataclass
class GateResult:
    """The outcome of one gate (report.json `gates[]`)."""

    name: str
    type: str
    status: Status
    critical: bool
    message: str
    value: Any = None
    threshold: str | None = None
    category: str = ""
    weight: float = 1.0
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = str(self.status)
        return data


@dataclass
class GateContext:
    """What a gate may look at while it is evaluated."""

    checks: dict[str, CheckResult]
    documents: dict[str, Any]
    baseline: dict[str, dict[str, float]]
    types: Mapping[str, GateType]
    earlier: list[GateResult] = field(default_factory=list)
    history: list[Mapping[str, Any]] = field(default_factory=list)
    """Earlier runs of this release, oldest first (`stagegate.ledger.release_history`)."""


@dataclass(frozen=True)
class ValidationContext:
    """What validation knows: check names in the catalog (None: unknown yet), files declared."""

    check_names: frozenset[str] | None
    groups: frozenset[str] | None
    files: frozenset[str]
    types: Mapping[str, GateType]


@dataclass(frozen=True)
class GateType:
    """A kind of gate. `late` types are evaluated after all others (they may read `earlier`)."""

    name: str
    keys: frozenset[str]
    validate: Callable[[GateRule, ValidationContext], None]
    evaluate: Callable[[GateRule, GateContext], GateResult]
    late: bool = False


@dataclass(frozen=True)
class GateRule:
    """One validated rule: its name, type, criticality and the type's own options."""

    name: str
    type: str
    critical: bool
    options: Mapping[str, Any]
    weight: float = 1.0
    category: str = ""

    def error(self, key: str, problem: str) -> GateConfigError:
        return GateConfigError(f"gate {self.name!r} ({self.type}), key {key!r}: {problem}")

    def result(self, status: Status, message: str, **extra: Any) -> GateResult:
        """A GateResult for this rule; a failed non-critical gate is a WARN."""
        if status is Status.FAIL and not self.critical:
            status, message = Status.WARN, f"{message} (non-critical gate: WARN)"
        category = self.category or self.type
        return GateResult(
            self.name,
            self.type,
            status,
            self.critical,
            message,
            category=category,
            weight=self.weight,
            **extra,
        )

    def bands(self) -> Bands:
        spec = {k: self.options[k] for k in ("pass", "warn") if k in self.options}
        if "pass" not in spec:
            raise self.error("pass", "missing; expected a band such as '<= 1200ms'")
        try:
            bands = Bands.parse(spec)
        except BandError as exc:
            raise self.error("pass/warn", str(exc)) from exc
        return bands

    def query(self, key: str) -> Any:
        text = self.options.get(key)
        if not isinstance(text, str) or not text.strip():
            raise self.error(key, f"expected a JMESPath expression, got {text!r}")
        try:
            return jmespath.compile(text)
        except jmespath.exceptions.JMESPathError as exc:
            raise self.error(key, f"JMESPath {text!r} does not compile: {exc}") from exc


# ---- values from result files ---------------------------------------------------------


def _document(rule: GateRule, ctx: GateContext) -> Any:
    key = str(rule.options["file"])
    if key not in ctx.documents:
        raise GateEvaluationError(f"results file {key!r} was not loaded")
    doc = ctx.documents[key]
    if isinstance(doc, _Unreadable):
        raise GateEvaluationError(f"results file {key!r} ({doc.path}): {doc.problem}")
    return doc


def number_at(rule: GateRule, ctx: GateContext, key: str) -> float:
    found = rule.query(key).search(_document(rule, ctx))
    if isinstance(found, bool) or not isinstance(found, int | float):
        raise GateEvaluationError(
            f"key {key!r}: {rule.options[key]!r} gave {found!r}, expected a number"
        )
    return float(found)


class GateEvaluationError(Exception):
    """A gate that cannot be evaluated on this data (missing value, file unreadable).

    Raised by gate types while evaluating; the gate becomes an ERROR result with the message.
    """


@dataclass(frozen=True)
class _Unreadable:
    path: str
    problem: str


def load_documents(files: Mapping[str, str]) -> dict[str, Any]:
    """Parse each declared results file; a missing or malformed one is kept as the reason."""
    documents: dict[str, Any] = {}
    for key, path in files.items():
        try:
            documents[key] = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            documents[key] = _Unreadable(str(path), "file not found")
        except (OSError, ValueError) as exc:
            documents[key] = _Unreadable(str(path), f"not valid JSON: {exc}")
    return documents


def validate_file(rule: GateRule, ctx: ValidationContext) -> None:
    key = rule.options.get("file")
    if key not in ctx.files:
        raise rule.error(
            "file",
            f"{key!r} is not declared in stagegate_gates.results_files "
            f"(declared: {sorted(ctx.files) or 'none'})",
        )


def _validate_value(rule: GateRule, ctx: ValidationContext) -> None:
    validate_file(rule, ctx)
    rule.query("query")
    rule.bands()


def _evaluate_value(rule: GateRule, ctx: GateContext) -> GateResult:
    bands = rule.bands()
    unit = str(rule.options.get("unit", ""))
    value = number_at(rule, ctx, "query")
    shown = f"{value:g}{(' ' + unit) if unit else ''}"
    return rule.result(
        bands.grade(value, unit), f"{shown} ({bands})", value=value, threshold=str(bands)
    )


def _validate_ratio(rule: GateRule, ctx: ValidationContext) -> None:
    validate_file(rule, ctx)
    rule.query("numerator")
    if "denominator_value" not in rule.options:
        rule.query("denominator")
    rule.bands()


def _evaluate_ratio(rule: GateRule, ctx: GateContext) -> GateResult:
    """numerator / denominator as a share in %, graded against bands in %."""
    bands = rule.bands()
    numerator = number_at(rule, ctx, "numerator")
    if "denominator_value" in rule.options:
        denominator = float(rule.options["denominator_value"])
    else:
        denominator = number_at(rule, ctx, "denominator")
    if denominator == 0:
        raise GateEvaluationError("denominator is 0: the share is undefined")
    share = numerator / denominator * 100.0
    return rule.result(
        bands.grade(share, "%"),
        f"{numerator:g} / {denominator:g} = {share:.1f}% ({bands})",
        value=round(share, 2),
        threshold=str(bands),
        details={"numerator": numerator, "denominator": denominator},
    )


def _validate_each(rule: GateRule, ctx: ValidationContext) -> None:
    _validate_value(rule, ctx)


def _evaluate_each(rule: GateRule, ctx: GateContext) -> GateResult:
    """Every item of a mapping (or list) graded; the worst wins and the offenders are named."""
    bands = rule.bands()
    unit = str(rule.options.get("unit", ""))
    found = rule.query("query").search(_document(rule, ctx))
    pairs = found.items() if isinstance(found, dict) else enumerate(found or [])
    values = {str(k): v for k, v in pairs}
    try:
        grades = {k: bands.grade(float(v), unit) for k, v in values.items()}
    except (TypeError, ValueError) as exc:
        raise GateEvaluationError(
            f"key 'query': {rule.options['query']!r} gave a non-number"
        ) from exc
    if not grades:
        raise GateEvaluationError(f"key 'query': {rule.options['query']!r} found no items")
    status = worst(list(grades.values()))
    offenders = [k for k, s in grades.items() if s is not Status.PASS]
    message = (
        f"all {len(grades)} within PASS ({bands})"
        if not offenders
        else "outside PASS: " + ", ".join(f"{k}={values[k]}{unit}" for k in offenders)
    )
    return rule.result(status, message, value=values, threshold=str(bands))


# ---- rules over checks ----------------------------------------------------------------


def selected_checks(rule: GateRule, checks: Iterable[CheckResult]) -> list[CheckResult]:
    """The checks a rule selects by its `checks`, `group` or `tags` options."""
    names = set(rule.options.get("checks") or [])
    group = rule.options.get("group")
    tags = set(rule.options.get("tags") or [])
    return [
        c
        for c in checks
        if c.name in names or (group is not None and c.group == group) or tags & set(c.tags)
    ]


def validate_selection(rule: GateRule, ctx: ValidationContext) -> None:
    """Refuses a rule that selects no checks, or names a check or group not in the catalog."""
    if not any(rule.options.get(k) for k in ("checks", "group", "tags")):
        raise rule.error("checks", "select checks with 'checks', 'group' or 'tags'")
    if ctx.check_names is not None:
        for name in rule.options.get("checks") or []:
            if name not in ctx.check_names:
                raise rule.error("checks", f"names check {name!r}, which is not in the catalog")
    group = rule.options.get("group")
    if ctx.groups is not None and group is not None and group not in ctx.groups:
        raise rule.error("group", f"no check in the catalog has group {group!r}")


def _min_band(rule: GateRule) -> Band:
    raw = rule.options.get("min")
    text = f">= {raw}" if isinstance(raw, int | float) or str(raw)[:1].isdigit() else str(raw)
    try:
        band = Band.parse(text if "%" in text else f"{text}%")
    except BandError as exc:
        raise rule.error("min", str(exc)) from exc
    return band


def _validate_pass_rate(rule: GateRule, ctx: ValidationContext) -> None:
    validate_selection(rule, ctx)
    _min_band(rule)


def _pass_counts(selected: list[CheckResult]) -> tuple[float, float]:
    """(passed, counted): a check that reports test counts (the `suite` check's metrics
    `tests`, `passed`, `skipped`) counts its tests, skipped tests left out; others count 1."""
    passed = total = 0.0
    for check in selected:
        if check.status is Status.SKIP:
            continue
        if "tests" in check.metrics and "passed" in check.metrics:
            passed += check.metrics["passed"]
            total += check.metrics["tests"] - check.metrics.get("skipped", 0.0)
        else:
            passed += check.status in (Status.PASS, Status.WARN)
            total += 1
    return passed, total


def _evaluate_pass_rate(rule: GateRule, ctx: GateContext) -> GateResult:
    band = _min_band(rule)
    passed, total = _pass_counts(selected_checks(rule, ctx.checks.values()))
    if total == 0:
        return rule.result(Status.SKIP, "no check ran in this selection", threshold=str(band))
    rate = passed / total * 100.0
    status = Status.PASS if band.holds(rate, "%") else Status.FAIL
    return rule.result(
        status,
        f"{passed:g}/{total:g} passed = {rate:.1f}% (min {band})",
        value=round(rate, 2),
        threshold=f"pass rate {band}",
        details={"passed": passed, "total": total},
    )


_DIRECTIONS = ("lower_is_better", "higher_is_better")


def _validate_baseline(rule: GateRule, ctx: ValidationContext) -> None:
    _validate_baseline_names(rule, ctx)
    _regression_band(rule)
    if rule.options.get("direction", "lower_is_better") not in _DIRECTIONS:
        raise rule.error("direction", "expected lower_is_better or higher_is_better")


def _validate_baseline_names(rule: GateRule, ctx: ValidationContext) -> None:
    check = rule.options.get("check")
    if not check:
        raise rule.error("check", "missing; name the check whose metric is compared")
    if ctx.check_names is not None and check not in ctx.check_names:
        raise rule.error("check", f"names check {check!r}, which is not in the catalog")
    if not rule.options.get("metric"):
        raise rule.error("metric", "missing; name the metric, e.g. p95_ms")


def _regression_band(rule: GateRule) -> Band:
    raw = str(rule.options.get("max_regression", ""))
    try:
        return Band.parse(f"<= {raw.lstrip('+')}" if raw[:1].isdigit() or raw[:1] == "+" else raw)
    except BandError as exc:
        raise rule.error("max_regression", f"{exc}; e.g. '10%'") from exc


def _evaluate_baseline(rule: GateRule, ctx: GateContext) -> GateResult:
    check, metric = str(rule.options["check"]), str(rule.options["metric"])
    band = _regression_band(rule)
    base = ctx.baseline.get(check, {}).get(metric)
    if base is None:
        return rule.result(Status.SKIP, "no last good release with this metric in the ledger")
    if check not in ctx.checks or metric not in ctx.checks[check].metrics:
        raise GateEvaluationError(f"check {check!r} has no metric {metric!r} in this run")
    current = ctx.checks[check].metrics[metric]
    if base == 0:
        raise GateEvaluationError(f"baseline {metric} is 0: a relative change is undefined")
    change = (current - base) / base * 100.0
    if rule.options.get("direction", "lower_is_better") == "higher_is_better":
        change = -change
    status = Status.PASS if band.holds(change, "%") else Status.FAIL
    return rule.result(
        status,
        f"{metric} {current:g} vs last good {base:g}: {change:+.1f}% (allowed {band})",
        value=round(change, 2),
        threshold=f"regression {band}",
        details={"current": current, "baseline": base},
    )


def _validate_all(rule: GateRule, ctx: ValidationContext) -> None:
    parts = rule.options.get("parts")
    if not isinstance(parts, list) or not parts:
        raise rule.error("parts", "expected a non-empty list of gate rules")
    for part in _parts(rule):
        _validate_rule(part, ctx)


def _parts(rule: GateRule) -> list[GateRule]:
    return [
        parse_rule(dict(part, critical=rule.critical), f"{rule.name}.parts[{i}]")
        for i, part in enumerate(rule.options["parts"])
    ]


def _evaluate_all(rule: GateRule, ctx: GateContext) -> GateResult:
    """Several conditions that make one gate (seed 003's queue drain): the worst part wins."""
    results = [evaluate_rule(part, ctx) for part in _parts(rule)]
    status = worst([r.status for r in results])
    message = "; ".join(f"{r.name.split('.')[-1]} {r.status}: {r.message}" for r in results)
    return rule.result(status, message, details={"parts": [r.to_dict() for r in results]})


def _int_option(rule: GateRule, key: str, default: int, minimum: int) -> int:
    raw = rule.options.get(key, default)
    if isinstance(raw, bool) or not isinstance(raw, int | str) or not str(raw).isdigit():
        raise rule.error(key, f"expected a whole number >= {minimum}, got {raw!r}")
    if int(raw) < minimum:
        raise rule.error(key, f"expected a whole number >= {minimum}, got {raw!r}")
    return int(raw)


def _validate_trend(rule: GateRule, ctx: ValidationContext) -> None:
    _validate_baseline_names(rule, ctx)
    runs = _int_option(rule, "runs", 6, 2)
    if _int_option(rule, "min_runs", 3, 2) > runs:
        raise rule.error("min_runs", f"more than runs ({runs}): the gate could never grade")
    if rule.options.get("method", "delta") not in METHODS:
        raise rule.error("method", f"expected one of {', '.join(METHODS)}")
    if rule.options.get("direction", "lower_is_better") not in _DIRECTIONS:
        raise rule.error("direction", f"expected one of {', '.join(_DIRECTIONS)}")
    if not isinstance(rule.options.get("relative", False), bool):
        raise rule.error("relative", "expected true or false")
    bands = rule.bands()
    if rule.options.get("relative") and any(
        band is not None and band.unit not in ("%", "")
        for band in (bands.pass_band, bands.warn_band)
    ):
        raise rule.error("pass/warn", "relative: true grades the rise in % of the first run")


def _evaluate_trend(rule: GateRule, ctx: GateContext) -> GateResult:
    """How much a check metric rose over the last `runs` runs of this release (the ledger's
    re-validations, then this run), graded against bands: absolute in `unit`, or with
    `relative` in % of the window's start. A fall is the bad way for higher_is_better."""
    check, metric = str(rule.options["check"]), str(rule.options["metric"])
    runs, least = _int_option(rule, "runs", 6, 2), _int_option(rule, "min_runs", 3, 2)
    if check not in ctx.checks or metric not in ctx.checks[check].metrics:
        raise GateEvaluationError(f"check {check!r} has no metric {metric!r} in this run")
    now = points(
        [{"metrics": {check: ctx.checks[check].metrics}, "run_id": "this run"}], check, metric
    )
    window = (points(ctx.history, check, metric) + now)[-runs:]
    if len(window) < least:
        return rule.result(
            Status.SKIP,
            f"{len(window)} run(s) of this release with {check}.{metric} so far; "
            f"the trend needs {least} (min_runs)",
            details={"trend": [p.to_dict() for p in window]},
        )
    method = str(rule.options.get("method", "delta"))
    start, change = rise([p.value for p in window], method)
    if rule.options.get("direction", "lower_is_better") == "higher_is_better":
        change = -change
    unit = str(rule.options.get("unit", ""))
    bands = rule.bands()
    graded, shown = change, f"{change:+g}{unit}"
    if rule.options.get("relative"):
        graded, unit = relative(start, change), "%"
        shown = f"{graded:+.1f}% of {start:g}"
    first, last = window[0].value, window[-1].value
    return rule.result(
        bands.grade(graded, unit),
        f"{check}.{metric} over the last {len(window)} runs: {first:g} -> {last:g}, "
        f"{'fitted ' if method == 'fit' else ''}rise {shown} ({bands})",
        value=round(graded, 3),
        threshold=f"rise over {len(window)} runs {bands}",
        details={
            "trend": [p.to_dict() for p in window],
            "method": method,
            "start": start,
            "rise": change,
            "metric": f"{check}.{metric}",
        },
    )


BUILTIN_GATE_TYPES: list[GateType] = [
    GateType(
        "value",
        frozenset({"file", "query", "unit", "pass", "warn"}),
        _validate_value,
        _evaluate_value,
    ),
    GateType(
        "ratio",
        frozenset({"file", "numerator", "denominator", "denominator_value", "pass", "warn"}),
        _validate_ratio,
        _evaluate_ratio,
    ),
    GateType(
        "each", frozenset({"file", "query", "unit", "pass", "warn"}), _validate_each, _evaluate_each
    ),
    GateType(
        "pass_rate",
        frozenset({"checks", "group", "tags", "min"}),
        _validate_pass_rate,
        _evaluate_pass_rate,
    ),
    GateType(
        "baseline",
        frozenset({"check", "metric", "max_regression", "direction"}),
        _validate_baseline,
        _evaluate_baseline,
    ),
    GateType(
        "trend",
        frozenset(
            {"check", "metric", "runs", "min_runs", "method", "direction", "relative", "unit"}
            | {"pass", "warn"}
        ),
        _validate_trend,
        _evaluate_trend,
    ),
    GateType("all", frozenset({"parts"}), _validate_all, _evaluate_all),
]


@hookimpl
def stagegate_gate_types() -> list[GateType]:
    """The built-in gate types, provided like any plugin's (this module is a default plugin)."""
    return list(BUILTIN_GATE_TYPES)


def registry(types: Iterable[GateType] | None = None) -> dict[str, GateType]:
    """Gate types by name, in order (a later type of the same name replaces an earlier one);
    None: every type the default plugin manager's `stagegate_gate_types` gives."""
    if types is None:
        from stagegate.plugins import get_hooks  # noqa: PLC0415 - plugins load this module

        return get_hooks().gate_types()
    return {t.name: t for t in types}


# ---- parsing, validation, evaluation --------------------------------------------------


def parse_rule(raw: Mapping[str, Any], where: str) -> GateRule:
    if not isinstance(raw, Mapping):
        raise GateConfigError(f"{where}: expected a mapping, got {raw!r}")
    name = str(raw.get("name") or where)
    if not raw.get("type"):
        raise GateConfigError(f"gate {name!r}, key 'type': missing (e.g. value, pass_rate)")
    options = {k: v for k, v in raw.items() if k not in _RULE_KEYS}
    return GateRule(
        name,
        str(raw["type"]),
        bool(raw.get("critical", True)),
        options,
        float(raw.get("weight", 1)),
        str(raw.get("category", "")),
    )


@dataclass(frozen=True)
class GateConfig:
    """`stagegate_gates`, validated."""

    rules: list[GateRule]
    score_bands: Bands | None
    key_checks: list[str]
    weights: dict[str, float]
    thresholds: dict[str, Any]
    results_files: dict[str, str]
    recommendations: list[dict[str, Any]]
    types: dict[str, GateType]


_TOP_KEYS = {
    "rules",
    "score",
    "key_checks",
    "weights",
    "thresholds",
    "results_files",
    "profiles",
    "recommendations",
}


def validate_gates(
    spec: Mapping[str, Any] | None,
    check_names: Iterable[str] | None = None,
    groups: Iterable[str] | None = None,
    types: Iterable[GateType] | None = None,
    profiles: Mapping[str, Mapping[str, Any]] | None = None,
) -> GateConfig:
    """Validate `stagegate_gates` completely; the first problem raises GateConfigError."""
    spec = dict(spec or {})
    unknown = set(spec) - _TOP_KEYS
    if unknown:
        raise GateConfigError(
            f"stagegate_gates: unknown key(s) {sorted(unknown)}; expected {sorted(_TOP_KEYS)}"
        )
    spec = _merge_profiles(spec, profiles or {})
    known = registry(types)
    files = {str(k): str(v) for k, v in (spec.get("results_files") or {}).items()}
    names = frozenset(check_names) if check_names is not None else None
    ctx = ValidationContext(
        names, frozenset(groups) if groups is not None else None, frozenset(files), known
    )
    rules = [parse_rule(raw, f"rules[{i}]") for i, raw in enumerate(spec.get("rules") or [])]
    _check_unique([r.name for r in rules])
    for rule in rules:
        _validate_rule(rule, ctx)
    key_checks = [str(k) for k in spec.get("key_checks") or []]
    weights = {str(k): float(v) for k, v in (spec.get("weights") or {}).items()}
    for key, named in (("key_checks", key_checks), ("weights", list(weights))):
        for check in named:
            if names is not None and check not in names:
                raise GateConfigError(
                    f"stagegate_gates.{key}: names check {check!r}, which is not in the catalog"
                )
    try:
        score = Bands.parse(spec["score"]) if spec.get("score") else None
    except BandError as exc:
        raise GateConfigError(f"stagegate_gates.score: {exc}") from exc
    try:
        thresholds = parse_thresholds(spec.get("thresholds"))
    except ThresholdError as exc:
        raise GateConfigError(str(exc)) from exc
    for check in thresholds:
        if names is not None and check not in names:
            raise GateConfigError(
                f"stagegate_gates.thresholds: names check {check!r}, which is not in the catalog"
            )
    recommendations = list(spec.get("recommendations") or [])
    _validate_recommendations(recommendations, {r.name for r in rules})
    return GateConfig(rules, score, key_checks, weights, thresholds, files, recommendations, known)


def _validate_rule(rule: GateRule, ctx: ValidationContext) -> None:
    gate_type = ctx.types.get(rule.type)
    if gate_type is None:
        raise rule.error("type", f"unknown gate type; known: {sorted(ctx.types)}")
    extra = set(rule.options) - gate_type.keys
    if extra:
        raise rule.error(
            sorted(extra)[0],
            f"not an option of {rule.type} gates (options: {sorted(gate_type.keys)})",
        )
    gate_type.validate(rule, ctx)


def _check_unique(names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise GateConfigError(f"gate {name!r}, key 'name': two gates have this name")
        seen.add(name)


def _merge_profiles(
    spec: dict[str, Any], profiles: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """Profile rules and recommendations come first; the user's own follow.

    A `profiles` item is a name, or `{name: NAME, KEY: VALUE, ...}` setting the profile's
    `parameters`; a rule value `{parameter: KEY}` in the profile takes the given value or
    the parameter's default.
    """
    merged = dict(spec)
    rules: list[Any] = []
    recommendations: list[Any] = []
    for i, item in enumerate(spec.get("profiles") or []):
        settings = dict(item) if isinstance(item, Mapping) else {"name": item}
        name = settings.pop("name", None)
        where = f"stagegate_gates.profiles[{i}]"
        if name not in profiles:
            raise GateConfigError(f"{where}: unknown profile {name!r}; known: {sorted(profiles)}")
        values = _profile_parameters(f"{where} ({name})", profiles[name], settings)
        rules += [_with_parameters(rule, values) for rule in profiles[name].get("rules") or []]
        recommendations += list(profiles[name].get("recommendations") or [])
    merged["rules"] = rules + list(spec.get("rules") or [])
    merged["recommendations"] = recommendations + list(spec.get("recommendations") or [])
    return merged


def _profile_parameters(
    where: str, profile: Mapping[str, Any], settings: Mapping[str, Any]
) -> dict[str, Any]:
    declared = dict(profile.get("parameters") or {})
    unknown = sorted(set(settings) - set(declared))
    if unknown:
        raise GateConfigError(
            f"{where}: unknown parameter(s) {unknown}; the profile takes {sorted(declared)}"
        )
    return {key: settings.get(key, dict(spec).get("default")) for key, spec in declared.items()}


def _with_parameters(value: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(value, Mapping):
        if set(value) == {"parameter"}:
            return values[str(value["parameter"])]
        return {k: _with_parameters(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_parameters(v, values) for v in value]
    return value


def _validate_recommendations(rules: list[dict[str, Any]], gate_names: set[str]) -> None:
    for i, rule in enumerate(rules):
        where = f"stagegate_gates.recommendations[{i}]"
        if not isinstance(rule, Mapping) or not rule.get("advice") or "when" not in rule:
            raise GateConfigError(
                f"{where}: expected {{when: {{gate: [WARN, FAIL]}}, advice: ...}}"
            )
        for gate, statuses in dict(rule["when"]).items():
            if gate != "verdict" and not any(
                name == gate or fnmatchcase(name, gate) for name in gate_names
            ):
                raise GateConfigError(
                    f"{where}, key 'when': names gate {gate!r}, which is not "
                    f"defined (gates: {sorted(gate_names)})"
                )
            for status in statuses:
                if status not in (*Status.__members__, "GO", "GO_WITH_WARNINGS", "NO_GO"):
                    raise GateConfigError(f"{where}, key 'when.{gate}': unknown status {status!r}")


def evaluate_rule(rule: GateRule, ctx: GateContext) -> GateResult:
    try:
        return ctx.types[rule.type].evaluate(rule, ctx)
    except GateEvaluationError as exc:
        return rule.result(Status.ERROR, str(exc))
    except GateConfigError as exc:
        return rule.result(Status.ERROR, str(exc))


def key_check_gates(config: GateConfig, checks: Mapping[str, CheckResult]) -> list[GateResult]:
    """One gate per key check: it fails the release on its own."""
    out = []
    for name in config.key_checks:
        check = checks.get(name)
        if check is None:
            status, message = Status.ERROR, f"key check {name!r} did not run"
        else:
            # A key check fails the release even when its severity capped the grade at WARN.
            raw = check_status(check)
            failed = is_failure(check.status) or is_failure(raw)
            status = Status.FAIL if failed else check.status
            message = f"key check {name}: {raw if failed and raw else check.status}" + (
                f" ({check.message})" if check.message else ""
            )
        out.append(
            GateResult(
                f"key check {name}", "key_check", status, True, message, category="key checks"
            )
        )
    return out


def evaluate_gates(
    config: GateConfig,
    checks: list[CheckResult],
    baseline: Mapping[str, Mapping[str, float]] | None = None,
    documents: Mapping[str, Any] | None = None,
    history: Sequence[Mapping[str, Any]] | None = None,
) -> list[GateResult]:
    """Evaluate key checks, then every rule (late types last, seeing the others' results).
    `history`: the earlier runs of this release that `trend` gates read (ledger records)."""
    by_name = {c.name: c for c in checks}
    docs = dict(documents) if documents is not None else load_documents(config.results_files)
    base = {k: dict(v) for k, v in (baseline or {}).items()}
    ctx = GateContext(by_name, docs, base, config.types, history=list(history or []))
    ctx.earlier.extend(key_check_gates(config, by_name))
    for rule in sorted(config.rules, key=lambda r: config.types[r.type].late):
        ctx.earlier.append(evaluate_rule(rule, ctx))
    order = {r.name: i for i, r in enumerate(config.rules)}
    keys = [g for g in ctx.earlier if g.type == "key_check"]
    rest = sorted((g for g in ctx.earlier if g.type != "key_check"), key=lambda g: order[g.name])
    return keys + rest
