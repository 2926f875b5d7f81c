"""The check engine: run a validated catalog concurrently and return graded results.

Each check runs in its own thread (at most `concurrency` at once) through the
`stagegate_run_check` hook, with up to `retries` extra attempts `delay` seconds apart
while it FAILs or ERRORs, and an overall deadline of
`(retries + 1) * (timeout + what the type adds, e.g. a latency series) + retries * delay`
(+ a grace second) after which it is reported as ERROR and abandoned: a hung dependency
never hangs the run. Each finished result is graded once through `stagegate_grade_result`
(`stagegate.grading`, the one grader).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ansible_collections.stagegate.release.plugins.module_utils._checks_common import (
    worth_retrying,
)
from ansible_collections.stagegate.release.plugins.module_utils._checks_runner import (
    Job,
    attempts,
    deadline_for,
    redactor_for,
    run_bounded,
)

from stagegate.catalog import CheckSpec
from stagegate.checks import CheckType, Outcome, RunContext
from stagegate.grading import Grade, apply_grade
from stagegate.plugins import Hooks, get_hooks
from stagegate.results import CheckResult, Severity, Status

DEFAULT_CONCURRENCY = 16


def deadline_s(spec: CheckSpec, check_type: CheckType | None = None) -> float:
    """`(retries + 1) * (timeout + what the type adds) + retries * delay + 1 s`."""
    return deadline_for(spec.to_dict(), check_type)


def make_result(spec: CheckSpec, status: Status, message: str, **fields: Any) -> CheckResult:
    return CheckResult(
        name=spec.name,
        group=spec.group,
        type=spec.type,
        status=status,
        severity=spec.severity,
        message=message,
        tags=list(spec.tags),
        **fields,
    )


def result_from_outcome(spec: CheckSpec, outcome: Outcome | dict[str, Any]) -> CheckResult:
    """Turn a check type's outcome (object, or dict from the host module) into an ungraded
    result: what it measured, with its `measurements` kept for the grader."""
    data = outcome.to_dict() if isinstance(outcome, Outcome) else outcome
    details = dict(data.get("details", {}))
    if data.get("measurements"):
        details["measurements"] = list(data["measurements"])
    return make_result(
        spec,
        Status(data["status"]),
        data.get("message", ""),
        value=data.get("value"),
        threshold=data.get("threshold"),
        metrics=dict(data.get("metrics", {})),
        details=details,
    )


def _attempt(spec: CheckSpec, hooks: Hooks, context: RunContext) -> CheckResult:
    try:
        result = hooks.run_check(check=spec, context=context)
    except Exception as exc:
        return make_result(
            spec, Status.ERROR, context.redactor.text(f"plugin error {type(exc).__name__}: {exc}")
        )
    if result is None:
        return make_result(spec, Status.ERROR, f"no plugin ran check type {spec.type!r}")
    return result


def _run_one(
    spec: CheckSpec,
    hooks: Hooks,
    types: dict[str, CheckType],
    check_mode: bool,
    cancelled: threading.Event,
) -> CheckResult:
    started = time.monotonic()
    context = RunContext(
        name=spec.name,
        timeout=spec.timeout,
        check_mode=check_mode,
        cancelled=cancelled,
        redactor=redactor_for(types[spec.type], spec.options),  # the catalog checked the type
        extra={"types": types},
    )
    result, number = attempts(
        spec.retries + 1,
        spec.delay,
        cancelled,
        lambda: _attempt(spec, hooks, context),
        lambda r: worth_retrying(str(r.status), r.details),
    )
    result.attempts = number
    result.duration_ms = round((time.monotonic() - started) * 1000, 1)
    return _graded(spec, result, hooks)


def _graded(spec: CheckSpec, result: CheckResult, hooks: Hooks) -> CheckResult:
    """The result graded by the one grader, through `stagegate_grade_result`."""
    try:
        grade = hooks.grade_result(result=result, check=spec)
    except Exception as exc:
        grade = Grade(Status.ERROR, f"grading plugin error {type(exc).__name__}: {exc}")
    return apply_grade(result, grade)


def run_checks(
    specs: list[CheckSpec],
    *,
    hooks: Hooks | None = None,
    check_mode: bool = False,
    concurrency: int = DEFAULT_CONCURRENCY,
    max_failures: int | None = None,
) -> list[CheckResult]:
    """Run the checks concurrently; results in catalog order, graded. Checks of a type that
    `runs_alone` (a load run) start after the others have finished, one at a time.

    `max_failures` is a failure budget: once that many critical checks have graded FAIL
    or ERROR, checks not yet started are reported SKIP instead of run.
    """
    hooks = hooks or get_hooks()
    types = hooks.check_types()

    def job(spec: CheckSpec) -> Job[CheckResult]:
        seconds = deadline_s(spec, types.get(spec.type))

        def timed_out() -> CheckResult:
            result = make_result(
                spec,
                Status.ERROR,
                f"timed out after {seconds:g}s (timeout {spec.timeout:g}s"
                f" x {spec.retries + 1} attempts)",
                duration_ms=seconds * 1000,
            )
            return _graded(spec, result, hooks)

        def skipped() -> CheckResult:
            reason = f"not run: failure budget of {max_failures} critical failures used up"
            return _graded(spec, make_result(spec, Status.SKIP, reason, attempts=0), hooks)

        check_type = types.get(spec.type)
        return Job(
            run=lambda cancelled: _run_one(spec, hooks, types, check_mode, cancelled),
            deadline_s=seconds,
            on_timeout=timed_out,
            on_skip=skipped,
            alone=check_type is not None and check_type.runs_alone,
        )

    def budget_used(done: list[CheckResult]) -> bool:
        failed = [r for r in done if r.severity is Severity.CRITICAL and r.status in _FAILED]
        return max_failures is not None and len(failed) >= max_failures

    return run_bounded([job(spec) for spec in specs], concurrency, budget_used)


_FAILED = (Status.FAIL, Status.ERROR)


def graded_host_results(
    specs: list[CheckSpec], outcomes: list[dict[str, Any]], hooks: Hooks | None = None
) -> list[CheckResult]:
    """Results of checks that ran on the target host (the host_checks module's outcomes):
    graded here by the grading hook (measurements included), as for controller checks."""
    hooks = hooks or get_hooks()
    graded = []
    for spec, outcome in zip(specs, outcomes, strict=True):
        result = result_from_outcome(spec, outcome)
        result.attempts = int(outcome.get("attempts", 1))
        result.duration_ms = float(outcome.get("duration_ms", 0.0))
        result.details["ran_on"] = "host"
        graded.append(_graded(spec, result, hooks))
    return graded
