# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

# Documentation: plugins/modules/checks.py (ansible-doc reads action docs from there).
import threading
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.stagegate.release.plugins.plugin_utils._stagegate import require_stagegate

try:
    from stagegate.catalog import CatalogError, CheckSpec, load_catalog, select
    from stagegate.engine import graded_host_results, run_checks
    from stagegate.plugins import get_hooks
    from stagegate.results import CheckResult, Status
except ImportError as exc:  # the controller needs: pip install stagegate-release
    STAGEGATE_IMPORT_ERROR: ImportError | None = exc
else:
    STAGEGATE_IMPORT_ERROR = None

_HOST_MODULE = "stagegate.release.host_checks"


def _failure(result: CheckResult) -> str:
    """`name (message; expected threshold)`: why the check failed, also without a threshold."""
    why = [result.message] if result.message else []
    if result.threshold:
        why.append(f"expected {result.threshold}")
    return f"{result.name} ({'; '.join(why)})" if why else result.name


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(
        ("checks", "names", "groups", "tags", "concurrency", "max_failures", "fail_on")
    )

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        require_stagegate("checks", STAGEGATE_IMPORT_ERROR, AnsibleActionFail)
        _, args = self.validate_argument_spec(
            argument_spec={
                "checks": {"type": "list", "elements": "dict"},
                "names": {"type": "list", "elements": "str", "default": []},
                "groups": {"type": "list", "elements": "str", "default": []},
                "tags": {"type": "list", "elements": "str", "default": []},
                "concurrency": {"type": "int", "default": 16},
                "max_failures": {"type": "int"},
                "fail_on": {
                    "type": "list",
                    "elements": "str",
                    "default": [],
                    "choices": ["WARN", "FAIL", "ERROR", "SKIP"],
                },
            }
        )
        catalog = args["checks"]
        if catalog is None:
            catalog = self._templar.template(task_vars.get("stagegate_checks", []))
        try:
            hooks = get_hooks()
        except Exception as exc:  # a broken third-party plugin: say which, not a traceback
            raise AnsibleActionFail(f"loading stagegate plugins failed: {exc}") from exc
        try:
            specs = load_catalog(catalog, hooks.check_types())
        except CatalogError as exc:
            return {**result, "failed": True, "msg": str(exc), "errors": exc.errors}
        selected = select(specs, names=args["names"], groups=args["groups"], tags=args["tags"])
        results = self._run(selected, hooks, args, task_vars)
        summary = {str(status): 0 for status in Status}
        for check_result in results:
            summary[str(check_result.status)] += 1
        failing = [_failure(r) for r in results if str(r.status) in args["fail_on"]]
        result.update(
            changed=False,
            results=[r.to_dict() for r in results],
            summary=summary,
            msg=", ".join(f"{count} {status}" for status, count in summary.items() if count)
            or "no checks selected",
        )
        if failing:
            result.update(
                failed=True, msg=f"checks graded {'/'.join(args['fail_on'])}: {', '.join(failing)}"
            )
        return result

    def _run(
        self, specs: list[CheckSpec], hooks: Any, args: dict[str, Any], task_vars: dict[str, Any]
    ) -> list[CheckResult]:
        check_mode = bool(self._task.check_mode)
        concurrency = args["concurrency"]
        local = [s for s in specs if s.run_on == "controller"]
        remote = [s for s in specs if s.run_on == "host"]
        by_name: dict[str, CheckResult] = {}
        # Controller checks run in a thread while the host module runs over the connection.
        worker = threading.Thread(
            target=lambda: by_name.update(
                (r.name, r)
                for r in run_checks(
                    local,
                    hooks=hooks,
                    check_mode=check_mode,
                    concurrency=concurrency,
                    max_failures=args["max_failures"],
                )
            )
        )
        worker.start()
        if remote:
            by_name.update(
                (r.name, r) for r in self._run_on_host(remote, hooks, concurrency, task_vars)
            )
        worker.join()
        return [by_name[s.name] for s in specs]

    def _run_on_host(
        self, specs: list[CheckSpec], hooks: Any, concurrency: int, task_vars: dict[str, Any]
    ) -> list[CheckResult]:
        reply = self._execute_module(
            module_name=_HOST_MODULE,
            module_args={"checks": [s.to_dict() for s in specs], "concurrency": concurrency},
            task_vars=task_vars,
        )
        if reply.get("failed") or reply.get("unreachable") or "outcomes" not in reply:
            # e.g. a library missing on the host: every host check is an ERROR that says so
            host = task_vars.get("inventory_hostname")
            reason = f"{_HOST_MODULE} on {host} failed: {reply.get('msg')}"
            error = {"status": "ERROR", "message": reason, "attempts": 0}
            return graded_host_results(specs, [error] * len(specs), hooks)
        return graded_host_results(specs, reply["outcomes"], hooks)
