"""The project as a whole: set-up idempotence, the collection build, ansible.cfg resolution."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from conftest import REPO_ROOT

VENV_BIN = Path(os.environ.get("VIRTUAL_ENV", REPO_ROOT / ".venv")) / "bin"


def _run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
    return subprocess.run(
        cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False, **kwargs
    )


def test_second_setup_installs_and_rebuilds_nothing() -> None:
    # make test ran setup already, so this is at least the second run: it must say nothing.
    proc = _run(["bash", "scripts/setup.sh"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""


def test_checkout_resolves_the_collection_through_ansible_cfg() -> None:
    proc = _run(["ansible-galaxy", "collection", "list", "stagegate.release", "--format", "json"])
    assert proc.returncode == 0, proc.stderr
    assert str(REPO_ROOT / "collections" / "ansible_collections") in proc.stdout


@pytest.mark.slow
def test_collection_builds_and_installs(tmp_path: Path) -> None:
    build = _run(["ansible-galaxy", "collection", "build", "--output-path", str(tmp_path)])
    assert build.returncode == 0, build.stderr
    (artifact,) = tmp_path.glob("stagegate-release-*.tar.gz")
    with tarfile.open(artifact) as tar:
        names = tar.getnames()
    assert "galaxy.yml" not in names  # replaced by MANIFEST.json in a built collection
    assert "MANIFEST.json" in names
    assert "meta/runtime.yml" in names
    assert not [n for n in names if n.startswith((".venv", "collections/", ".git/"))]

    install_dir = tmp_path / "installed"
    install = _run(
        [
            "ansible-galaxy",
            "collection",
            "install",
            "--force",
            str(artifact),
            "-p",
            str(install_dir),
        ]
    )
    assert install.returncode == 0, install.stderr
    installed = install_dir / "ansible_collections" / "stagegate" / "release"
    assert (installed / "MANIFEST.json").is_file()
    assert (installed / "plugins").is_dir()


@pytest.mark.parametrize("role", sorted(p.name for p in (REPO_ROOT / "roles").iterdir()))
def test_role_defaults_mirror_the_argument_spec(role: str) -> None:
    # Ansible only checks argument specs; the values a spec promises come from defaults/main.yml,
    # so a role used on its own (Molecule, another playbook) must define every one of them.
    import yaml  # noqa: PLC0415 - only this test reads YAML

    spec = yaml.safe_load((REPO_ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    defaults_file = REPO_ROOT / "roles" / role / "defaults" / "main.yml"
    defaults = yaml.safe_load(defaults_file.read_text()) if defaults_file.exists() else {}
    for entry_point, body in spec["argument_specs"].items():
        for name, option in (body.get("options") or {}).items():
            if "default" in option:
                assert name in defaults, f"{role} {entry_point}: {name} has no default"
                assert defaults[name] == option["default"], f"{role}: {name} differs"
