"""Every Molecule scenario (molecule/<role>/) passes its full sequence: syntax, prepare,
converge, idempotence, verify, cleanup, against this machine from the shared base config."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from preflight_fixtures import REPO_ROOT, playbook_env

SCENARIOS = sorted(p.parent.name for p in (REPO_ROOT / "molecule").glob("*/molecule.yml"))


@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_scenario(scenario: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        ["molecule", "test", "--scenario-name", scenario],
        cwd=REPO_ROOT,
        # scenarios stay in molecule/ (the layout of this repo), not extensions/molecule/
        env={**playbook_env(), "MOLECULE_GLOB": "molecule/*/molecule.yml", "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    (tmp_path / "molecule.log").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    for step in ("converge", "idempotence", "verify"):
        # `preflight > converge` without a terminal, `preflight ➜ converge` with one
        done = rf"{scenario} (>|➜) {step}: Executed: Successful"
        assert re.search(done, proc.stdout + proc.stderr), step
