"""Which container the pg_* modules run their client tools in (`db.container`)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from ansible_collections.stagegate.release.plugins.module_utils._pg import resolve_container
from conftest import unique_name


def run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()


def full_id(container: str) -> str:
    return run("docker", "inspect", "--format", "{{.Id}}", container)


@pytest.fixture
def stranger_and_service() -> Iterator[tuple[str, str, str, str]]:
    """Another team's container, and a compose-labelled container of our project whose service
    name is the first characters of the stranger's ID (IDs are hex: `db` is such a name)."""
    stranger = run("docker", "run", "-d", "--name", unique_name("sgt-stranger-"),
                   "stagegate/busybox:latest", "sleep", "300")  # fmt: skip
    ours = ""
    try:
        service, project = stranger[:3], unique_name("sgt-svc-")
        ours = run("docker", "run", "-d", "--name", unique_name("sgt-ours-"),
                   "--label", f"com.docker.compose.service={service}",
                   "--label", f"com.docker.compose.project={project}",
                   "stagegate/busybox:latest", "sleep", "300")  # fmt: skip
        yield stranger, ours, service, project
    finally:
        subprocess.run(["docker", "rm", "-f", stranger, *([ours] if ours else [])],
                       capture_output=True, check=False)  # fmt: skip


@pytest.mark.docker
def test_a_service_name_is_never_taken_for_a_prefix_of_another_containers_id(
    stranger_and_service: tuple[str, str, str, str],
) -> None:
    # Found as a new user: `container: db` ran pg_dump in another project's container whose ID
    # began with "db" ("connection refused"); a restore would have gone there too.
    stranger, ours, service, project = stranger_and_service
    assert full_id(resolve_container(service, project)) == ours
    assert full_id(resolve_container(stranger[:12])) == stranger  # a short ID still works
    name = run("docker", "inspect", "--format", "{{.Name}}", ours).lstrip("/")
    assert full_id(resolve_container(name)) == ours  # and a container name
