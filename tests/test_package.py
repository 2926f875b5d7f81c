"""The distribution and the collection as a user gets them: built, installed into a clean venv
with no checkout on the path and no .pth, offline, then `stagegate.release.staging` run from the
installed collection against a sandbox stack (a first deploy straight to v2: the suite's one run
of staging.yml from nothing to v2 with all its migrations)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from sandbox_fixtures import INVENTORY, SandboxStack, left_in, sandbox_secrets

pytestmark = [pytest.mark.slow]

# Wheels of the dependencies, downloaded once and reused (pip in the clean venv runs offline).
WHEELHOUSE = Path(os.environ.get("STAGEGATE_WHEELHOUSE", "/var/tmp/stagegate/wheelhouse"))
DIST = "stagegate-release"
# What a checkout has and a built collection must not ship.
NOT_SHIPPED = (
    "tests/", "sandbox/", "molecule/", "bench/", "scripts/", ".ci/", "src/", "inventory/",
    "collections/", ".venv/", "setup.py", "pyproject.toml", "Makefile", "ansible.cfg",
)  # fmt: skip


def run(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=900
    )
    assert proc.returncode == 0, (
        f"{' '.join(cmd)}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    )
    return proc.stdout


def build_wheel(dest: Path, work: Path) -> Path:
    """The wheel, built from a copy of the tracked files (pip builds in-tree: repo stays clean)."""
    tracked = run(["git", "ls-files", "src", "plugins/module_utils"], cwd=REPO_ROOT).split()
    for name in [*tracked, "setup.py", "pyproject.toml", "MANIFEST.in", "README.md"]:
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, work / name)
    pip = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    run([*pip, "-w", str(dest), str(work)])
    (wheel,) = dest.glob("stagegate_release-*.whl")
    return wheel


@dataclass
class CleanVenv:
    root: Path
    project: Path  # a user's project dir: its own ansible.cfg, inventory and collections
    tarball: Path  # the built collection it installed

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    def env(self) -> dict[str, str]:
        """Nothing of the checkout: no ANSIBLE_CONFIG, PYTHONPATH or checkout venv on PATH."""
        drop = ("ANSIBLE_", "PYTHON", "VIRTUAL_ENV", "PYTEST")
        env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
        env["PATH"] = f"{self.bin}:/usr/local/bin:/usr/bin:/bin"
        # HOME stays: the deploy host (this machine) has its Compose plugin in ~/.docker; the
        # project's ansible.cfg names its only collections path.
        env["ANSIBLE_NOCOLOR"] = "1"
        return env

    def run(self, *cmd: str) -> str:
        return run([str(self.bin / cmd[0]), *cmd[1:]], env=self.env(), cwd=self.project)


def pip_install_offline(venv: Path, wheel: Path) -> None:
    offline = [str(venv / "bin" / "pip"), "install", "-q", "--no-index"]
    offline += ["--find-links", str(wheel.parent), "--find-links", str(WHEELHOUSE), str(wheel)]
    proc = subprocess.run(offline, capture_output=True, text=True, check=False)
    if proc.returncode != 0:  # first run on this machine: fetch the dependencies' wheels once
        WHEELHOUSE.mkdir(parents=True, exist_ok=True)
        run([sys.executable, "-m", "pip", "download", "-q", "-d", str(WHEELHOUSE), str(wheel)])
        for own in WHEELHOUSE.glob("stagegate_release-*"):
            own.unlink()  # never install a stale build of ourselves from the cache
        run(offline)


@pytest.fixture(scope="module")
def clean_venv(tmp_path_factory: pytest.TempPathFactory) -> CleanVenv:
    base = tmp_path_factory.mktemp("clean")
    wheel = build_wheel(base / "dist", base / "src")
    venv = base / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    pip_install_offline(venv, wheel)

    project = base / "project"
    project.mkdir()
    tarball_dir = base / "collection"
    build = [str(venv / "bin" / "ansible-galaxy"), "collection", "build", "--output-path"]
    run([*build, str(tarball_dir), str(REPO_ROOT)], env={**os.environ, "HOME": str(base)}, cwd=base)
    (tarball,) = tarball_dir.glob("stagegate-release-*.tar.gz")
    clean = CleanVenv(venv, project, tarball)
    clean.run(
        "ansible-galaxy", "collection", "install", "--offline", str(tarball),
        "-p", str(project / "collections"),
    )  # fmt: skip
    (project / "ansible.cfg").write_text(
        "[defaults]\ncollections_path = ./collections\n"
        "callbacks_enabled = stagegate.release.progress\n"
    )
    shutil.copytree(INVENTORY, project / "inventory")
    (project / "site.yml").write_text(
        "- ansible.builtin.import_playbook: stagegate.release.staging\n"
    )
    return clean


def test_wheel_bundles_the_collections_module_utils_from_the_one_source(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "dist", tmp_path / "src")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert f"Name: {DIST}" in metadata
    bundled = "stagegate/_collection/ansible_collections/stagegate/release/plugins/module_utils/"
    sources = sorted(p.name for p in (REPO_ROOT / "plugins" / "module_utils").glob("_*.py"))
    assert sorted(n.removeprefix(bundled) for n in names if n.startswith(bundled)) == sources
    # One source in the repository: the bundle exists only in the built wheel.
    assert not (REPO_ROOT / "src" / "stagegate" / "_collection").exists()


def test_clean_venv_imports_everything_from_site_packages(clean_venv: CleanVenv) -> None:
    code = (
        "import json, sys, stagegate, stagegate.engine, stagegate.ledger\n"
        "from ansible_collections.stagegate.release.plugins.module_utils import _ledger\n"
        "print(json.dumps([stagegate.__file__, _ledger.__file__, sys.path]))"
    )
    package, module_utils, path = json.loads(clean_venv.run("python", "-c", code))
    site = str(clean_venv.root)
    assert package.startswith(site), package
    assert module_utils.startswith(site), module_utils
    assert not [p for p in path if str(REPO_ROOT) in p]
    pths = list(clean_venv.root.glob("lib/python*/site-packages/*.pth"))
    assert not [p for p in pths if "stagegate" in p.name], pths


def test_built_collection_ships_only_what_a_user_needs(clean_venv: CleanVenv) -> None:
    with tarfile.open(clean_venv.tarball) as tar:
        names = tar.getnames()
    assert not [n for n in names if n.startswith(NOT_SHIPPED)], names
    needed = ["requirements.txt", "bindep.txt", "meta/execution-environment.yml"]
    needed += ["meta/runtime.yml", "playbooks/staging.yml", "plugins/modules/gate.py"]
    assert not [n for n in needed if n not in names]
    assert f"\n{DIST}" in (REPO_ROOT / "requirements.txt").read_text()
    manifest = json.loads(tar_member(clean_venv.tarball, "MANIFEST.json"))
    assert "example" not in manifest["collection_info"]["repository"]


def test_built_collection_ships_no_run_output_of_the_checkout(tmp_path: Path) -> None:
    # Runs from a checkout write reports to playbooks/artifacts/ (the default report dir) and
    # runner jobs to artifacts/ beside their playbook; neither is tracked, neither may ship
    # (they went into the collection tarball, and from it into the EE image, before).
    src = tmp_path / "src"
    for name in run(["git", "ls-files"], cwd=REPO_ROOT).splitlines():
        if (REPO_ROOT / name).is_file() and not (REPO_ROOT / name).is_symlink():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, src / name)
    planted = ["playbooks/artifacts/v2-20261130T000000Z-abcdef/report.json"]
    planted += ["awx/artifacts/1/stdout"]
    for name in planted:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text("{}")
    galaxy = Path(sys.executable).parent / "ansible-galaxy"
    run([str(galaxy), "collection", "build", "--output-path", str(tmp_path / "out"), str(src)])
    (tarball,) = (tmp_path / "out").glob("stagegate-release-*.tar.gz")
    with tarfile.open(tarball) as tar:
        names = [m.name for m in tar.getmembers() if m.isfile()]
    assert not [n for n in names if "artifacts" in n.split("/")], names
    assert "playbooks/staging.yml" in names


def tar_member(tarball: Path, name: str) -> str:
    with tarfile.open(tarball) as tar:
        member = tar.extractfile(name)
        assert member is not None
        return member.read().decode()


@pytest.mark.docker
def test_staging_runs_from_the_installed_collection_in_a_clean_venv(
    clean_venv: CleanVenv, sandbox_stack: SandboxStack, tmp_path: Path
) -> None:
    extra = json.dumps(sandbox_stack.extra_vars())
    run_tmp = tmp_path / "tmp"  # the run's own temporary files, and only those
    run_tmp.mkdir()
    proc = subprocess.run(
        [str(clean_venv.bin / "ansible-playbook"), "site.yml", "-i", "inventory", "-e", extra],
        cwd=clean_venv.project, env={**clean_venv.env(), "TMPDIR": str(run_tmp)},
        capture_output=True, text=True, check=False, timeout=900,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert left_in(run_tmp) == []  # a normal run removes its temporary files
    installed = clean_venv.project / "collections" / "ansible_collections" / "stagegate"
    assert str(REPO_ROOT) not in output.replace(str(sandbox_stack.repo), "")
    assert (installed / "release" / "playbooks" / "staging.yml").is_file()
    report = json.loads((sandbox_stack.report_dir / "report.json").read_text())
    assert report["verdict"] in ("GO", "GO_WITH_WARNINGS"), report["verdict"]
    assert sandbox_stack.request("/version").json()["version"] == "v2"
    for name, value in sandbox_secrets().items():
        if "password" in name or "secret" in name:
            assert value not in output, f"{name} printed"
    # A first deploy straight to v2 applies all its migrations (001-007) and serves v2's API.
    summary = sandbox_stack.request("/api/v1/reports/summary")
    assert summary.status == 200
    assert {row["status"] for row in summary.json()["summary"]} == {"processed", "queued"}
    schema = sandbox_stack.compose(
        "exec", "-T", "postgres", "psql", "-At", "-U", "app", "-d", "app", "-c",
        "SELECT to_regclass('item_events') IS NOT NULL"
        " AND to_regclass('idx_item_events_item_created') IS NOT NULL",
    ).stdout.strip()  # fmt: skip
    assert schema == "t"
