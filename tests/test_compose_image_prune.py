"""docker_image_prune through real ansible-playbook: only the project's dangling images go."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from compose_fixtures import ComposeTestProject

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_prune_removes_the_projects_dangling_images_only(
    built_app_project: ComposeTestProject, tmp_path: Path, docker_client: Any
) -> None:
    project = built_app_project
    web = f"{project.image_repos[0]}:latest"
    first_build = docker_client.images.get(web).id
    # A rebuild with other content moves the tag: the first build is left dangling.
    project.compose("build", "--build-arg", "MESSAGE=rebuilt", "web")
    current = docker_client.images.get(web).id
    assert current != first_build

    run = project.playbook("compose_image_prune.yml", tmp_path)
    assert run.rc == 0, run.describe()
    res = run.results
    assert [res[k]["changed"] for k in ("check1", "real1", "check2", "real2")] == [
        True,
        True,
        False,
        False,
    ]
    assert [i["id"] for i in res["real1"]["images"]] == [first_build]
    assert res["real1"]["volumes"] == []
    assert not docker_client.images.list(filters={"dangling": True, "label": _label(project)})
    assert docker_client.images.get(web).id == current
    assert "needs project_name" in res["volumes_without_project"]["msg"]


def _label(project: ComposeTestProject) -> str:
    return f"com.docker.compose.project={project.name}"
