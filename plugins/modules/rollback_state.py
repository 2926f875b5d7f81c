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
    resumes the same way (its C(verify) and C(record) steps run again). With O(lock), the deploy
    lock is taken for O(run_id) first, as M(stagegate.release.deploy_lock) takes it; when another
    live run holds it, the task fails naming the holder and writes nothing.
  - O(state=step_done) adds O(step) to the steps done. O(state=finished) marks the rollback
    V(done) (or V(failed) with O(verdict) C(NO_GO)) with the verdict and the report location;
    it first appends O(ledger_record) to the ledger (once per run id, as
    M(stagegate.release.ledger) does) and last releases the deploy lock held by O(run_id) when
    O(release_lock) is set.
  - The lock and the ledger are part of this module so that a rollback starts and finishes in
    one task each, since every module run adds to the rollback's time (C(bench/ansible_floor.py)).
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
    description:
      - The id of this run (it holds the deploy lock). Required with O(state=started), with
        O(lock) and with O(release_lock).
    type: str
  lock:
    description:
      - With O(state=started), take the deploy lock (C(<state_dir>/lock.json)) for O(run_id)
        before recording the plan. An expired lock is taken over; a live one held by another run
        fails the task unless C(break_lock).
    type: dict
    suboptions:
      owner:
        description: Who holds the lock (default C(user@host) of the deploy host).
        type: str
      ttl:
        description: Seconds until the lock expires.
        type: int
        default: 3600
      break_lock:
        description: Take a live lock held by another run (that run is known to be dead).
        type: bool
        default: false
      awx_job_id:
        description: The AWX job that holds the lock, recorded with it.
        type: str
  ledger_record:
    description:
      - With O(state=finished), the rollback's ledger record (at least C(release) and
        C(verdict)); appended to C(<state_dir>/ledger.jsonl) unless a record with the same
        C(run_id) is there already.
    type: dict
  release_lock:
    description: With O(state=finished), release the deploy lock held by O(run_id) at the end.
    type: bool
    default: false
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
  - module: stagegate.release.deploy_lock
  - module: stagegate.release.ledger
"""

EXAMPLES = r"""
- name: Take the deploy lock and record the plan (or resume the rollback in progress)
  stagegate.release.rollback_state:
    state_dir: "{{ stagegate_state_dir }}"
    state: started
    plan: "{{ rollback.plan }}"
    run_id: "{{ stagegate_run_id }}"
    controller: "{{ rollback.controller }}"
    lock:
      owner: oncall@bastion
      ttl: 3600

- name: The database is restored
  stagegate.release.rollback_state:
    state_dir: "{{ stagegate_state_dir }}"
    state: step_done
    step: database

- name: Record the rollback in the ledger, mark it finished, release the lock
  stagegate.release.rollback_state:
    state_dir: "{{ stagegate_state_dir }}"
    state: finished
    run_id: "{{ stagegate_run_id }}"
    verdict: GO
    report: /var/lib/stagegate/reports/rollback
    ledger_record: {release: v1, verdict: GO, kind: rollback, run_id: "{{ stagegate_run_id }}"}
    release_lock: true
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
lock:
  description:
    - What happened to the deploy lock (C(action) acquired, already_held, taken_over, broken,
      released or not_held) and its C(msg); empty when the task did not touch it.
  returned: always
  type: dict
  sample: {action: taken_over, msg: "took over an expired deploy lock from ci@runner ..."}
resumed:
  description:
    - With O(state=started), the interrupted rollback this run resumes (C(run_id), C(started),
      C(status) C(in_progress) or C(failed), C(steps_done) before this run); empty when it starts
      afresh. The rollback role puts it into the report's C(rollback_plan).
  returned: always
  type: dict
  sample: {run_id: rollback-20261130T081500Z-4242, started: "2026-11-30T08:15:01Z",
           status: in_progress, steps_done: [stop]}
holder:
  description: When the lock is held by another run, that run's lock record.
  returned: failed
  type: dict
ledger:
  description:
    - With O(ledger_record), whether it was C(appended), the ledger C(path), and C(warnings)
      (lines of the ledger skipped or repaired, see M(stagegate.release.ledger)).
  returned: when O(ledger_record) is given
  type: dict
"""

import copy

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stagegate.release.plugins.module_utils import _ledger
from ansible_collections.stagegate.release.plugins.module_utils._lock import (
    ALREADY_HELD,
    NOT_HELD,
    DeployLock,
    LockHeldError,
    action_message,
)
from ansible_collections.stagegate.release.plugins.module_utils._rollback import (
    DONE,
    FAILED,
    IN_PROGRESS,
    RESUMABLE,
    RollbackError,
    RollbackState,
)
from ansible_collections.stagegate.release.plugins.module_utils._state_files import utc_now


class RollbackStateManager:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.store = RollbackState(self.params["state_dir"])
        self.lock = DeployLock(self.params["state_dir"])
        self.result = {"lock": {}, "resumed": {}}

    def run(self):
        state = self.params["state"]
        if state == "started" and self.params["lock"] is not None:
            self.take_lock()
        try:
            before = self.store.read() or {}
        except RollbackError as exc:
            self.module.fail_json(msg=str(exc), path=self.store.path, **self.result)
        after = getattr(self, state)(copy.deepcopy(before))
        # Finishing: the ledger before the state, so a run killed in between is resumed and
        # records itself once (one ledger record per run id); the lock is released last.
        appended = (
            state == "finished"
            and self.params["ledger_record"] is not None
            and self.append_to_ledger()
        )
        if after != before and not self.module.check_mode:
            try:
                self.store.write(after)
            except OSError as exc:  # StateFileError: names the file, the operation and the cause
                self.module.fail_json(msg=str(exc), path=self.store.path, **self.result)
        if state == "finished" and self.params["release_lock"]:
            self.release_lock()
        lock_changed = self.result["lock"].get("action") not in (None, ALREADY_HELD, NOT_HELD)
        changed = after != before or appended or lock_changed
        self.module.exit_json(
            changed=changed,
            record=after,
            path=self.store.path,
            diff={"before": before, "after": after},
            **self.result,
        )

    def take_lock(self):
        options = self.params["lock"]
        if options["ttl"] <= 0:
            self.module.fail_json(
                msg=f"lock.ttl: got {options['ttl']}, expected a positive number of seconds"
            )
        try:
            action, _, previous = self.lock.acquire(
                self.params["run_id"],
                options["owner"],
                options["ttl"],
                break_lock=options["break_lock"],
                check_mode=self.module.check_mode,
                awx_job_id=options["awx_job_id"],
            )
        except LockHeldError as exc:
            self.module.fail_json(msg=str(exc), holder=exc.holder, lock_file=self.lock.path)
        except OSError as exc:  # StateFileError: names the file, the operation and the cause
            self.module.fail_json(msg=str(exc), lock_file=self.lock.path)
        self.note_lock(action, previous)

    def release_lock(self):
        try:
            action, previous = self.lock.release(
                self.params["run_id"], check_mode=self.module.check_mode
            )
        except (LockHeldError, OSError) as exc:
            self.module.fail_json(msg=str(exc), path=self.store.path, **self.result)
        self.note_lock(action, previous)

    def note_lock(self, action, previous):
        message = action_message(action, previous, self.lock.clock())
        self.result["lock"] = {"action": action, "msg": message}

    def append_to_ledger(self):
        """Append the record unless this run id's record is there; True when appended."""
        path = _ledger.ledger_path(self.params["state_dir"])
        try:
            line, _, warnings = _ledger.append_once(
                path, self.params["ledger_record"], self.module.check_mode
            )
        except (_ledger.LedgerError, OSError) as exc:
            self.module.fail_json(msg=f"ledger_record: {exc}", path=path)
        for warning in warnings:
            self.module.warn(warning)
        self.result["ledger"] = {"appended": line is not None, "path": path, "warnings": warnings}
        return line is not None

    def started(self, record):
        plan = self.params["plan"]
        target = plan.get("target", {}).get("release")
        if record.get("status") in RESUMABLE and record.get("to") == target:
            self.result["resumed"] = RollbackState.resumed(record)
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
        if record.get("status") != IN_PROGRESS:
            self.module.fail_json(
                msg=f"step {self.params['step']}: no rollback in progress in {self.store.path}"
            )
        record["steps_done"].setdefault(self.params["step"], utc_now())
        return record

    def finished(self, record):
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
            "lock": {
                "type": "dict",
                "options": {
                    "owner": {"type": "str"},
                    "ttl": {"type": "int", "default": 3600},
                    "break_lock": {"type": "bool", "default": False},
                    "awx_job_id": {"type": "str"},
                },
            },
            "ledger_record": {"type": "dict"},
            "release_lock": {"type": "bool", "default": False},
        },
        # Checked before anything changes: a missing option never leaves a half-written state.
        required_if=[
            ("state", "started", ("plan", "run_id")),
            ("state", "step_done", ("step",)),
            ("state", "finished", ("verdict",)),
            ("release_lock", True, ("run_id",)),
        ],
        required_by={"lock": "run_id"},
        supports_check_mode=True,
    )
    RollbackStateManager(module).run()


if __name__ == "__main__":
    main()
