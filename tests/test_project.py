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


def _apt_mirror(apt_dir: Path) -> str:
    """setup.sh's apt_mirror function, run alone against an apt configuration dir."""
    script = (
        f"source <(sed -n '/^apt_mirror()/,/^}}/p' {REPO_ROOT / 'scripts' / 'setup.sh'}); "
        f"apt_mirror {apt_dir}"
    )
    proc = _run(["bash", "-c", script])
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_setup_takes_the_debian_mirror_from_apts_sources(tmp_path: Path) -> None:
    codename = _run(["bash", "-c", ". /etc/os-release; echo $VERSION_CODENAME"]).stdout.strip()
    (tmp_path / "sources.list.d").mkdir()
    # One-line format with options; the security suite comes first and is not the mirror.
    (tmp_path / "sources.list").write_text(
        "# a comment\n"
        f"deb http://security.example/debian-security {codename}-security main\n"
        f"deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian {codename} main\n"
    )
    assert _apt_mirror(tmp_path) == "http://mirror.example/debian"
    # deb822 (Debian 12's default): `deb-src` only and other suites are skipped.
    (tmp_path / "sources.list").unlink()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        f"Types: deb-src\nURIs: http://src.example/debian\nSuites: {codename}\n\n"
        f"Types: deb\nURIs: http://sec.example/s\nSuites: {codename}-security\n\n"
        f"Types: deb deb-src\n# a comment\nURIs: http://m2.example/debian http://m3.example\n"
        f"Suites: {codename} {codename}-updates\nComponents: main\n"
    )
    assert _apt_mirror(tmp_path) == "http://m2.example/debian"
    (tmp_path / "sources.list.d" / "debian.sources").unlink()
    assert _apt_mirror(tmp_path) == ""  # nothing found: setup.sh falls back to deb.debian.org


def test_preflight_stops_on_a_deploy_host_python_below_the_minimum(tmp_path: Path) -> None:
    playbook = tmp_path / "host_python.yml"
    tasks = REPO_ROOT / "roles" / "preflight" / "tasks" / "host_python.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        f"    - ansible.builtin.import_tasks: {tasks}\n"
    )
    base = [
        "ansible-playbook",
        str(playbook),
        "-e",
        f"ansible_python_interpreter={VENV_BIN}/python",
    ]
    ok = _run(base)
    assert ok.returncode == 0, ok.stdout
    # The same real host against a minimum above it (3.11 here): the message names the host,
    # the version found and the fix.
    too_old = _run([*base, "-e", "_preflight_min_host_python=99.0"])
    assert too_old.returncode == 2, too_old.stdout
    assert "The deploy host localhost runs Python 3." in too_old.stdout
    assert "need Python 99.0 or newer" in too_old.stdout
    assert "ansible_python_interpreter" in too_old.stdout
