"""Which environments count as production: one rule (module_utils/_environments.py), used by
the preflight and rollback guards through the `is_production` filter and by pg_restore."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible_collections.stagegate.release.plugins.module_utils._environments import (
    DEFAULT_PRODUCTION_ENVIRONMENTS,
    environment_in,
    is_production,
)
from preflight_fixtures import DeployHost

from stagegate.config import CORE_FIELDS


@pytest.mark.parametrize(
    ("environment", "listed", "expected"),
    [
        ("production", None, True),
        ("Production", None, True),
        ("PRODUCTION", None, True),
        ("prod", None, True),
        (" Live ", None, True),
        ("staging", None, False),
        ("production-eu", None, False),
        ("", None, False),
        (None, None, False),
        ("PRD", ["prd", "Prod-EU"], True),
        ("prod-eu", ["prd", "Prod-EU"], True),
        ("production", ["prd"], False),  # the list replaces the default
    ],
)
def test_the_rule(environment: str | None, listed: list[str] | None, expected: bool) -> None:
    assert is_production(environment, listed) is expected


def test_the_default_is_the_documented_contract() -> None:
    assert DEFAULT_PRODUCTION_ENVIRONMENTS == ("production", "prod", "live")
    assert "stagegate_production_environments" in {f.name for f in CORE_FIELDS}
    for role in ("preflight", "rollback"):
        defaults = Path(__file__).parent.parent / "roles" / role / "defaults" / "main.yml"
        assert "stagegate_production_environments: [production, prod, live]" in (
            defaults.read_text()
        )
    assert environment_in("Staging", ["staging"])


GUARD_PLAY = """
- name: The preflight production guard alone
  hosts: deploy
  gather_facts: false
  tasks:
    - name: Refuse production without confirmation
      ansible.builtin.import_role:
        name: stagegate.release.preflight
        tasks_from: production
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("extra", "refused"),
    [
        ({"stagegate_environment": "Production"}, True),
        ({"stagegate_environment": "prod"}, True),
        ({"stagegate_environment": "Prod", "stagegate_confirm_production": True}, False),
        (
            {"stagegate_environment": "eu-1", "stagegate_production_environments": ["EU-1"]},
            True,
        ),
    ],
)
def test_preflight_guard(
    deploy_host: DeployHost, tmp_path: Path, extra: dict[str, object], refused: bool
) -> None:
    playbook = tmp_path / "guard.yml"
    playbook.write_text(GUARD_PLAY)
    deploy_host.write_inventory()
    run = deploy_host.play(str(playbook), **extra)
    assert (run.rc != 0) is refused, run.output
    if refused:
        assert f"stagegate_environment is {extra['stagegate_environment']}: this run" in run.output
        assert "re-run with -e stagegate_confirm_production=true" in run.output
