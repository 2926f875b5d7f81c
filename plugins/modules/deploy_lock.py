#!/usr/bin/python
# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: deploy_lock
short_description: Take or release the deploy lock of an environment (owner, run id, expiry)
version_added: 0.1.0
description:
  - Keeps C(<state_dir>/lock.json) on the deploy host with the owner (user@host, AWX job id when
    present), the run id, C(acquired_at) and C(expires_at) (UTC, ISO 8601).
  - O(state=acquired) creates the lock exclusively; when another live run holds it, fails with
    the holder's name, run id and age. An expired lock is taken over, and the result says so.
    O(break_lock=true) explicitly breaks a live lock (for a run known to be dead).
  - A lock file that cannot be read (not JSON, a field missing, a time that does not parse) is
    never taken over silently; the task fails naming what is wrong (and the owner and run id
    when they can still be read); O(break_lock=true) always breaks it, and the run named in it
    can still release it.
  - O(state=released) removes the lock only when O(run_id) holds it (or with O(break_lock=true)).
  - All changes happen under an flock(2) on a guard file beside the lock, so two runs racing for
    a free or an expired lock cannot both win.
options:
  state_dir:
    description: The environment's state directory on the deploy host (created when missing).
    type: path
    required: true
  state:
    description: Whether the lock should be held by O(run_id) or released.
    type: str
    choices: [acquired, released]
    default: acquired
  run_id:
    description:
      - The id of this run; the lock belongs to it.
      - Acquiring again with the same id changes nothing.
    type: str
    required: true
  owner:
    description:
      - Who holds the lock, shown to anyone blocked by it.
      - Defaults to C(user@host) of the deploy host.
    type: str
  ttl:
    description: Seconds until the lock expires and another run may take it over.
    type: int
    default: 3600
  break_lock:
    description: Take (or remove) a lock held by another run even though it has not expired.
    type: bool
    default: false
  awx_job_id:
    description: The AWX/Tower job id of this run, recorded in the lock when set.
    type: str
  refuse_unfinished_rollback:
    description:
      - With O(state=acquired), fail before taking the lock while C(<state_dir>/rollback.json)
        holds a rollback that is not finished (killed half-way, or failed its verification),
        naming it. Only C(playbooks/rollback.yml) may resume it; a promotion over it (also with
        O(break_lock), or once its lock expired) would leave it to resume later over newer
        data. The preflight role sets it for the runs that change what runs or back it up.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Reports what would happen (acquire, takeover, break, release) and writes nothing.
  diff_mode:
    support: full
    description: Shows the lock record before and after.
  idempotent:
    support: full
    description: Acquiring a lock the run already holds, or releasing a free lock, changes nothing.
seealso:
  - name: flock(2)
    description: The advisory lock that serialises changes to the lock file.
    link: https://man7.org/linux/man-pages/man2/flock.2.html
author:
  - stagegate developers (@stagegate)
"""

EXAMPLES = r"""
- name: Take the deploy lock
  stagegate.release.deploy_lock:
    state_dir: /var/lib/stagegate/staging
    run_id: "{{ stagegate_run_id }}"
    owner: "{{ stagegate_run_owner }}"
    ttl: 3600

- name: Release it at the end of the run
  stagegate.release.deploy_lock:
    state_dir: /var/lib/stagegate/staging
    run_id: "{{ stagegate_run_id }}"
    state: released
"""

RETURN = r"""
action:
  description: What happened (or would happen in check mode).
  returned: always
  type: str
  choices: [acquired, already_held, taken_over_expired, broken, released, not_held]
lock:
  description: The lock record held after the task (empty after a release).
  returned: always
  type: dict
  sample: {owner: "deploy@ci-1 (AWX job 42)", run_id: awx-42, acquired_at: "2026-11-22T12:00:00Z",
           expires_at: "2026-11-22T13:00:00Z", ttl: 3600}
previous:
  description: The record that was replaced or removed (the expired or broken holder), if any.
  returned: always
  type: dict
lock_file:
  description: The lock file.
  returned: always
  type: str
holder:
  description: On failure, the record of the run that holds the lock.
  returned: failed
  type: dict
rollback:
  description: With O(refuse_unfinished_rollback), the run id of the unfinished rollback that
    stopped this run.
  returned: failed
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stagegate.release.plugins.module_utils._lock import (
    ALREADY_HELD,
    BROKEN,
    NOT_HELD,
    RELEASED,
    TAKEN_OVER,
    DeployLock,
    LockHeldError,
    action_message,
)
from ansible_collections.stagegate.release.plugins.module_utils._rollback import (
    FAILED,
    IN_PROGRESS,
    RollbackError,
    RollbackState,
)


class DeployLockManager:
    def __init__(self, module):
        self.module = module
        params = module.params
        self.state = params["state"]
        self.run_id = params["run_id"]
        self.owner = params["owner"]
        self.ttl = params["ttl"]
        self.break_lock = params["break_lock"]
        self.awx_job_id = params["awx_job_id"]
        self.lock = DeployLock(params["state_dir"])
        self.rollback_state = RollbackState(params["state_dir"])
        self.refuse_unfinished_rollback = params["refuse_unfinished_rollback"]
        self.check_mode = module.check_mode

    def run(self):
        if self.ttl <= 0:
            self.module.fail_json(msg=f"ttl: got {self.ttl}, expected a positive number of seconds")
        before = self.lock.read() or {}
        if self.state == "acquired" and self.refuse_unfinished_rollback:
            self.refuse_over_an_unfinished_rollback()
        try:
            action, held, previous = self.acquire() if self.state == "acquired" else self.release()
        except LockHeldError as exc:
            self.module.fail_json(msg=str(exc), holder=exc.holder, lock_file=self.lock.path)
        except OSError as exc:  # StateFileError: names the file, the operation and the cause
            self.module.fail_json(msg=str(exc), lock_file=self.lock.path)
        changed = action not in (ALREADY_HELD, NOT_HELD)
        self.module.exit_json(
            changed=changed,
            action=action,
            lock=held or {},
            previous=previous if action in (TAKEN_OVER, BROKEN, RELEASED) else {},
            lock_file=self.lock.path,
            msg=action_message(action, previous, self.lock.clock()),
            diff={"before": before, "after": held or {}},
        )

    def refuse_over_an_unfinished_rollback(self):
        try:
            state = self.rollback_state.read()
        except RollbackError as exc:
            self.module.fail_json(msg=str(exc), lock_file=self.lock.path)
        if not state or state.get("status") not in (IN_PROGRESS, FAILED):
            return
        done = ", ".join(state.get("steps_done") or {}) or "none"
        how = "was interrupted" if state["status"] == IN_PROGRESS else "failed its verification"
        self.module.fail_json(
            msg=(
                f"the rollback {state.get('run_id')} from {state.get('from')} to "
                f"{state.get('to')} (started {state.get('started')}, steps done: {done}) {how} "
                f"and is not finished ({self.rollback_state.path}): finish it first with "
                "playbooks/rollback.yml, which resumes it and takes its lock over. A run over "
                "it, even with stagegate_break_lock, would leave it to resume later over newer "
                "data; if you have put things right by hand, remove that file."
            ),
            rollback=state.get("run_id"),
            lock_file=self.lock.path,
        )

    def acquire(self):
        return self.lock.acquire(
            self.run_id,
            self.owner,
            self.ttl,
            break_lock=self.break_lock,
            check_mode=self.check_mode,
            awx_job_id=self.awx_job_id,
        )

    def release(self):
        action, previous = self.lock.release(
            self.run_id, break_lock=self.break_lock, check_mode=self.check_mode
        )
        return action, {}, previous


def main():
    module = AnsibleModule(
        argument_spec={
            "state_dir": {"type": "path", "required": True},
            "state": {"type": "str", "choices": ["acquired", "released"], "default": "acquired"},
            "run_id": {"type": "str", "required": True},
            "owner": {"type": "str"},
            "ttl": {"type": "int", "default": 3600},
            "break_lock": {"type": "bool", "default": False},
            "awx_job_id": {"type": "str"},
            "refuse_unfinished_rollback": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    if not os.path.isabs(module.params["state_dir"]):
        module.fail_json(
            msg=f"state_dir: got {module.params['state_dir']!r}, expected an absolute path"
        )
    DeployLockManager(module).run()


if __name__ == "__main__":
    main()
