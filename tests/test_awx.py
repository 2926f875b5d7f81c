"""AWX objects as code (#15.7): awx/configure.yml and the workflow router awx/route.yml.

No AWX server runs here: configure.yml is syntax-checked and linted (production profile) with
the real awx.awx collection (from the PyPI `ansible` package, scripts/ee-awx.sh), its workflow
graph and surveys are checked against the playbooks and role options they name, and the router
runs for real with ansible-playbook on each verdict it routes.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO_ROOT
from sandbox_fixtures import INVENTORY, VENV_BIN

AWX = REPO_ROOT / "awx"


@pytest.fixture(scope="module")
def awx_collections(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """awx.awx where ansible-lint looks (the checkout's .ansible/collections), as make setup
    installs it; a no-op when it is there."""
    subprocess.run(["bash", str(REPO_ROOT / "scripts" / "ee-awx.sh")], check=True)
    dest = REPO_ROOT / ".ansible" / "collections"
    assert (dest / "ansible_collections" / "awx" / "awx" / "MANIFEST.json").is_file()
    return dest


def ansible_env(collections: Path | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
    }
    if collections:
        env["ANSIBLE_COLLECTIONS_PATH"] = f"{collections}:{REPO_ROOT / 'collections'}"
    return env


def configure_play() -> dict[str, Any]:
    return yaml.safe_load((AWX / "configure.yml").read_text())[0]


def task(play: dict[str, Any], module: str) -> dict[str, Any]:
    return next(t for t in play["tasks"] if f"awx.awx.{module}" in t)


def test_configure_syntax_check_with_the_awx_collection(awx_collections: Path) -> None:
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "--syntax-check", str(AWX / "configure.yml")],
        cwd=REPO_ROOT, env=ansible_env(awx_collections), capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_awx_playbooks_lint_clean_on_the_production_profile(awx_collections: Path) -> None:
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-lint"), "--profile", "production", "awx/"],
        cwd=REPO_ROOT, env=ansible_env(), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "2 files processed" in proc.stdout + proc.stderr


def test_job_templates_name_real_playbooks_and_role_options() -> None:
    play = configure_play()
    templates = play["vars"]["awx_templates"]
    assert {t["name"] for t in templates} == {"promote", "rollback", "validate", "backup", "route"}
    for template in templates:
        assert (REPO_ROOT / template["playbook"]).is_file(), template["playbook"]
    specs = "\n".join(p.read_text() for p in REPO_ROOT.glob("roles/*/meta/argument_specs.yml"))
    docs = (REPO_ROOT / "docs" / "configuration.md").read_text()
    for name in ("promote", "rollback", "validate", "backup", "release"):
        survey = json.loads((AWX / "surveys" / f"{name}.json").read_text())
        assert survey["spec"], name
        for question in survey["spec"]:
            variable = question["variable"]
            # every survey answer is a role option or a documented playbook variable
            assert f"{variable}:" in specs or f"`{variable}`" in docs, variable
            if question["type"] == "multiplechoice":
                assert question["default"] in question["choices"]
    credentials = [t for t in play["tasks"] if "awx.awx.credential" in t]
    assert {c["awx.awx.credential"]["credential_type"] for c in credentials} == {"Machine", "Vault"}
    assert all(c.get("no_log") is True for c in credentials)
    schedule = task(play, "schedule")["awx.awx.schedule"]
    assert schedule["unified_job_template"].endswith(" validate")
    assert "RRULE:" in play["vars"]["stagegate_awx_validate_rrule"]


def test_workflow_routes_fail_to_rollback_and_warn_to_approval() -> None:
    nodes = {
        n["identifier"]: n for n in task(configure_play(), "workflow_job_template")[
            "awx.awx.workflow_job_template"]["workflow_nodes"]
    }  # fmt: skip

    def next_of(node: str, branch: str) -> list[str]:
        return [n["identifier"] for n in nodes[node].get("related", {}).get(branch, [])]

    assert next_of("promote", "failure_nodes") == ["route-rollback"]
    assert next_of("route-rollback", "success_nodes") == ["rollback"]
    assert next_of("promote", "success_nodes") == ["route-warnings"]
    assert next_of("route-warnings", "failure_nodes") == ["approval"]
    assert next_of("approval", "failure_nodes") == ["rollback"]
    assert nodes["approval"]["unified_job_template"]["type"] == "workflow_approval"
    assert nodes["route-warnings"]["extra_data"] == {"stagegate_route": "approval"}
    assert nodes["route-rollback"]["extra_data"] == {"stagegate_route": "rollback"}
    assert nodes["rollback"]["unified_job_template"]["name"].endswith(" rollback")


def route(state_dir: Path, **extra: Any) -> subprocess.CompletedProcess[str]:
    variables = {"stagegate_state_dir": str(state_dir), "stagegate_release": "v2", **extra}
    return subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), str(AWX / "route.yml"), "-i", str(INVENTORY),
         "-e", json.dumps(variables)],
        cwd=REPO_ROOT, env=ansible_env(), capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_router_sends_warnings_to_approval_and_deployed_no_go_to_rollback(
    tmp_path: Path,
) -> None:
    assert route(tmp_path, stagegate_verdict="GO").returncode == 0
    warn = route(tmp_path, stagegate_verdict="GO_WITH_WARNINGS", stagegate_failed_checks=["x"])
    assert warn.returncode != 0
    assert "GO_WITH_WARNINGS" in warn.stdout
    assert "approval needed" in warn.stdout
    # NO_GO before anything was deployed: no rollback (it would take away the running release)
    early = route(tmp_path, stagegate_route="rollback", stagegate_verdict="NO_GO")
    assert early.returncode != 0
    assert "before it deployed anything" in early.stdout
    manifest = tmp_path / "releases" / "v2" / "manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("{}")
    assert route(tmp_path, stagegate_route="rollback", stagegate_verdict="NO_GO").returncode == 0
    bad = route(tmp_path, stagegate_route="sideways", stagegate_verdict="GO")
    assert bad.returncode != 0
    assert "expected approval or rollback" in bad.stdout
