# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
name: progress
type: aggregate
short_description: Records the run, prints one line per check group and the verdict
version_added: 0.1.0
description:
  - Keeps the run record (C(stagegate.runrecord)) as the play goes, so the playbook does not time
    its phases or work out which one failed. A task belongs to the phase of the playbook step it
    comes from, the last phase name among its tags (Ansible lists a task's own tags before
    those it inherits; e.g. the tag C(backup) on the C(import_role) of the backup role); a task
    without a phase tag ends the phase before it, and so does one tagged C(always) (each role's
    argument check runs under any C(--tags)), which never starts a phase. A phase records, per host,
    its time, and C(ok), C(skipped) (every task skipped) or C(failed) (a task failed, errors not
    ignored). The first failure is where the run stopped, until a C(stagegate.release.gate) task
    reports it.
  - "A task that returns C(phase_skipped) (C(stagegate.release.run_record) with C(skip_phase)) says
    why its phase does not apply. It counts as skipped, the reason becomes the phase's C(note) in
    the record and the report, and it prints
    C(stagegate: <phase> phase skipped on <host>: <reason>)."
  - The record is written before each task and at the end of the play (the phase still open
    then ends) to the JSON file named by E(STAGEGATE_RUN_RECORD), which stays; when that is not
    set, to a temporary file this callback removes when the play ends, or when
    C(ansible-playbook) exits without ending it (an error that stopped the run, Ctrl-C).
    C(stagegate.release.gate) reads the phases and the stop from it,
    C(stagegate.release.run_record) returns it, and the C(stagegate) command prints its phases.
  - At the start of the playbook it imports stagegate's filter and action plugins in
    C(ansible-playbook)'s own process. Ansible forks a worker for every task, and a worker that
    finds them already imported does not import them again (about 0.15 s of each task that uses
    one, measured by C(bench/ansible_floor.py)).
  - Alongside the normal output, prints one line per check group as soon as a task returns
    check results (C(stagegate.release.checks), C(stagegate.release.gate)), saying how many checks
    passed, warned, failed, and which did not pass.
  - At the end of the play prints the summary of every C(stagegate.release.gate) run
    (verdict, readiness score, failed checks, report paths), also when the play failed.
requirements:
  - Enable it in ansible.cfg, C(callbacks_enabled = stagegate.release.progress).
"""

import atexit
import contextlib
import importlib
import os
import pkgutil
import tempfile

from ansible.plugins.callback import CallbackBase

try:
    from stagegate import runrecord
    from stagegate.plugins import get_hooks
except ImportError:  # the controller needs: pip install stagegate-release
    runrecord = get_hooks = None

_ORDER = ("PASS", "WARN", "FAIL", "ERROR", "SKIP")
_PLUGINS = __name__.rsplit(".", 2)[0]  # ansible_collections.stagegate.release.plugins


def _import_plugins_once():
    """Import this collection's filter and action plugins, and build the stagegate hooks, in
    this (the controller's main) process: task workers are forked from it for every task, and
    each would otherwise import them again. A plugin that fails to import is left to the task
    that uses it, which reports why."""
    for kind in ("filter", "action"):
        with contextlib.suppress(Exception):
            package = importlib.import_module(f"{_PLUGINS}.{kind}")
            for found in pkgutil.iter_modules(package.__path__):
                with contextlib.suppress(Exception):
                    importlib.import_module(f"{package.__name__}.{found.name}")
    if get_hooks is not None:
        with contextlib.suppress(Exception):  # a broken third-party plugin: its task says so
            get_hooks()  # cached: the check types, gates and strategies every worker looks up


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
    # A rollback's or a restore's verdict is named as such: a promotion rolled back
    # automatically ends on its own NO_GO, printed last (`in_print_order`).
    what = {"rollback": "rollback to ", "restore": "restore under "}.get(gate.get("kind", ""), "")
    about = f"{what}{gate.get('release')}: " if what else ""
    lines = [
        f"stagegate: {about}verdict {gate['verdict']}, readiness score {gate['score']}%",
        "stagegate: failed checks: " + (", ".join(gate.get("failed_checks") or []) or "none"),
    ]
    lines += [f"stagegate: blocker: {b}" for b in gate.get("blockers") or []]
    lines += [f"stagegate: warning: {w}" for w in gate.get("findings") or []]
    lines += [
        f"stagegate: report {name}: {path}"
        for name, path in (gate.get("report_paths") or {}).items()
    ]
    return lines


def in_print_order(gates):
    """The run's gate results with a promotion's or a validation's last: its verdict is the
    run's, which the last lines say (an automatic rollback's is printed before it)."""
    return sorted(
        gates, key=lambda gate: gate.get("kind", "promotion") in ("promotion", "validation")
    )


def _unreachable_why(data):
    """`unreachable: <why>`; a loop's own message is "All items completed", its items say why."""
    items = [i for i in data.get("results") or [] if isinstance(i, dict) and i.get("msg")]
    why = str((items[0] if items else data).get("msg") or "").strip()
    return f"unreachable: {why}" if why else "unreachable"


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "stagegate.release.progress"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._gates = []
        self._groups_shown = False
        self._record = None
        self._record_path = None
        self._own_record_file = False

    def v2_playbook_on_start(self, playbook):
        _import_plugins_once()
        if runrecord is None or self._record is not None:
            return
        self._record = runrecord.RunRecord()
        self._record_path = os.environ.get(runrecord.ENV_VAR)
        if not self._record_path:
            fd, self._record_path = tempfile.mkstemp(prefix="stagegate-run-", suffix=".json")
            os.close(fd)
            self._own_record_file = True
            # Task workers are forked from this process: they inherit the variable.
            os.environ[runrecord.ENV_VAR] = self._record_path
            atexit.register(self._remove_record_file, os.getpid())
        runrecord.save(self._record, self._record_path)

    def _remove_record_file(self, owner_pid=None):
        """Remove the record file this callback made (in the process that made it: forked
        workers inherit the exit handlers)."""
        if not self._own_record_file or owner_pid not in (None, os.getpid()):
            return
        self._own_record_file = False
        os.environ.pop(runrecord.ENV_VAR, None)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._record_path)

    def v2_playbook_on_task_start(self, task, is_conditional):
        if self._record is not None:
            self._record.task_started(task.tags or [])
            runrecord.save(self._record, self._record_path)

    def _note(self, result, status, msg="", skip_note=""):
        if self._record is not None:
            self._record.task_result(
                result._host.get_name(),
                status,
                task=result._task.get_name(),
                msg=msg,
                skip_note=skip_note,
            )

    def v2_runner_on_ok(self, result):
        data = result._result
        skip_note = data.get("phase_skipped") or ""
        self._note(result, "ok", skip_note=skip_note)
        if skip_note:
            phase = self._record.current.name if self._record and self._record.current else ""
            self._display.display(
                f"stagegate: {phase or 'this'} phase skipped on {result._host.get_name()}: "
                f"{skip_note}",
                color="cyan",
            )
        if "verdict" in data and "report_paths" in data:
            self._gates.append(data)
            if self._record is not None:
                self._record.reported()
            if self._groups_shown:  # the checks task already printed its groups
                return
        self._show_groups(data)

    def v2_runner_on_skipped(self, result):
        self._note(result, "skipped")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if not ignore_errors:
            self._note(result, "failed", str(result._result.get("msg") or "failed"))
        self._show_groups(result._result)

    def v2_runner_on_unreachable(self, result):
        self._note(result, "failed", _unreachable_why(result._result))

    def _show_groups(self, data):
        for line in group_lines(_check_results(data)):
            self._display.display(line)
            self._groups_shown = True

    def v2_playbook_on_stats(self, stats):
        if self._record is not None:
            self._record.finish()
            if self._own_record_file:
                self._remove_record_file()
            else:  # the user's file (or the stagegate command's): its final state
                runrecord.save(self._record, self._record_path)
        for gate in in_print_order(self._gates):
            color = _COLOR.get(gate["verdict"])
            for line in summary_lines(gate):
                self._display.display(line, color=color)
