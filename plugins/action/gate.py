# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Controller side of stagegate.release.gate (documented in plugins/modules/gate.py)."""

import re

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase
from ansible_collections.stagegate.release.plugins.plugin_utils._stagegate import require_stagegate

try:
    from stagegate.gatekeeper import (
        GateRequest,
        catalog_names_groups,
        gate_plugin_manager,
        run_gate,
        validate_request,
        who_ran,
    )
    from stagegate.gates import GateConfigError
    from stagegate.redact import Redactor, redact
    from stagegate.runrecord import load_current
except ImportError as exc:  # the controller needs: pip install stagegate-release
    STAGEGATE_IMPORT_ERROR = exc
else:
    STAGEGATE_IMPORT_ERROR = None

ARGUMENT_SPEC = {
    "release": {"type": "str"},
    "previous": {"type": "str"},
    "checks": {"type": "list", "elements": "dict", "default": []},
    "gates": {"type": "dict", "default": {}},
    "catalog": {"type": "list", "elements": "dict"},
    "manual_checks": {"type": "list", "elements": "dict", "default": []},
    "manual_confirmations": {"type": "dict", "default": {}},
    "baseline": {"type": "dict"},
    "phases": {"type": "list", "elements": "dict", "default": []},
    "stopped": {"type": "dict"},
    "rollback_plan": {"type": "dict"},
    "report_dir": {"type": "path"},
    "environment": {"type": "str", "default": "staging"},
    "started": {"type": "str"},
    "secrets": {"type": "list", "elements": "str", "default": [], "no_log": True},
    "strict": {"type": "bool", "default": False},
    "webhook": {"type": "dict", "no_log": True},
    "kind": {
        "type": "str",
        "choices": ["promotion", "validation", "rollback", "restore"],
        "default": "promotion",
    },
    "auto_rollback": {"type": "bool"},
    "rollback_report_dir": {"type": "path"},
    "returned": {"type": "dict"},
    "ledger_warnings": {"type": "list", "elements": "str", "default": []},
    "resumed": {"type": "dict"},
    "validate_only": {"type": "bool", "default": False},
    "hosts": {"type": "list", "elements": "str", "default": []},
    "history": {"type": "list", "elements": "dict", "default": []},
}
_HOST_RESULTS = "stagegate_gate_report_results"
_HOST_ERROR = "stagegate_fleet_host_error"
_NO_RESULTS = "no check results (it failed or was unreachable before its checks ran)"
_VAR_PREFIX = re.compile(r"^stagegate_")


def _from_record(args, host):
    """Phases, stop and start time the arguments leave out, from the run record that the
    callback stagegate.release.progress keeps (nothing when it is not enabled)."""
    record = load_current()
    if record is None:
        return args["phases"], args["stopped"], args["started"]
    return (
        args["phases"] or record.phases_for(host),
        args["stopped"] or record.stopped_for(host),
        args["started"] or record.started_iso(),
    )


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        require_stagegate("gate", STAGEGATE_IMPORT_ERROR)
        _, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        if not args["validate_only"]:
            for key in ("release", "report_dir"):
                if not args[key]:
                    return {
                        **result,
                        "failed": True,
                        "msg": f"{key}: required unless validate_only is true",
                    }
        request = self._request(args, task_vars)
        pm = gate_plugin_manager()
        try:
            if args["validate_only"]:
                config = validate_request(request, pm)
                return {
                    **result,
                    "changed": False,
                    "valid": True,
                    "gate_names": [rule.name for rule in config.rules],
                }
            outcome = run_gate(request, pm)
        except GateConfigError as exc:
            return {**result, "failed": True, "msg": redact(str(exc), request.secrets)}
        report = outcome.report
        result.update(
            changed=False,
            verdict=str(outcome.verdict),
            score=outcome.score,
            kind=request.kind,
            release=request.release,
            report_dir=str(request.report_dir),
            report_paths=outcome.report_paths,
            failed_checks=outcome.failed_checks,
            stopped=report["stopped"],
            blockers=report["blockers"],
            findings=report["warnings"],
            gates=[
                {k: g[k] for k in ("name", "status", "critical", "message")}
                for g in report["gates"]
            ],
            checks=[{k: c[k] for k in ("name", "group", "status")} for c in report["checks"]],
            ledger_record=outcome.ledger_record,
            notify_errors=outcome.notify_errors,
        )
        return redact(result, request.secrets)

    def _confirmations(self, args, task_vars):
        """Confirmations by name, plus AWX survey answers: an item's `survey_var` names a
        plain variable (e.g. `confirm_owasp_review`) holding "who@when"."""
        confirmations = dict(args["manual_confirmations"])
        for item in args["manual_checks"]:
            answer = task_vars.get(item.get("survey_var") or "")
            if answer and item.get("name") not in confirmations:
                confirmations[item["name"]] = self._templar.template(answer)
        return confirmations

    def _host_results(self, hosts, task_vars):
        """(results, missing, releases) of the fleet's app hosts, from their host vars."""
        hostvars = task_vars.get("hostvars") or {}
        results, missing, releases = {}, {}, {}
        for host in hosts:
            own = hostvars.get(host) or {}
            found = own.get(_HOST_RESULTS)
            if found is None:
                missing[host] = str(self._templar.template(own.get(_HOST_ERROR) or _NO_RESULTS))
                continue
            results[host] = self._templar.template(found)
            releases[host] = str(self._templar.template(own.get("stagegate_release") or ""))
        return results, missing, releases

    def _request(self, args, task_vars):
        run_by, job = who_ran(task_vars)
        host_results, missing, releases = None, {}, {}
        if args["hosts"]:
            host_results, missing, releases = self._host_results(args["hosts"], task_vars)
        names, groups = catalog_names_groups(args["catalog"])
        own_vars = {k: v for k, v in task_vars.items() if _VAR_PREFIX.match(k)}
        try:
            own_vars = self._templar.template(own_vars)
        except AnsibleError:
            own_vars = {}  # an unrenderable var cannot be printed either; nothing to mask
        webhook = args["webhook"]
        phases, stopped, started = _from_record(args, task_vars.get("inventory_hostname", ""))
        return GateRequest(
            release=args["release"] or "",
            report_dir=args["report_dir"] or "",
            checks=args["checks"],
            gates=args["gates"],
            previous=args["previous"],
            catalog=names,
            groups=groups,
            manual=args["manual_checks"],
            confirmations=self._confirmations(args, task_vars),
            baseline=args["baseline"],
            phases=phases,
            stopped=stopped,
            rollback_plan=args["rollback_plan"],
            environment=args["environment"],
            run_by=run_by,
            awx_job_id=job,
            run_id=task_vars.get("stagegate_run_id"),
            started=started,
            # every value under a secret-looking name of the stagegate_* vars (db password, tokens)
            secrets=[*args["secrets"], *Redactor().learn(own_vars).known()],
            policy={"strict": args["strict"]},
            webhook=webhook,
            kind=args["kind"],
            auto_rollback=args["auto_rollback"],
            rollback_report_dir=args["rollback_report_dir"],
            returned=args["returned"],
            host_results=host_results,
            missing_hosts=missing,
            host_releases=releases,
            ledger_warnings=args["ledger_warnings"],
            resumed=args["resumed"],
            history=args["history"],
            check_mode=bool(self._task.check_mode or self._play_context.check_mode),
        )
