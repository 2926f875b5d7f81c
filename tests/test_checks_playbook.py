"""The checks action and host_checks module through real ansible-playbook runs, with a
third-party plugin distribution installed into the venv through its entry point."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from checks_fixtures import PASSWORD, TOKEN, App
from conftest import REPO_ROOT

from stagegate.plugins import Hooks, new_plugin_manager
from stagegate.results import CheckResult, Status

PLUGIN_SRC = REPO_ROOT / "tests" / "plugins" / "stagegate-example-plugin"
PLAYBOOKS = REPO_ROOT / "tests" / "playbooks"
VENV_BIN = Path(sys.executable).parent


def install_example_plugin(workdir: Path) -> None:
    """pip-install the example distribution unless this version is already there."""
    try:
        if importlib.metadata.version("stagegate-example-plugin") == "1.0.0":
            return
    except importlib.metadata.PackageNotFoundError:
        pass
    source = workdir / "stagegate-example-plugin"
    shutil.copytree(PLUGIN_SRC, source)  # pip builds in-tree: keep the repo clean
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            str(source),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    importlib.invalidate_caches()


@pytest.fixture(scope="session")
def example_plugin(tmp_path_factory: pytest.TempPathFactory) -> None:
    install_example_plugin(tmp_path_factory.mktemp("plugin"))


def playbook(
    name: str, tmp_path: Path, extra: dict[str, str], *args: str, python: str = sys.executable
) -> subprocess.CompletedProcess[str]:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
        f"      ansible_python_interpreter: {python}\n"
    )
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
    }
    return subprocess.run(
        [
            str(VENV_BIN / "ansible-playbook"),
            "-i",
            str(inventory),
            str(PLAYBOOKS / name),
            "-e",
            json.dumps(extra),
            *args,
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.fixture
def catalog_inputs(tmp_path: Path, http_app: App) -> dict[str, str]:
    env_file = tmp_path / ".env"
    env_file.write_text("JWT_SECRET=too-short-secret\n")
    words = tmp_path / "notes.txt"
    words.write_text("stagegate promotes releases; stagegate rolls back\n")
    return {
        "app_url": http_app.url,
        "env_file": str(env_file),
        "words_file": str(words),
        "app_password": PASSWORD,
        "result_file": str(tmp_path / "results.json"),
    }


def by_name(results: list[dict[str, object]]) -> dict[str, CheckResult]:
    return {r["name"]: CheckResult.from_dict(r) for r in results}  # type: ignore[arg-type,index]


@pytest.mark.slow
def test_playbook_runs_controller_host_and_plugin_checks(
    example_plugin: None, catalog_inputs: dict[str, str], tmp_path: Path
) -> None:
    proc = playbook("checks_run.yml", tmp_path, catalog_inputs)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    recorded = json.loads(Path(catalog_inputs["result_file"]).read_text())
    results = by_name(recorded["all"]["results"])
    assert {n: str(r.status) for n, r in results.items()} == {
        "api-health": "PASS",
        "api-health-from-host": "PASS",
        "login-flow": "PASS",
        "host-disk": "PASS",
        "host-env": "WARN",  # failed, but severity warning
        "migrations-applied": "PASS",
        "release-notes": "PASS",  # the third-party type, through its entry point
    }
    assert results["host-disk"].details["ran_on"] == "host"
    assert results["host-env"].details["check_status"] == "FAIL"
    assert results["release-notes"].value == 2
    assert recorded["all"]["summary"]["PASS"] == 6
    assert recorded["all"]["changed"] is False
    assert [r["name"] for r in recorded["security"]["results"]] == ["host-env"]
    direct = recorded["direct"]
    assert direct["changed"] is False
    assert [(o["name"], o["status"]) for o in direct["outcomes"]] == [
        ("direct-disk", "PASS"),
        ("direct-command", "PASS"),
    ]
    assert direct["outcomes"][0]["measurements"][0]["bands"] == ">= 1mb"  # graded by the action
    everything = proc.stdout + proc.stderr + Path(catalog_inputs["result_file"]).read_text()
    for secret in (TOKEN, PASSWORD, "too-short-secret"):
        assert secret not in everything


@pytest.mark.slow
def test_check_mode_runs_read_only_checks_for_real(
    example_plugin: None, catalog_inputs: dict[str, str], tmp_path: Path, http_app: App
) -> None:
    proc = playbook("checks_run.yml", tmp_path, catalog_inputs, "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    recorded = json.loads(Path(catalog_inputs["result_file"]).read_text())
    results = by_name(recorded["all"]["results"])
    assert results["api-health"].status is Status.PASS
    assert results["host-disk"].status is Status.PASS
    assert results["migrations-applied"].status is Status.SKIP
    assert results["login-flow"].status is Status.SKIP  # POST: not read-only
    direct = {o["name"]: o["status"] for o in recorded["direct"]["outcomes"]}
    assert direct == {"direct-disk": "PASS", "direct-command": "SKIP"}


@pytest.mark.slow
def test_a_bad_catalog_fails_naming_every_problem(tmp_path: Path, http_app: App) -> None:
    proc = playbook("checks_bad_catalog.yml", tmp_path, {"app_url": http_app.url})
    assert proc.returncode != 0
    assert "check 'typo': 'type' = 'htp': expected one of" in proc.stdout
    assert "check 'no-url': 'severity' = 'fatal': expected critical, warning or info" in proc.stdout
    assert "option 'url' is required" in proc.stdout
    assert http_app.state.limited_hits == 0  # nothing ran


@pytest.mark.slow
@pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="needs a system python3")
def test_a_library_missing_on_the_host_gives_error_results(tmp_path: Path, http_app: App) -> None:
    bare = subprocess.run(
        ["/usr/bin/python3", "-c", "import psycopg"], capture_output=True, check=False
    )
    if bare.returncode == 0:
        pytest.skip("the system python3 has psycopg: nothing is missing")
    result_file = tmp_path / "results.json"
    proc = playbook(
        "checks_host_missing_lib.yml",
        tmp_path,
        {"app_url": http_app.url, "result_file": str(result_file)},
        python="/usr/bin/python3",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = by_name(json.loads(result_file.read_text())["results"])
    assert results["db-schema"].status is Status.ERROR
    assert "psycopg" in results["db-schema"].message
    assert results["api"].status is Status.PASS  # controller checks are unaffected


def test_the_installed_plugin_adds_a_type_and_a_verdict_policy(example_plugin: None) -> None:
    pm = new_plugin_manager()
    hooks = Hooks(pm)
    assert "example" in {pm.get_name(p) for p in pm.get_plugins()}
    assert "word_count" in hooks.check_types()
    relaxed = hooks.adjust_verdict(verdict="GO_WITH_WARNINGS", results=[])
    strict = hooks.adjust_verdict(
        verdict="GO_WITH_WARNINGS", results=[], config={"example_strict": True}
    )
    assert (relaxed, strict) == ("GO_WITH_WARNINGS", "NO_GO")


def test_blocking_the_installed_plugin(
    example_plugin: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STAGEGATE_BLOCK_PLUGINS", "example")
    assert "word_count" not in Hooks(new_plugin_manager()).check_types()
