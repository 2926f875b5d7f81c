"""Which run an interrupted rollback's re-run adopts: decided by the run state on the deploy host
(rollback.json and lock.json), not by the controller that ran it (an AWX job is a new pod)."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.stagegate.release.plugins.module_utils._rollback import (
    adoptable_run_id,
)

STATE = {"status": "in_progress", "run_id": "rollback-1", "controller": {"host": "pod-a"}}


@pytest.mark.parametrize(
    ("resumed", "state", "lock", "alive", "adopted"),
    [
        # killed in another pod, its lock still held: the new pod adopts it
        (True, STATE, {"run_id": "rollback-1"}, False, "rollback-1"),
        # the lock is gone (expired and removed, or never taken): resume under the same run id
        (True, STATE, {}, False, "rollback-1"),
        # the rollback's process is known alive on this controller: never two at once
        (True, STATE, {"run_id": "rollback-1"}, True, ""),
        # another run (a staging run) holds the lock: the usual lock rules decide
        (True, STATE, {"run_id": "20261130T080000Z-abc123"}, False, ""),
        # nothing to resume
        (False, STATE, {"run_id": "rollback-1"}, False, ""),
        (True, {}, {}, False, ""),
    ],
)
def test_adoption_follows_the_run_state_on_the_deploy_host(
    resumed: bool, state: dict[str, Any], lock: dict[str, Any], alive: bool, adopted: str
) -> None:
    assert adoptable_run_id(resumed, state, lock, alive) == adopted
