# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs the rollback_plan module on the deploy host and adds what only the controller knows.

Which `ansible-playbook` process runs this rollback (the parent of this worker process), and
whether the process that started an interrupted rollback is gone. A rollback killed half-way
leaves the deploy lock held (not yet expired) by its run id; when that run's controller process
is dead on this controller, the re-run adopts the run id and so the lock, and resumes. A
rollback started from another controller cannot be judged dead from here: the lock's expiry or
`stagegate_break_lock` decide, as for any other holder.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from ansible.plugins.action import ActionBase


def _process_start(pid: int) -> str:
    """The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def controller_identity() -> dict[str, Any]:
    pid = os.getppid()  # the worker's parent is the ansible-playbook process
    return {"host": socket.gethostname(), "pid": pid, "pid_start": _process_start(pid)}


def is_gone(controller: dict[str, Any]) -> bool:
    """True when the recorded controller process is known to be dead (same host, pid gone or
    reused by a process that started later)."""
    if not controller or controller.get("host") != socket.gethostname():
        return False
    pid = int(controller.get("pid") or 0)
    return pid <= 0 or _process_start(pid) != controller.get("pid_start")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        result.update(
            self._execute_module(
                module_name="stagegate.release.rollback_plan",
                module_args=self._task.args,
                task_vars=task_vars,
            )
        )
        if result.get("failed"):
            return result
        state = result.get("state") or {}
        result["controller"] = controller_identity()
        adopt = result.get("resumed") and is_gone(state.get("controller") or {})
        result["resume_run_id"] = state.get("run_id", "") if adopt else ""
        return result
