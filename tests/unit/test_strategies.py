"""Deploy strategies: the registry, option validation, a plugin replacing a built-in, and the
supervisorctl status grammar the symlink strategy reads (real supervisor 4.2 output)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible_collections.stagegate.release.plugins.module_utils._release_link import (
    LinkError,
    parse_status,
    read_link,
    release_dir,
    switch_link,
)

from stagegate.hookspecs import hookimpl
from stagegate.plugins import Hooks, new_plugin_manager
from stagegate.strategies import DeployStrategy, StrategyError, resolve


def _strategies() -> dict[str, DeployStrategy]:
    return Hooks(new_plugin_manager(entry_points=False)).deploy_strategies()


def test_builtins_are_registered_through_the_hook() -> None:
    strategies = _strategies()
    assert strategies["compose"].role == "stagegate.release.runtime_compose"
    assert strategies["compose"].images is True
    assert strategies["symlink"].role == "stagegate.release.runtime_symlink"


def test_compose_resolves_with_no_options() -> None:
    assert resolve("compose", None, _strategies()) == {
        "name": "compose",
        "role": "stagegate.release.runtime_compose",
        "images": True,
        "compose": True,
        "switch": False,
        "options": {},
    }


def test_symlink_declares_neither_images_nor_compose() -> None:
    # staging.yml skips the build phase and the compose checks for it, saying so.
    resolved = resolve("symlink", {"releases_dir": "/r", "current": "/c"}, _strategies())
    assert (resolved["images"], resolved["compose"]) == (False, False)
    assert resolved["switch"] is True  # the `current` link


def test_symlink_options_are_validated_and_defaulted() -> None:
    resolved = resolve("symlink", {"releases_dir": "/r", "current": "/c"}, _strategies())
    assert resolved["options"]["stable_seconds"] == 2.0
    assert resolved["options"]["supervisorctl"] == "supervisorctl"
    with pytest.raises(StrategyError, match=r"option 'current' is required"):
        resolve("symlink", {"releases_dir": "/r"}, _strategies())
    with pytest.raises(StrategyError, match=r"'stable_seconds' = 'soon': expected"):
        resolve(
            "symlink",
            {"releases_dir": "/r", "current": "/c", "stable_seconds": "soon"},
            _strategies(),
        )
    with pytest.raises(StrategyError, match=r"unknown option 'current_link'"):
        resolve("symlink", {"releases_dir": "/r", "current_link": "/c"}, _strategies())


def test_an_unknown_strategy_names_the_variable_and_the_known_ones() -> None:
    with pytest.raises(
        StrategyError,
        match=r"stagegate_deploy_strategy = 'kubernetes': expected one of compose, symlink",
    ):
        resolve("kubernetes", {}, _strategies())


class KubernetesPlugin:
    @hookimpl
    def stagegate_deploy_strategies(self) -> list[DeployStrategy]:
        return [
            DeployStrategy(
                "kubernetes",
                "acme.k8s.runtime_kubernetes",
                {"namespace": {"type": "str", "required": True}},
                images=True,
            ),
            DeployStrategy("compose", "acme.k8s.runtime_compose_v3", images=True),
        ]


def test_a_plugin_adds_a_strategy_and_replaces_a_builtin() -> None:
    pm = new_plugin_manager(entry_points=False)
    pm.register(KubernetesPlugin(), name="k8s")
    strategies = Hooks(pm).deploy_strategies()
    assert (
        resolve("kubernetes", {"namespace": "shop"}, strategies)["role"]
        == "acme.k8s.runtime_kubernetes"
    )
    assert strategies["compose"].role == "acme.k8s.runtime_compose_v3"
    assert strategies["symlink"].role == "stagegate.release.runtime_symlink"


def test_supervisorctl_status_lines() -> None:
    states = parse_status(
        "api                              RUNNING   pid 7952, uptime 1 day, 0:00:04\n"
        "worker                 FATAL     Exited too quickly (process log may have details)\n"
        "beat                             STOPPED   Not started\n"
        "nope: ERROR (no such process)\n"
    )
    assert (states["api"].state, states["api"].pid, states["api"].uptime) == (
        "RUNNING",
        7952,
        86404.0,
    )
    assert states["worker"].state == "FATAL"
    assert states["beat"].pid is None
    assert states["nope"].state == "MISSING"


def test_the_link_is_switched_atomically_and_errors_name_the_option(tmp_path: Path) -> None:
    releases = tmp_path / "releases"
    (releases / "v1").mkdir(parents=True)
    (releases / "v2").mkdir()
    current = str(tmp_path / "current")
    assert read_link(current).release is None
    switch_link(current, release_dir(str(releases), "v1"))
    switch_link(current, release_dir(str(releases), "v2"))
    assert read_link(current).release == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "current",
        "releases",
    ]  # no temp link left
    with pytest.raises(LinkError, match=r"release='v9': .* is not a directory"):
        release_dir(str(releases), "v9")
    with pytest.raises(LinkError, match=r"release='\.\./v1'"):
        release_dir(str(releases), "../v1")
