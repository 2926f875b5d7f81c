"""`db.container` names the database container by name or compose service, on a real engine.

A compose service is often called `db`, `cafe` or `feed`: words that are also hexadecimal. Docker
resolves a bare hex string to any container whose ID starts with it, so a service name must
never be taken for an ID prefix: pg_dump/pg_restore would run in an unrelated container (seen
with an AWX execution environment worker whose ID began with `db`).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from ansible_collections.stagegate.release.plugins.module_utils._pg import (
    PgError,
    resolve_container,
)
from conftest import unique_name

pytestmark = [pytest.mark.docker]

TINY_IMAGE = "stagegate/busybox:latest"


def docker(*args: str) -> str:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def containers() -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    for name in made:
        subprocess.run(["docker", "rm", "--force", name], capture_output=True, check=False)


def start(made: list[str], *labels: str) -> tuple[str, str]:
    name = unique_name("sgt-pgc")
    args = ["run", "--detach", "--name", name, "--label", "stagegate.test=pg-container"]
    for label in labels:
        args += ["--label", label]
    made.append(name)
    return name, docker(*args, TINY_IMAGE, "sleep", "300")


def test_a_service_name_that_is_an_id_prefix_of_another_container_is_the_service(
    containers: list[str],
) -> None:
    _, bystander = start(containers)
    # The bystander's ID prefix is the service's name: docker inspect would resolve it.
    service = bystander[:10]
    project = unique_name("sgt-pgc-project")
    _, wanted = start(
        containers,
        f"com.docker.compose.project={project}",
        f"com.docker.compose.service={service}",
    )
    assert docker("inspect", "--format", "{{.Id}}", service) == bystander  # Docker's own rule

    assert wanted.startswith(resolve_container(service, project))  # docker ps: a short ID


def test_a_container_name_or_full_id_still_resolves(containers: list[str]) -> None:
    name, container_id = start(containers)
    assert resolve_container(name) == container_id
    assert resolve_container(container_id) == container_id
    assert resolve_container(container_id[:12]) == container_id  # docker ps shows 12
    # An ID prefix is not a name: without a compose service of that name, nothing is found.
    with pytest.raises(PgError, match="expected one running container or compose service"):
        resolve_container(container_id[:10])
