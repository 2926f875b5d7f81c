"""Gate plugin for seed 003's state-flapping guardrail, which the data form cannot express.

"platform_state_transitions should remain <= 4 for a 5-minute load window; > 4 indicates
state flapping and should be treated as WARN (or FAIL if combined with any other fail
condition)": the rate is normalised to the window, and the gate looks at the other gates'
outcomes, so it is a `late` gate type registered through `stagegate_gate_types`.
"""

from __future__ import annotations

from stagegate.gates import (
    GateContext,
    GateEvaluationError,
    GateResult,
    GateRule,
    GateType,
    ValidationContext,
    number_at,
    validate_file,
)
from stagegate.grading import is_failure
from stagegate.hookspecs import hookimpl
from stagegate.results import Status


def _is_number(value: object) -> bool:
    """`window_seconds` is the load phase in seconds, or a JMESPath to it in the file."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _validate(rule: GateRule, ctx: ValidationContext) -> None:
    validate_file(rule, ctx)
    rule.query("transitions")
    if not _is_number(rule.options.get("window_seconds")):
        rule.query("window_seconds")
    for key in ("max_transitions", "per_seconds"):
        value = rule.options.get(key, 1)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise rule.error(key, f"expected a positive number, got {value!r}")


def _evaluate(rule: GateRule, ctx: GateContext) -> GateResult:
    transitions = number_at(rule, ctx, "transitions")
    given = rule.options["window_seconds"]
    window = float(given) if _is_number(given) else number_at(rule, ctx, "window_seconds")
    if window <= 0:
        raise GateEvaluationError(f"key 'window_seconds': window is {window:g} s")
    per = float(rule.options.get("per_seconds", 300))
    limit = float(rule.options.get("max_transitions", 4))
    rate = transitions * per / window
    threshold = f"<= {limit:g} transitions per {per:g} s"
    shown = f"{transitions:g} transitions in {window:g} s = {rate:.1f} per {per:g} s"
    if rate <= limit:
        return rule.result(Status.PASS, f"{shown} ({threshold})", value=rate, threshold=threshold)
    failed = [g.name for g in ctx.earlier if is_failure(g.status)]
    if failed:
        message = f"{shown}: flapping combined with failed gate(s) {', '.join(failed)}"
        return rule.result(Status.FAIL, message, value=rate, threshold=threshold)
    return rule.result(Status.WARN, f"{shown}: flapping", value=rate, threshold=threshold)


FLAPPING = GateType(
    "flapping",
    frozenset({"file", "transitions", "window_seconds", "max_transitions", "per_seconds"}),
    _validate,
    _evaluate,
    late=True,
)


@hookimpl
def stagegate_gate_types() -> list[GateType]:
    return [FLAPPING]
