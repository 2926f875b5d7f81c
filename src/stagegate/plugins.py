"""The plugin manager and a typed facade over the hooks.

Plugins load in this order: the built-ins (`DEFAULT_PLUGINS`), then every entry point in
the group ``stagegate``. Environment variables:

- ``STAGEGATE_BLOCK_PLUGINS``: comma-separated plugin names not to load (entry-point
  names, or built-in names such as ``stagegate.checks.http``).
- ``STAGEGATE_TRACE_HOOKS``: when set (non-empty, not ``0``), every hook call and its
  result are written to stderr.
"""

from __future__ import annotations

import importlib
import os
import sys
from functools import cache
from typing import TYPE_CHECKING, Any

import pluggy

from stagegate import hookspecs
from stagegate.catalog import CheckSpec
from stagegate.checks import CheckType, RunContext
from stagegate.grading import Grade, Threshold, default_grade
from stagegate.results import CheckResult

if TYPE_CHECKING:
    from stagegate.gates import GateType
    from stagegate.strategies import DeployStrategy

BLOCK_ENV = "STAGEGATE_BLOCK_PLUGINS"
TRACE_ENV = "STAGEGATE_TRACE_HOOKS"

DEFAULT_PLUGINS = (
    "stagegate.checks.defaults",
    "stagegate.checks.builtin",
    "stagegate.gates",
    "stagegate.fleet",
    "stagegate.profiles.seed003",
    "stagegate.policies",
    "stagegate.strategies",
)
"""Modules registered before entry points (datasette's DEFAULT_PLUGINS): the default hook
implementations, one plugin per built-in check type (``stagegate.checks.<type>``), the
built-in gate types (``stagegate.gates``; the fleet's ``hosts`` in ``stagegate.fleet``), seed
003's flapping gate type, the strict verdict policy and the built-in deploy strategies
(``stagegate.strategies``). An entry point registered later replaces a check type, gate type or
deploy strategy of the same name."""


def blocked_names() -> set[str]:
    return {name.strip() for name in os.environ.get(BLOCK_ENV, "").split(",") if name.strip()}


def new_plugin_manager(*, entry_points: bool = True) -> pluggy.PluginManager:
    """A fresh manager with the built-ins and (optionally) installed plugins loaded."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for name in blocked_names():
        pm.set_blocked(name)
    for module_name in DEFAULT_PLUGINS:
        module = importlib.import_module(module_name)
        if not pm.is_blocked(module_name):
            pm.register(module, name=module_name)
        register_more = getattr(module, "register_plugins", None)
        if register_more is not None:
            register_more(pm)
    if entry_points:
        pm.load_setuptools_entrypoints(hookspecs.PROJECT_NAME)
    pm.check_pending()
    if os.environ.get(TRACE_ENV, "") not in ("", "0"):
        pm.trace.root.setwriter(sys.stderr.write)
        pm.enable_tracing()
    return pm


class Hooks:
    """Calls the hooks with keyword arguments and typed returns."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm

    def check_types(self) -> dict[str, CheckType]:
        """Every registered check type by name; later registrations override earlier ones."""
        types: dict[str, CheckType] = {}
        # pluggy calls the last registered implementation first: reverse to let it win.
        for provided in reversed(self.pm.hook.stagegate_check_types()):
            types.update({check_type.name: check_type for check_type in provided})
        return types

    def gate_types(self) -> dict[str, GateType]:
        """Every registered gate type by name; later registrations override earlier ones."""
        provided: list[list[GateType]] = self.pm.hook.stagegate_gate_types()
        return {t.name: t for group in reversed(provided) for t in group}

    def deploy_strategies(self) -> dict[str, DeployStrategy]:
        """Every registered deploy strategy by name; later registrations override earlier ones."""
        provided: list[list[DeployStrategy]] = self.pm.hook.stagegate_deploy_strategies()
        return {s.name: s for group in reversed(provided) for s in group}

    def run_check(self, *, check: CheckSpec, context: RunContext) -> CheckResult | None:
        result: CheckResult | None = self.pm.hook.stagegate_run_check(check=check, context=context)
        return result

    def grade_result(
        self, *, result: CheckResult, check: CheckSpec, threshold: Threshold | None = None
    ) -> Grade:
        grade: Grade | None = self.pm.hook.stagegate_grade_result(
            result=result, check=check, threshold=threshold
        )
        return grade if grade is not None else default_grade(result, threshold, check.severity)

    def adjust_verdict(
        self,
        *,
        verdict: str,
        results: list[CheckResult],
        gates: list[Any] | None = None,
        config: dict[str, Any] | None = None,
    ) -> str:
        adjusted: str | None = self.pm.hook.stagegate_adjust_verdict(
            verdict=verdict, results=results, gates=gates or [], config=config or {}
        )
        return adjusted if adjusted is not None else verdict

    def run_finished(self, *, report: dict[str, Any]) -> None:
        self.pm.hook.stagegate_run_finished(report=report)


@cache
def get_hooks() -> Hooks:
    """The process-wide facade (built once; tests use `Hooks(new_plugin_manager())`)."""
    return Hooks(new_plugin_manager())
