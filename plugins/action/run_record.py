# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Controller side of stagegate.release.run_record (documented in plugins/modules/run_record.py)."""

from ansible.plugins.action import ActionBase
from ansible_collections.stagegate.release.plugins.plugin_utils._stagegate import require_stagegate

try:
    from stagegate.runrecord import ENV_VAR, load_current
except ImportError as exc:  # the controller needs: pip install stagegate-release
    STAGEGATE_IMPORT_ERROR = exc
else:
    STAGEGATE_IMPORT_ERROR = None

ARGUMENT_SPEC = {
    "required": {"type": "bool", "default": True},
    "skip_phase": {"type": "str", "default": ""},
    "hosts": {"type": "list", "elements": "str", "default": []},
}
NOT_KEPT = (
    "no run record is kept ({var} is not set): enable the callback in ansible.cfg, "
    "[defaults] callbacks_enabled = stagegate.release.progress (or ANSIBLE_CALLBACKS_ENABLED)"
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        require_stagegate("run_record", STAGEGATE_IMPORT_ERROR)
        _, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        if args["skip_phase"]:
            # The callback reads `phase_skipped` from this result: the phase counts as skipped
            # and keeps the reason (docs of stagegate.release.progress).
            reason = args["skip_phase"]
            return {**result, "changed": False, "phase_skipped": reason, "msg": reason}
        record = load_current()
        if record is None:
            if args["required"]:
                return {**result, "failed": True, "msg": NOT_KEPT.format(var=ENV_VAR)}
            return {**result, "changed": False, "started": None, "phases": [],
                    "stopped": None, "refused": False, "before_deploy": False}  # fmt: skip
        if args["hosts"]:  # a fleet: each phase once, over every host (docs/fleet.md)
            return {**result, "changed": False, **record.fleet_summary(args["hosts"])}
        summary = record.summary(task_vars.get("inventory_hostname", ""))
        return {**result, "changed": False, **summary}
