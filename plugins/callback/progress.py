# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
name: progress
type: aggregate
short_description: One progress line per check group, and the verdict summary at the end
version_added: 0.1.0
description:
  - Alongside the normal output, prints one line per check group as soon as a task returns
    check results (C(stagegate.release.checks), C(stagegate.release.gate)), saying how many checks
    passed, warned, failed, and which did not pass.
  - At the end of the play prints the summary of every C(stagegate.release.gate) run
    (verdict, readiness score, failed checks, report paths), also when the play failed.
requirements:
  - Enable it in ansible.cfg, C(callbacks_enabled = stagegate.release.progress).
"""

from ansible.plugins.callback import CallbackBase

_ORDER = ("PASS", "WARN", "FAIL", "ERROR", "SKIP")
_COLOR = {"GO": "green", "GO_WITH_WARNINGS": "yellow", "NO_GO": "red"}


def _check_results(result):
    """The check results a task returned, if any (a list of dicts with name/group/status)."""
    for key in ("checks", "results"):
        items = result.get(key)
        if (
            isinstance(items, list)
            and items
            and all(isinstance(i, dict) and {"name", "group", "status"} <= set(i) for i in items)
        ):
            return items
    return []


def group_lines(checks):
    """One line per check group, in first-seen order."""
    groups = {}
    for check in checks:
        groups.setdefault(check["group"], []).append(check)
    lines = []
    for group, items in groups.items():
        counts = {s: sum(1 for c in items if c["status"] == s) for s in _ORDER}
        shown = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        bad = [f"{c['name']} {c['status']}" for c in items if c["status"] not in ("PASS", "SKIP")]
        lines.append(
            f"stagegate: [{group}] {len(items)} checks: {shown}"
            + (f" ({'; '.join(bad)})" if bad else "")
        )
    return lines


def summary_lines(gate):
    lines = [
        f"stagegate: verdict {gate['verdict']}, readiness score {gate['score']}%",
        "stagegate: failed checks: " + (", ".join(gate.get("failed_checks") or []) or "none"),
    ]
    lines += [f"stagegate: blocker: {b}" for b in gate.get("blockers") or []]
    lines += [
        f"stagegate: report {name}: {path}"
        for name, path in (gate.get("report_paths") or {}).items()
    ]
    return lines


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "stagegate.release.progress"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._gates = []
        self._groups_shown = False

    def v2_runner_on_ok(self, result):
        data = result._result
        if "verdict" in data and "report_paths" in data:
            self._gates.append(data)
            if self._groups_shown:  # the checks task already printed its groups
                return
        self._show_groups(data)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._show_groups(result._result)

    def _show_groups(self, data):
        for line in group_lines(_check_results(data)):
            self._display.display(line)
            self._groups_shown = True

    def v2_playbook_on_stats(self, stats):
        for gate in self._gates:
            color = _COLOR.get(gate["verdict"])
            for line in summary_lines(gate):
                self._display.display(line, color=color)
