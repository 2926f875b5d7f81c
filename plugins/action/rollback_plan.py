# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs the rollback_plan module on the deploy host and adds what only the controller knows.

Which `ansible-playbook` process runs this rollback (the parent of this worker process), and
whether the process that started an interrupted rollback is known to be alive. A rollback killed
half-way leaves the deploy lock held (not yet expired) by its run id; the re-run adopts that run
id, and so the lock, by the run state on the deploy host (`_rollback.adoptable_run_id`:
rollback.json resumable and its run owns the lock), whichever controller or AWX pod ran it. Only
a process known alive on this very controller keeps its lock (two rollbacks at once from one
controller); AWX job templates for rollback.yml must not allow concurrent jobs (docs/rollback.md).
"""

from __future__ import annotations

import os
import socket
from typing import Any

from ansible.plugins.action import ActionBase
from ansible_collections.stagegate.release.plugins.module_utils._rollback import (
    adoptable_run_id,
)


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


def is_alive_here(controller: dict[str, Any]) -> bool:
    """True when the recorded controller process runs on this controller (same host, same pid
    with the same start time): the only case where a run is known to be alive."""
    if not controller or controller.get("host") != socket.gethostname():
        return False
    pid = int(controller.get("pid") or 0)
    return pid > 0 and _process_start(pid) == controller.get("pid_start")


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
        result["resume_run_id"] = adoptable_run_id(
            bool(result.get("resumed")),
            state,
            result.get("lock") or {},
            is_alive_here(state.get("controller") or {}),
        )
        return result
