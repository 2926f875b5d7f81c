"""Rollback's image step on real Docker: the target's images, as its manifest recorded them."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from ansible_collections.stagegate.release.plugins.module_utils._rollback import _image_step
from conftest import REPO_ROOT, unique_name

VENV_BIN = REPO_ROOT / ".venv" / "bin"
PLAY = """\
- hosts: localhost
  gather_facts: false
  tasks:
    - name: The rollback role's image step
      ansible.builtin.include_role:
        name: stagegate.release.rollback
        tasks_from: images
"""


def docker(*argv: str, stdin: str | None = None) -> str:
    return subprocess.run(
        ["docker", *argv], input=stdin, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def two_builds() -> Iterator[tuple[str, str, str]]:
    """Two images of one service: the target's (r1.0, untagged now) and the bad release's,
    which holds the name the compose file uses (`image: <name>`, i.e. :latest)."""
    name = unique_name("sgt-retag-")
    ids: list[str] = []
    try:
        for release in ("r1.0", "r1.1"):
            dockerfile = f"FROM stagegate/busybox:latest\nLABEL release={release} test={name}\n"
            docker("build", "-q", "-t", f"{name}:latest", "-", stdin=dockerfile)
            ids.append(docker("image", "inspect", "--format", "{{.Id}}", f"{name}:latest"))
        docker("tag", ids[0], f"{name}-keep:r1.0")  # keep the target's image from dangling
        yield name, ids[0], ids[1]
    finally:
        subprocess.run(["docker", "rmi", "-f", f"{name}:latest", f"{name}-keep:r1.0", *ids],
                       capture_output=True, check=False)  # fmt: skip


@pytest.mark.docker
def test_rollback_tags_the_targets_image_back(
    two_builds: tuple[str, str, str], tmp_path: Path
) -> None:
    # Found as a new user: the plan said "app ... retag" but no step retagged, so the rollback
    # started the bad release's image (`image: t1notes-app`) against the restored database.
    name, target_id, bad_id = two_builds
    images = {"app": {"id": target_id, "ref": name, "action": "retag"}}
    assert _image_step(images) == "tag back to the recorded ID app"
    plan = {"plan": {"rebuild": [], "images": images, "target": {"release": "r1.0"}}}
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY)
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
    }
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), str(playbook), "-i", "localhost,", "-c", "local",
         "-e", json.dumps({"rollback_plan_result": plan,
                           "ansible_python_interpreter": str(VENV_BIN / "python")})],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert docker("image", "inspect", "--format", "{{.Id}}", name) == target_id != bad_id
