"""The deploy role's stop decision (module_utils/_compose.py `app_tier_stop`)."""

from __future__ import annotations

import pytest
from ansible_collections.stagegate.release.plugins.module_utils._compose import app_tier_stop

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
