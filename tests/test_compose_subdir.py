"""A compose file in a subdirectory (`deploy/compose.yaml`) through real `ansible-playbook`:
stagegate's Compose calls read it as `docker compose -f deploy/compose.yaml` run by hand does,
its `.env` beside it and its relative build context (`..`) from its own directory, for the
deploy checkout and for a release read from the repository (preflight), whose untracked
`.env` is the checkout's (a trial's app failed in its build: the checkout root was taken as
Compose's project directory)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from sandbox_fixtures import PlaybookRun, local_inventory, run_playbook

PLAY = """\
- hosts: deploy
  gather_facts: false
  tasks:
    - name: Read the compose project
      stagegate.release.compose_config:
        project_src: "{{ project }}"
        project_name: sgt-subdir
        files: [deploy/compose.yaml]
        release_repo: "{{ repo | default(omit) }}"
        release: "{{ release | default(omit) }}"
      register: read

    - name: Save the result
      ansible.builtin.copy:
        content: "{{ read | to_json }}"
        dest: "{{ result_file }}"
        mode: "0600"
      delegate_to: localhost
"""

COMPOSE = """\
services:
  web:
    image: sgt-subdir/web:${WEB_TAG}
    build:
      context: ..
      dockerfile: docker/web.Dockerfile
"""


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def project(path: Path) -> Path:
    """A repository with deploy/compose.yaml, tag v1; the .env beside it is untracked."""
    (path / "deploy").mkdir(parents=True)
    (path / "docker").mkdir()
    (path / "deploy" / "compose.yaml").write_text(COMPOSE)
    (path / "docker" / "web.Dockerfile").write_text("FROM scratch\n")
    (path / ".gitignore").write_text(".env\n")
    git(path, "init", "-q")
    git(path, "add", ".")
    git(path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "v1")
    git(path, "tag", "v1")
    (path / "deploy" / ".env").write_text("WEB_TAG=from-deploy-dotenv\n")
    return path


def read(tmp_path: Path, **variables: Any) -> tuple[PlaybookRun, dict[str, Any]]:
    playbook = tmp_path / "read.yml"
    playbook.write_text(PLAY)
    inventory = local_inventory(tmp_path)
    result_file = tmp_path / "result.json"
    result_file.unlink(missing_ok=True)
    run = run_playbook(
        str(playbook), {**variables, "result_file": str(result_file)}, inventory=inventory
    )
    return run, json.loads(result_file.read_text()) if result_file.exists() else {}


def test_a_compose_file_in_a_subdirectory_reads_its_own_dotenv_and_context(
    tmp_path: Path,
) -> None:
    checkout = project(tmp_path / "app")
    run, result = read(tmp_path, project=str(checkout))
    assert run.rc == 0, run.output[-3000:]
    web = result["config"]["services"]["web"]
    assert web["image"] == "sgt-subdir/web:from-deploy-dotenv"
    assert web["build"]["context"] == str(checkout)  # `..` of deploy/, not above the checkout

    # preflight reads the release from the repository: the checkout's .env goes beside its file
    run, result = read(tmp_path, project=str(checkout), repo=str(checkout), release="v1")
    assert run.rc == 0, run.output[-3000:]
    web = result["config"]["services"]["web"]
    assert web["image"] == "sgt-subdir/web:from-deploy-dotenv"
    assert web["build"]["dockerfile"] == "docker/web.Dockerfile"
