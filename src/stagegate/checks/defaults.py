"""Default hook implementations: run a check by its type, grade it (`stagegate.grading`, the one
grader), keep verdicts."""

from __future__ import annotations

from typing import Any

from ansible_collections.stagegate.release.plugins.module_utils._checks_runner import (
    run_type,
    skipped_in_check_mode,
)

from stagegate.catalog import CheckSpec
from stagegate.checks import RunContext
from stagegate.grading import Grade, Threshold, default_grade
from stagegate.hookspecs import hookimpl
from stagegate.results import CheckResult


@hookimpl(trylast=True)
def stagegate_run_check(check: CheckSpec, context: RunContext) -> CheckResult | None:
    # Imported here: the engine imports the plugin manager, which imports this module.
    from stagegate.engine import result_from_outcome  # noqa: PLC0415

    check_type = context.extra["types"].get(check.type)
    if check_type is None:
        return None
    skipped = skipped_in_check_mode(context.check_mode, check.read_only)
    if skipped is not None:
        return result_from_outcome(check, skipped)
    return result_from_outcome(check, run_type(check_type, check.options, context))


@hookimpl(trylast=True)
def stagegate_grade_result(
    result: CheckResult, check: CheckSpec, threshold: Threshold | None
) -> Grade:
    return default_grade(result, threshold, check.severity)


@hookimpl(trylast=True)
def stagegate_adjust_verdict(verdict: str, results: list[CheckResult], gates: list[Any]) -> str:
    return verdict
