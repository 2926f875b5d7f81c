"""The plugin host: documented specs, loading order, blocking, tracing, the facade."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pluggy
import pytest
from conftest import REPO_ROOT

from stagegate import hookspecs
from stagegate.catalog import load_catalog
from stagegate.checks import CheckType, Grade, Outcome, RunContext
from stagegate.engine import run_checks
from stagegate.hookspecs import hookimpl
from stagegate.plugins import BLOCK_ENV, TRACE_ENV, Hooks, new_plugin_manager
from stagegate.results import CheckResult, Status

SPECS = sorted(
    name
    for name, obj in inspect.getmembers(hookspecs, inspect.isfunction)
    if name.startswith("stagegate_")
)


def test_the_expected_hooks_exist() -> None:
    assert {
        "stagegate_check_types",
        "stagegate_run_check",
        "stagegate_grade_result",
        "stagegate_adjust_verdict",
        "stagegate_run_finished",
    } <= set(SPECS)


@pytest.mark.parametrize("name", SPECS)
def test_every_hook_is_documented(name: str) -> None:
    """Like datasette's test_plugin_hooks_are_documented: spec docstring and docs/plugins.md."""
    doc = inspect.getdoc(getattr(hookspecs, name)) or ""
    assert "Call semantics" in doc, f"{name}: docstring must state its call semantics"
    assert "versionadded" in doc, f"{name}: docstring must say when it was added"
    assert "return" in doc.lower(), f"{name}: docstring must say what to return"
    assert f"`{name}" in (REPO_ROOT / "docs" / "plugins.md").read_text(), (
        f"{name} is not documented in docs/plugins.md"
    )


def test_specs_are_typed() -> None:
    for name in SPECS:
        signature = inspect.signature(getattr(hookspecs, name))
        assert signature.return_annotation is not inspect.Signature.empty, name
        assert all(
            p.annotation is not inspect.Parameter.empty for p in signature.parameters.values()
        )


def test_hookimpl_is_exported_lazily_from_the_package_root() -> None:
    code = (
        "import sys, stagegate; assert 'pluggy' not in sys.modules, 'pluggy imported eagerly'; "
        "from stagegate import hookimpl; from stagegate.hookspecs import hookimpl as h; "
        "assert hookimpl is h"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_builtin_check_types_are_ordinary_plugins() -> None:
    pm = new_plugin_manager(entry_points=False)
    names = {pm.get_name(plugin) for plugin in pm.get_plugins()}
    assert {"stagegate.checks.http", "stagegate.checks.tcp", "stagegate.checks.defaults"} <= names
    assert "http" in Hooks(pm).check_types()


def test_block_env_removes_a_builtin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BLOCK_ENV, "stagegate.checks.tcp, nosuchplugin")
    types = Hooks(new_plugin_manager(entry_points=False)).check_types()
    assert "tcp" not in types
    assert "http" in types


def test_trace_env_writes_hook_calls(tmp_path: object) -> None:
    code = (
        "from stagegate.plugins import Hooks, new_plugin_manager; "
        "Hooks(new_plugin_manager(entry_points=False)).check_types()"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={**__import__("os").environ, TRACE_ENV: "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "stagegate_check_types" in proc.stderr


class ReplacingPlugin:
    """Overrides the built-in `tcp` type and wraps every run."""

    seen: list[str]

    def __init__(self) -> None:
        self.seen = []

    @hookimpl
    def stagegate_check_types(self) -> list[CheckType]:
        return [CheckType("tcp", {"host": {"type": "str"}}, lambda o, c: Outcome("PASS", "fake"))]

    @hookimpl(wrapper=True)
    def stagegate_run_check(self, check, context):  # type: ignore[no-untyped-def]
        result = yield
        self.seen.append(check.name)
        return result


def test_a_plugin_replaces_a_builtin_and_wraps_runs() -> None:
    pm = new_plugin_manager(entry_points=False)
    plugin = ReplacingPlugin()
    pm.register(plugin, name="replacer")
    hooks = Hooks(pm)
    specs = load_catalog([{"name": "t", "type": "tcp", "host": "x"}], hooks.check_types())
    (result,) = run_checks(specs, hooks=hooks)
    assert (result.status, result.message) == (Status.PASS, "fake")
    assert plugin.seen == ["t"]


class RaisingPlugin:
    @hookimpl(tryfirst=True)
    def stagegate_run_check(self, check, context):  # type: ignore[no-untyped-def]
        raise RuntimeError("plugin exploded")


def test_a_plugin_that_raises_gives_an_error_result() -> None:
    pm = new_plugin_manager(entry_points=False)
    pm.register(RaisingPlugin())
    hooks = Hooks(pm)
    specs = load_catalog(
        [{"name": "t", "type": "tcp", "host": "127.0.0.1", "port": 9}], hooks.check_types()
    )
    (result,) = run_checks(specs, hooks=hooks)
    assert result.status is Status.ERROR
    assert "plugin exploded" in result.message


@pytest.mark.parametrize(
    ("severity", "status", "graded"),
    [
        ("critical", Status.FAIL, Status.FAIL),
        ("warning", Status.FAIL, Status.WARN),
        ("info", Status.FAIL, Status.WARN),
        ("info", Status.ERROR, Status.ERROR),
        ("warning", Status.SKIP, Status.SKIP),
        ("critical", Status.WARN, Status.WARN),
    ],
)
def test_default_grading(severity: str, status: Status, graded: Status) -> None:
    hooks = Hooks(new_plugin_manager(entry_points=False))
    (spec,) = load_catalog(
        [{"name": "c", "type": "tcp", "host": "h", "port": 1, "severity": severity}],
        hooks.check_types(),
    )
    result = CheckResult(name="c", group=spec.group, type="tcp", status=status)
    grade = hooks.grade_result(result=result, check=spec)
    assert isinstance(grade, Grade)
    assert grade.status is graded


class StrictPolicy:
    @hookimpl(wrapper=True)
    def stagegate_adjust_verdict(self, config):  # type: ignore[no-untyped-def]
        verdict = yield
        return "NO_GO" if config.get("strict") and verdict == "GO_WITH_WARNINGS" else verdict


def test_verdict_wrapper_policy() -> None:
    pm = new_plugin_manager(entry_points=False)
    pm.register(StrictPolicy())
    hooks = Hooks(pm)
    assert hooks.adjust_verdict(verdict="GO_WITH_WARNINGS", results=[]) == "GO_WITH_WARNINGS"
    adjusted = hooks.adjust_verdict(verdict="GO_WITH_WARNINGS", results=[], config={"strict": True})
    assert adjusted == "NO_GO"


def test_run_finished_reaches_notifiers() -> None:
    received: list[dict[str, object]] = []

    class Notifier:
        @hookimpl
        def stagegate_run_finished(self, report):  # type: ignore[no-untyped-def]
            received.append(report)

    pm = new_plugin_manager(entry_points=False)
    pm.register(Notifier())
    Hooks(pm).run_finished(report={"verdict": "GO"})
    assert received == [{"verdict": "GO"}]


def test_run_context_is_what_run_functions_get() -> None:
    context = RunContext(name="x", timeout=1.5)
    assert context.timeout == 1.5
    assert not context.check_mode


def test_docs_describe_every_builtin_type_and_option() -> None:
    docs = (REPO_ROOT / "docs" / "checks.md").read_text()
    for check_type in Hooks(new_plugin_manager(entry_points=False)).check_types().values():
        assert f"### `{check_type.name}`" in docs, f"docs/checks.md lacks type {check_type.name}"
        section = docs.split(f"### `{check_type.name}`", 1)[1].split("\n### ", 1)[0]
        for option in check_type.options:
            assert f"| `{option}` |" in section, f"docs/checks.md: {check_type.name}.{option}"


class HangingType:
    """A check type that ignores its timeout, as a buggy plugin might."""

    @hookimpl
    def stagegate_check_types(self) -> list[CheckType]:
        def hang(options: dict[str, object], context: RunContext) -> Outcome:
            context.cancelled.wait(60)
            return Outcome("PASS", "too late")

        return [CheckType("hang", {}, hang)]


def test_a_check_that_ignores_its_timeout_never_hangs_the_run() -> None:
    pm = new_plugin_manager(entry_points=False)
    pm.register(HangingType())
    hooks = Hooks(pm)
    specs = load_catalog(
        [
            {"name": "stuck", "type": "hang", "timeout": 0.2, "retries": 1, "delay": 0.1},
            {"name": "disk", "type": "disk"},
        ],
        hooks.check_types(),
    )
    stuck, disk = run_checks(specs, hooks=hooks, concurrency=1)
    assert stuck.status is Status.ERROR
    assert "timed out after 1.5s (timeout 0.2s x 2 attempts)" in stuck.message
    assert disk.status is Status.PASS  # its slot was freed for it


def test_check_pending_rejects_a_misspelt_hook() -> None:
    class Typo:
        @hookimpl
        def stagegate_check_type(self) -> list[CheckType]:  # missing "s"
            return []

    pm = new_plugin_manager(entry_points=False)
    pm.register(Typo())
    with pytest.raises(pluggy.PluginValidationError, match="stagegate_check_type"):
        pm.check_pending()


def test_failure_budget_skips_checks_not_yet_started() -> None:
    hooks = Hooks(new_plugin_manager(entry_points=False))
    refused = {"type": "tcp", "host": "127.0.0.1", "port": 9}
    specs = load_catalog(
        [
            {"name": "a", **refused},
            {"name": "b", **refused, "severity": "info"},  # not critical: does not count
            {"name": "c", **refused},
            {"name": "d", "type": "disk"},
        ],
        hooks.check_types(),
    )
    results = run_checks(specs, hooks=hooks, concurrency=1, max_failures=2)
    assert [str(r.status) for r in results] == ["ERROR", "ERROR", "ERROR", "SKIP"]
    assert "failure budget of 2" in results[3].message
    assert results[3].attempts == 0
