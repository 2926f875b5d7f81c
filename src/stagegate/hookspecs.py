"""Hook specifications: the extension points of stagegate.

A plugin is a module or object with functions named like these specs and marked with
`stagegate.hookimpl`, installed through an entry point in the group ``stagegate``::

    [project.entry-points.stagegate]
    my_checks = "my_package.plugin"

The built-in check types, gate types and verdict policy are registered through the same
hooks (see `stagegate.plugins.DEFAULT_PLUGINS`), so a plugin adds or overrides exactly like
they do.
Specs grow by adding keyword arguments, never by removing or renaming one: an
implementation may accept any subset of a spec's arguments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from stagegate.catalog import CheckSpec
    from stagegate.checks import CheckType, RunContext
    from stagegate.gates import GateType
    from stagegate.grading import Grade, Threshold
    from stagegate.results import CheckResult
    from stagegate.strategies import DeployStrategy

PROJECT_NAME = "stagegate"
"""The pluggy project name, which is also the entry-point group."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def stagegate_check_types() -> list[CheckType]:
    """Return the check types this plugin provides.

    Each item is a `stagegate.checks.CheckType`: a ``name`` (the catalog's ``type:``),
    an option schema (validated before any check runs), a ``run`` callable and whether it
    is read-only (only read-only types run in check mode).

    Call semantics: list hook; every plugin's list is gathered. When two plugins give the
    same name, the one registered later (entry points after built-ins) wins, so a plugin
    can replace a built-in type.

    .. versionadded:: 0.1.0
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def stagegate_run_check(check: CheckSpec, context: RunContext) -> CheckResult | None:
    """Run one attempt of one check and return its result, or None to let others run it.

    ``check`` is the validated catalog entry, ``context`` carries the check type
    registry, check mode and the per-attempt timeout. The built-in implementation
    (``tryfirst=False``, registered first) looks the type up and runs it; a plugin may
    return a result for checks it handles, or wrap the built-in with
    ``@hookimpl(wrapper=True)`` to time, log or amend every result.

    Call semantics: ``firstresult``; the first non-None result is used. Retries, delay and
    the overall timeout are the engine's, around this hook. Exceptions raised here
    become an ERROR result naming the plugin's error, never a traceback.

    .. versionadded:: 0.1.0
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def stagegate_grade_result(
    result: CheckResult, check: CheckSpec, threshold: Threshold | None
) -> Grade | None:
    """Grade one finished result; return a `stagegate.grading.Grade` or None.

    This is the only place a result is graded. Modelled on pytest's
    ``pytest_report_teststatus``: a small typed value (``status``, a ``reason``, the
    ``threshold`` text; ``letter`` and ``word`` for progress output). ``result`` is what the
    check measured (its own status, metrics and ``details['measurements']`` with their bands),
    ``check`` the catalog entry (``severity``...), ``threshold`` the gate configuration's
    `stagegate.grading.Threshold` for this check or None. The default implementation
    (`stagegate.grading.default_grade`) grades the measurements and the threshold against
    their bands, then turns a FAIL of a ``warning`` or ``info`` check into WARN; ERROR and
    SKIP stay as they are.

    Call semantics: ``firstresult``; the check engine calls it once per result while checks
    run, and the gate calls it only for results not graded yet or named by a gate threshold.
    Gates and the verdict use the grade as given (a plugin that escalates a warning-severity
    result to FAIL makes the run NO_GO). The check's own status is kept in
    ``details['check_status']``.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 ``threshold`` argument; one `Grade` type.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def stagegate_adjust_verdict(
    verdict: str, results: list[CheckResult], gates: list[Any], config: dict[str, Any]
) -> str | None:
    """Return the verdict (``GO``, ``GO_WITH_WARNINGS`` or ``NO_GO``) after a policy.

    ``verdict`` is the verdict the gates reached, ``results`` the graded check results,
    ``gates`` the gate outcomes and ``config`` the run's configuration (``stagegate_*``
    variables without the prefix, e.g. ``config['strict']``). The default implementation
    returns ``verdict`` unchanged. A policy is written as a wrapper::

        @hookimpl(wrapper=True)
        def stagegate_adjust_verdict(verdict, config):
            adjusted = yield
            if config.get("strict") and adjusted == "GO_WITH_WARNINGS":
                return "NO_GO"
            return adjusted

    Call semantics: ``firstresult`` with wrappers; every wrapper sees the result of the
    inner ones and may change it. Policies should only make a verdict stricter.

    .. versionadded:: 0.1.0
    """
    raise NotImplementedError


@hookspec
def stagegate_run_finished(report: dict[str, Any]) -> None:
    """Receive the finished run's report (the content of report.json), e.g. to notify.

    Call semantics: list hook, return values are ignored. An exception in one notifier
    is reported by the caller and does not change the verdict.

    .. versionadded:: 0.1.0
    """
    raise NotImplementedError


@hookspec
def stagegate_gate_types() -> list[GateType]:
    """Return the gate types this plugin provides (the ``type:`` of a ``stagegate_gates`` rule).

    Each item is a `stagegate.gates.GateType`: a ``name``, the option ``keys`` a rule of
    this type may carry, ``validate(rule, ctx)`` (raise ``rule.error(key, problem)`` for bad
    configuration; called before any phase runs) and ``evaluate(rule, ctx)`` returning a
    `stagegate.gates.GateResult` (raise `stagegate.gates.GateEvaluationError` when the data
    cannot be read: the gate becomes ERROR). ``late=True`` types run after all others and see
    their results in ``ctx.earlier`` (seed 003's flapping gate escalates to FAIL that way).

    Call semantics: list hook; every plugin's list is gathered. The built-in types
    (``value``, ``ratio``, ``each``, ``pass_rate``, ``baseline``, ``all``) come from this hook
    too (default plugin ``stagegate.gates``, registered before entry points), and a later
    type with the same name replaces an earlier one.

    .. versionadded:: 0.1.0
    """
    raise NotImplementedError


@hookspec
def stagegate_deploy_strategies() -> list[DeployStrategy]:
    """Return the deploy strategies this plugin provides (``stagegate_deploy_strategy``).

    Each item is a `stagegate.strategies.DeployStrategy`: a ``name``, the FQCN ``role``
    whose task files ``stop``, ``switch``, ``start`` and ``status`` run the app tier's steps
    on the deploy host (the deploy and rollback roles include them; database phases stay
    theirs), the ``options`` schema of ``stagegate_deploy_strategy_options`` (validated
    before any phase runs, errors naming the key) and its capabilities: ``images`` (releases
    are container images the build phase builds and the rollback role rebuilds or re-tags) and
    ``compose`` (a release is a Compose project: preflight checks Docker and its compose
    files); staging.yml skips, and says it skips, the steps a strategy lacks. The built-ins,
    ``compose`` (the default) and ``symlink``, come from this hook too (default plugin
    ``stagegate.strategies``).

    Call semantics: list hook; every plugin's list is gathered, and a later strategy with
    the same name replaces an earlier one.

    .. versionadded:: 0.2.0
    """
    raise NotImplementedError
