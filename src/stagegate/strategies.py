"""Deploy strategies: how the app tier of a release is stopped, switched to, started and read.

The deploy and rollback roles never run the app tier themselves: each of their app-tier steps
includes the task file of the same name from the chosen strategy's role (``stop``, ``switch``,
``start``, ``status``). Database phases (backup, migrations, restore) stay the roles' own.
Strategies are registered through the hook ``stagegate_deploy_strategies``; the built-ins are
``compose`` (today's Docker Compose steps, the default) and ``symlink`` (release directories,
a ``current`` link switched atomically, programs run by supervisord). docs/deploy.md "Deploy
strategies" says what each step must do, and what a Kubernetes strategy would call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.stagegate.release.plugins.module_utils._checks_common import (
    validate_options,
)

from stagegate.hookspecs import hookimpl

STEPS = ("stop", "switch", "start", "status")
"""The task files a strategy's role provides, in the order a deploy or rollback runs them
(``status`` is read-only and runs in the plan)."""


class StrategyError(ValueError):
    """`stagegate_deploy_strategy` or its options are invalid; the message names the key."""


@dataclass(frozen=True)
class DeployStrategy:
    """One way of running the app tier.

    ``role`` is the FQCN of the Ansible role whose task files ``stop.yml``, ``switch.yml``,
    ``start.yml`` and ``status.yml`` perform the steps on the deploy host; ``options`` the
    schema of ``stagegate_deploy_strategy_options`` (the same grammar as a check type's
    options), validated before any phase runs. The capabilities say which of staging.yml's
    steps apply: ``images`` (releases are container images built from the release: the build
    phase builds them, the rollback role rebuilds or re-tags the target's) and ``compose`` (a
    release is a Compose project run by Docker: preflight checks the Docker engine and the
    release's compose files with ``docker compose config``, and counts the project's running
    containers). A step whose capability the strategy lacks is skipped, and the skip is said in
    the progress output and the report's phases. ``switch`` says the role has a ``switch`` step
    to run between the database step and the start (symlink: the ``current`` link); Compose has
    none (the release's checkout names its images), so the roles do not include one.
    """

    name: str
    role: str
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    description: str = ""
    images: bool = False
    compose: bool = False
    switch: bool = True


COMPOSE = DeployStrategy(
    name="compose",
    role="stagegate.release.runtime_compose",
    description="Docker Compose v2: stop and start the app tier's services, tier by tier",
    images=True,
    compose=True,
    switch=False,
)

SYMLINK = DeployStrategy(
    name="symlink",
    role="stagegate.release.runtime_symlink",
    description=(
        "release directories and a `current` symlink switched atomically; the app tier's "
        "programs run under supervisord from `current`"
    ),
    options={
        "releases_dir": {
            "type": "str",
            "required": True,
            "description": "the directory holding one directory per release",
        },
        "current": {
            "type": "str",
            "required": True,
            "description": "the symlink switched between release directories",
        },
        "supervisor_config": {
            "type": "str",
            "default": None,
            "description": "the supervisord configuration supervisorctl reads",
        },
        "server_url": {
            "type": "str",
            "default": None,
            "description": "supervisorctl -s, e.g. unix:///run/supervisor.sock",
        },
        "supervisorctl": {"type": "str", "default": "supervisorctl"},
        "stable_seconds": {"type": "float", "default": 2.0, "minimum": 0},
    },
)


@hookimpl
def stagegate_deploy_strategies() -> list[DeployStrategy]:
    return [COMPOSE, SYMLINK]


def resolve(name: Any, options: Any, strategies: Mapping[str, DeployStrategy]) -> dict[str, Any]:
    """The chosen strategy as the roles use it: ``{name, role, images, compose, switch, options}``,
    options validated and their defaults filled in. Raises `StrategyError` naming the key."""
    strategy = strategies.get(name) if isinstance(name, str) else None
    if strategy is None:
        raise StrategyError(
            f"stagegate_deploy_strategy = {name!r}: expected one of {', '.join(sorted(strategies))}"
        )
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise StrategyError(f"stagegate_deploy_strategy_options = {options!r}: expected a mapping")
    normal, errors = validate_options(
        f"stagegate_deploy_strategy_options (strategy {strategy.name})", options, strategy.options
    )
    if errors:
        raise StrategyError("; ".join(errors))
    return {
        "name": strategy.name,
        "role": strategy.role,
        "images": strategy.images,
        "compose": strategy.compose,
        "switch": strategy.switch,
        "options": normal,
    }
