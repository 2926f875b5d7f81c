"""The deploy role's decisions (module_utils/_compose.py): whether the app tier stops
(`app_tier_stop`) and which tiers before it start (`tiers_to_start`)."""

from __future__ import annotations

import pytest
from ansible_collections.stagegate.release.plugins.module_utils._compose import (
    app_tier_stop,
    tiers_to_start,
)

APPS = ["api", "worker"]


def test_auto_stops_when_an_app_container_would_change() -> None:
    decision = app_tier_stop("auto", ["postgres", "api"], APPS, [])
    assert decision == {"stop": True, "reason": "api would change"}


def test_auto_stops_for_pending_migrations_even_when_no_app_changes() -> None:
    decision = app_tier_stop("auto", [], APPS, ["006_composite_indexes.sql"])
    assert decision == {"stop": True, "reason": "1 migration(s) pending"}


def test_auto_keeps_the_apps_running_when_only_infrastructure_changes() -> None:
    assert app_tier_stop("auto", ["redis"], APPS, [])["stop"] is False


@pytest.mark.parametrize(("mode", "stops"), [("always", True), ("never", False)])
def test_always_and_never_ignore_the_plan(mode: str, stops: bool) -> None:
    assert app_tier_stop(mode, ["api"] if not stops else [], APPS, [])["stop"] is stops


def test_an_unknown_mode_names_the_setting() -> None:
    with pytest.raises(ValueError, match="stagegate_deploy_stop_app_tier: got 'sometimes'"):
        app_tier_stop("sometimes", [], APPS, [])


def _status(changed: list[str], **states: tuple[str, str | None]) -> dict[str, object]:
    """compose_up_tiers' check-mode result: what would change, each service's state."""
    return {
        "changed_services": changed,
        "services": {n: {"status": st, "health": h} for n, (st, h) in states.items()},
    }


INFRA = [["postgres", "redis"], ["minio"]]
RUNNING = {"postgres": ("running", "healthy"), "redis": ("running", "healthy")}


def test_tiers_that_run_unchanged_and_healthy_are_not_started_again() -> None:
    status = _status([], **RUNNING, minio=("running", "healthy"))
    assert tiers_to_start(status, INFRA, {}) == []


def test_a_tier_with_a_service_that_would_change_starts() -> None:
    status = _status(["minio"], **RUNNING, minio=("running", "healthy"))
    assert tiers_to_start(status, INFRA, {}) == [["minio"]]


@pytest.mark.parametrize(
    "minio",
    [("exited", None), ("running", None), ("running", "starting"), ("running", "unhealthy")],
)
def test_a_tier_not_running_healthy_starts(minio: tuple[str, str | None]) -> None:
    assert tiers_to_start(_status([], **RUNNING, minio=minio), INFRA, {}) == [["minio"]]


def test_a_tier_without_a_container_or_with_a_readiness_probe_starts() -> None:
    assert tiers_to_start(_status([], **RUNNING), INFRA, {}) == [["minio"]]
    probed = {"redis": {"tcp": 6379}}
    status = _status([], **RUNNING, minio=("running", "healthy"))
    assert tiers_to_start(status, INFRA, probed) == [["postgres", "redis"]]
