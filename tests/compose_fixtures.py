"""Fixtures for the compose_* modules: a throwaway copy of a compose project under a unique
name, playbooks run through real `ansible-playbook`, and a teardown that removes every
container, network, volume and image tag the test made."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO_ROOT, free_port, unique_name

COMPOSE_DIR = REPO_ROOT / "tests" / "compose"
PLAYBOOK_DIR = REPO_ROOT / "tests" / "playbooks"


@dataclass
class PlaybookRun:
    rc: int
    stdout: str
    stderr: str
    results: dict[str, Any]

    def describe(self) -> str:
        return f"rc={self.rc}\n--- stdout ---\n{self.stdout[-6000:]}\n--- stderr ---\n{self.stderr}"


@dataclass
class ComposeTestProject:
    """A compose project of the test's own: unique project name, image prefix and ports."""

    project_dir: Path
    name: str
    env: dict[str, str]
    files: list[str] = field(default_factory=lambda: ["compose.yaml"])
    image_repos: list[str] = field(default_factory=list)

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = ["docker", "compose", "--project-directory", str(self.project_dir), "-p", self.name]
        for name in self.files:
            cmd += ["-f", str(self.project_dir / name)]
        return subprocess.run(
            [*cmd, *args],
            capture_output=True,
            text=True,
            env={**os.environ, **self.env},
            check=check,
        )

    def module_args(self) -> dict[str, Any]:
        return {
            "project_src": str(self.project_dir),
            "project_name": self.name,
            "files": self.files,
            "env": self.env,
        }

    def playbook(
        self, name: str, tmp_path: Path, *, check: bool = False, **extra: Any
    ) -> PlaybookRun:
        """Run tests/playbooks/<name> on localhost (`--check` with `check`); the playbook
        writes its registered results to `result_file`."""
        result_file = tmp_path / f"{Path(name).stem}-{unique_name('r')}.json"
        extra_vars = {
            "ansible_python_interpreter": sys.executable,
            "compose": self.module_args(),
            "result_file": str(result_file),
            **extra,
        }
        vars_file = result_file.with_suffix(".vars.json")
        vars_file.write_text(json.dumps(extra_vars))
        proc = subprocess.run(
            [
                str(Path(sys.executable).parent / "ansible-playbook"),
                "-i",
                "localhost,",
                "-c",
                "local",
                str(PLAYBOOK_DIR / name),
                "-e",
                f"@{vars_file}",
                *(["--check"] if check else []),
            ],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            env={**os.environ, "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg")},
            check=False,
        )
        results = json.loads(result_file.read_text()) if result_file.exists() else {}
        return PlaybookRun(proc.returncode, proc.stdout, proc.stderr, results)


def remove_project(project: ComposeTestProject, docker_client: Any) -> None:
    """Containers, networks and volumes of the project, then every tag of its images."""
    project.compose("down", "--volumes", "--remove-orphans", "--timeout", "0", check=False)
    for repo in project.image_repos:
        for image in docker_client.images.list(name=repo):
            for tag in image.tags:
                if tag.startswith(f"{repo}:"):
                    docker_client.images.remove(tag, noprune=False)


@pytest.fixture
def app_project(tmp_path: Path, docker_client: Any) -> Iterator[ComposeTestProject]:
    """tests/compose/app copied to tmp_path (tests edit its build context), unique names."""
    name = unique_name("sgt")
    project_dir = tmp_path / "app"
    shutil.copytree(COMPOSE_DIR / "app", project_dir)
    project = ComposeTestProject(
        project_dir=project_dir,
        name=name,
        env={"SGT_IMAGE_PREFIX": f"sgt/{name}", "SGT_WEB_PORT": str(free_port())},
        image_repos=[f"sgt/{name}/web", f"sgt/{name}/worker"],
    )
    try:
        yield project
    finally:
        remove_project(project, docker_client)


@pytest.fixture
def built_app_project(app_project: ComposeTestProject) -> ComposeTestProject:
    """app_project with its images built (straight through Compose, not the module)."""
    app_project.compose("build")
    return app_project
