"""Every playbook takes the documented defaults of the core contract (docs/configuration.md).

`stagegate_project_dir` defaults to `<stagegate_state_dir>/checkout`: an inventory that leaves
it out works for staging.yml, and must for rollback.yml and validate.yml too (run on their own,
as an on-call engineer or an AWX schedule runs them, without staging.yml's roles in the play).
Nothing is deployed here, so both stop; they must stop on what is missing on the deploy host,
read from the default checkout, not on an undefined or required variable.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sandbox_fixtures import INVENTORY, run_playbook

# Keys a minimal inventory leaves to their documented defaults.
DEFAULTED = ("stagegate_project_dir", "stagegate_migrations_dir")


@pytest.fixture
def minimal_inventory(tmp_path: Path) -> Path:
    inventory = tmp_path / "inventory"
    group_vars = inventory / "group_vars" / "all"
    group_vars.mkdir(parents=True)
    (inventory / "hosts.yml").write_text((INVENTORY / "hosts.yml").read_text())
    for source in (INVENTORY / "group_vars" / "all").glob("*.yml"):
        data = yaml.safe_load(source.read_text()) or {}
        for key in DEFAULTED:
            data.pop(key, None)
        if "stagegate_state_dir" in data:
            data["stagegate_state_dir"] = str(tmp_path / "state")
        (group_vars / source.name).write_text(yaml.safe_dump(data, sort_keys=False))
    (tmp_path / "state").mkdir()
    return inventory


@pytest.mark.parametrize("playbook", ["rollback.yml", "validate.yml"])
def test_playbook_run_alone_uses_the_default_checkout(
    minimal_inventory: Path, playbook: str
) -> None:
    run = run_playbook(playbook, {}, inventory=minimal_inventory)
    assert run.rc != 0, run.output  # nothing deployed
    for key in DEFAULTED:
        assert f"missing required arguments: {key}" not in run.output, run.output
        assert f"'{key}' is undefined" not in run.output, run.output
    # Both read the default checkout and say it holds no release.
    checkout = minimal_inventory.parent / "state" / "checkout"
    if playbook == "validate.yml":  # its release marker
        assert f"{checkout}/.stagegate-release" in run.output, run.output
    else:  # the rollback plan
        assert f"cannot tell which release runs: {checkout} has no" in run.output, run.output
