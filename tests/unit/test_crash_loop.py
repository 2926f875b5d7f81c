"""Why a container can no longer become ready (plugins/module_utils/_compose.py `_broken`), as
the engine's state reads: tests/test_compose_up_tiers.py sees the same on a real engine."""

from __future__ import annotations

from ansible_collections.stagegate.release.plugins.module_utils._compose import _broken
from ansible_collections.stagegate.release.plugins.module_utils._docker import ContainerState


def state(status: str, restarts: int, exit_code: int) -> ContainerState:
    return ContainerState(name="web-1", id="c0ffee", service="web", status=status, health=None,
                          restart_count=restarts, exit_code=exit_code, started_at=None, image="web",
                          image_id="sha256:1", health_output=[])  # fmt: skip


def test_a_container_between_restarts_names_its_last_exit_code() -> None:
    assert _broken(state("restarting", 2, 3), 0) == (
        "crash loop: restarted 2 time(s), last exit code 3"
    )


def test_a_restarted_container_running_again_names_the_code_its_events_gave() -> None:
    # The engine resets ExitCode to 0 while the new instance runs: the code comes from the
    # container's `die` events, and is never claimed to be 0 without them.
    assert _broken(state("running", 2, 0), 0, last_exit=3) == (
        "crash loop: restarted 2 time(s), last exit code 3, running again"
    )
    assert _broken(state("running", 2, 0), 0) == (
        "crash loop: restarted 2 time(s), running again, its exit code unknown"
    )


def test_an_exited_container_and_a_steady_one() -> None:
    assert _broken(state("exited", 0, 3), 0) == "exited with code 3"
    assert _broken(state("running", 1, 0), 1) is None
