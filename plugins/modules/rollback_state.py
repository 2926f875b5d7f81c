#!/usr/bin/python
# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rollback_state
short_description: Record a rollback's plan and progress in C(<state_dir>/rollback.json)
version_added: 0.1.0
description:
  - Keeps the state that lets a rollback killed half-way be finished by the next run (the plan,
    the run id, the controller process, and the steps done so far). Every write replaces the
    file atomically (temporary file, fsync, rename).
  - O(state=started) records O(plan) as the rollback in progress. When the file already holds a
    rollback in progress to the same release, it is kept (with its steps done) and only the run
    id and controller are updated, so the rollback resumes. A rollback whose verification failed
    resumes the same way (its C(verify) and C(record) steps run again).
  - O(state=step_done) adds O(step) to the steps done. O(state=finished) marks the rollback
    V(done) (or V(failed) with O(verdict) C(NO_GO)) with the verdict and the report location.
attributes:
  check_mode:
    support: full
    description: Computes the new record and returns it; writes nothing.
  diff_mode:
    support: full
    description: Shows the record before and after.
  idempotent:
    support: full
    description: Marking a step that is already done, or finishing a finished rollback, changes
      nothing.
options:
  state_dir:
    description: The environment's state directory on the deploy host.
    type: path
    required: true
  state:
    description: What to record.
    type: str
    choices: [started, step_done, finished]
    required: true
  plan:
    description: The plan from M(stagegate.release.rollback_plan); required with O(state=started).
    type: dict
  run_id:
    description: The id of this run (it holds the deploy lock).
    type: str
  controller:
    description: The controller process (C(host), C(pid), C(pid_start)) that runs the rollback.
    type: dict
    default: {}
  step:
    description: The step done, with O(state=step_done).
    type: str
    choices: [stop, source, images, database, start, verify, record]
  verdict:
    description: The verification verdict, with O(state=finished).
    type: str
    choices: [GO, GO_WITH_WARNINGS, NO_GO]
  report:
    description: Where the rollback's report was written, with O(state=finished).
    type: str
author:
  - stagegate developers (@stagegate)
seealso:
  - module: stagegate.release.rollback_plan
"""

EXAMPLES = r"""
- name: Record the plan (or resume the rollback in progress)
  stagegate.release.rollback_state:
    state_dir: "{{ stagegate_state_dir }}"
    state: started
    plan: "{{ rollback.plan }}"
    run_id: "{{ stagegate_run_id }}"
    controller: "{{ rollback.controller }}"

- name: The database is restored
  stagegate.release.rollback_state:
    state_dir: "{{ stagegate_state_dir }}"
    state: step_done
    step: database
"""

RETURN = r"""
record:
  description: The state record after the task.
  returned: always
  type: dict
  sample: {status: in_progress, run_id: rollback-20261122T120000Z-1a2b, from: v2, to: v1,
           steps_done: {stop: "2026-11-22T12:00:03Z"}, plan: {}}
path:
  description: The state file.
  returned: always
  type: str
"""

import copy

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stagegate.release.plugins.module_utils._rollback import (
    DONE,
    FAILED,
    IN_PROGRESS,
    RESUMABLE,
    RollbackError,
    RollbackState,
    utc_now,
)


class RollbackStateManager:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.store = RollbackState(self.params["state_dir"])

    def run(self):
        try:
            before = self.store.read() or {}
        except RollbackError as exc:
            self.module.fail_json(msg=str(exc), path=self.store.path)
        after = getattr(self, self.params["state"])(copy.deepcopy(before))
        changed = after != before
        if changed and not self.module.check_mode:
            self.store.write(after)
        self.module.exit_json(
            changed=changed,
            record=after,
            path=self.store.path,
            diff={"before": before, "after": after},
        )

    def require(self, option):
        if not self.params[option]:
            self.module.fail_json(msg=f"{option}: required with state={self.params['state']}")

    def started(self, record):
        self.require("plan")
        self.require("run_id")
        plan = self.params["plan"]
        target = plan.get("target", {}).get("release")
        if record.get("status") in RESUMABLE and record.get("to") == target:
            # A failed verification is retried: its steps stay done, verify and record run again.
            if record["status"] == FAILED:
                for step in ("verify", "record"):
                    record["steps_done"].pop(step, None)
            record.update(
                status=IN_PROGRESS,
                run_id=self.params["run_id"],
                controller=self.params["controller"],
            )
            return record
        return RollbackState.begin(plan, self.params["run_id"], self.params["controller"])

    def step_done(self, record):
        self.require("step")
        if record.get("status") != IN_PROGRESS:
            self.module.fail_json(
                msg=f"step {self.params['step']}: no rollback in progress in {self.store.path}"
            )
        record["steps_done"].setdefault(self.params["step"], utc_now())
        return record

    def finished(self, record):
        self.require("verdict")
        if record.get("status") == IN_PROGRESS:
            good = self.params["verdict"] != "NO_GO"
            record.update(
                status=DONE if good else FAILED,
                verdict=self.params["verdict"],
                report=self.params["report"],
                finished=utc_now(),
            )
        return record


def main():
    module = AnsibleModule(
        argument_spec={
            "state_dir": {"type": "path", "required": True},
            "state": {
                "type": "str",
                "choices": ["started", "step_done", "finished"],
                "required": True,
            },
            "plan": {"type": "dict"},
            "run_id": {"type": "str"},
            "controller": {"type": "dict", "default": {}},
            "step": {
                "type": "str",
                "choices": ["stop", "source", "images", "database", "start", "verify", "record"],
            },
            "verdict": {"type": "str", "choices": ["GO", "GO_WITH_WARNINGS", "NO_GO"]},
            "report": {"type": "str"},
        },
        supports_check_mode=True,
    )
    RollbackStateManager(module).run()


if __name__ == "__main__":
    main()
