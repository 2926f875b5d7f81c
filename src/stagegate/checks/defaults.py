"""Default hook implementations: run a check by its type, grade by severity, keep verdicts."""

from __future__ import annotations

from typing import Any

from ansible_collections.stagegate.release.plugins.module_utils._checks_runner import run_type

from stagegate.catalog import CheckSpec
from stagegate.checks import Grade, RunContext
from stagegate.hookspecs import hookimpl
from stagegate.results import CheckResult, Severity, Status


@hookimpl(trylast=True)
def stagegate_run_check(check: CheckSpec, context: RunContext) -> CheckResult | None:
    # Imported here: the engine imports the plugin manager, which imports this module.
    from stagegate.engine import make_result, result_from_outcome  # noqa: PLC0415

    check_type = context.extra["types"].get(check.type)
    if check_type is None:
        return None
    if context.check_mode and not check.read_only:
        return make_result(check, Status.SKIP, "not run in check mode: the check is not read-only")
    return result_from_outcome(check, run_type(check_type, check.options, context))


@hookimpl(trylast=True)
def stagegate_grade_result(result: CheckResult, check: CheckSpec) -> Grade:
    lenient = check.severity in (Severity.WARNING, Severity.INFO)
    if result.status is Status.FAIL and lenient:
        return Grade(Status.WARN, "W", f"WARN (failed, severity {check.severity})")
    return Grade.of(result.status)


@hookimpl(trylast=True)
def stagegate_adjust_verdict(verdict: str, results: list[CheckResult], gates: list[Any]) -> str:
    return verdict
