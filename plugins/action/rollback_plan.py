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

from typing import Any

from ansible.plugins.action import ActionBase
from ansible_collections.stagegate.release.plugins.module_utils._rollback import (
    adoptable_run_id,
)
from ansible_collections.stagegate.release.plugins.module_utils._run_identity import (
    controller_identity,
    is_alive_here,
    run_id,
    run_owner,
)


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
        # This run's identity (_run_identity): the interrupted rollback's run id when it adopts it.
        result["run_id"] = result["resume_run_id"] or run_id(task_vars or {})
        result["run_owner"] = run_owner(task_vars or {})
        return result
