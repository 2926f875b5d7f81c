# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Docker SDK access for Compose projects: containers by label, their state, health and logs.

The docker SDK is optional for Ansible modules: import this file, check HAS_DOCKER_SDK and
report DOCKER_SDK_IMPORT_ERROR through `missing_required_lib("docker")`.
"""

from __future__ import annotations

import re
import traceback
from dataclasses import dataclass
from datetime import datetime
from typing import Any

try:
    import docker
    from docker.errors import DockerException, ImageNotFound, NotFound

    HAS_DOCKER_SDK = True
    DOCKER_SDK_IMPORT_ERROR: str | None = None
except ImportError:  # reported by the module through missing_required_lib
    HAS_DOCKER_SDK = False
    DOCKER_SDK_IMPORT_ERROR = traceback.format_exc()
    DockerException = ImageNotFound = NotFound = Exception

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
ONEOFF_LABEL = "com.docker.compose.oneoff"


def docker_client() -> Any:
    """A client for the engine in the environment (DOCKER_HOST or the local socket)."""
    return docker.from_env(version="auto")


def service_containers(client: Any, project: str, services: list[str] | None = None) -> list[Any]:
    """The project's containers (running or not), optionally of some services; no one-offs."""
    found = client.containers.list(all=True, filters={"label": f"{PROJECT_LABEL}={project}"})
    return [
        c
        for c in found
        if c.labels.get(ONEOFF_LABEL, "False") != "True"
        and (services is None or c.labels.get(SERVICE_LABEL) in services)
    ]


@dataclass
class ContainerState:
    """What the engine says about one container right now."""

    name: str
    id: str
    service: str
    status: str  # created, running, restarting, exited, paused, dead
    health: str | None  # starting, healthy, unhealthy; None without a healthcheck
    restart_count: int
    exit_code: int
    started_at: datetime | None
    image: str
    image_id: str
    health_output: list[str]

    @classmethod
    def of(cls, container: Any) -> ContainerState:
        attrs = container.attrs
        state = attrs.get("State") or {}
        health = state.get("Health") or {}
        return cls(
            name=container.name,
            id=container.id,
            service=container.labels.get(SERVICE_LABEL, ""),
            status=state.get("Status", "unknown"),
            health=health.get("Status"),
            restart_count=int(attrs.get("RestartCount") or 0),
            exit_code=int(state.get("ExitCode") or 0),
            started_at=parse_docker_time(state.get("StartedAt")),
            image=str((attrs.get("Config") or {}).get("Image", "")),
            image_id=str(attrs.get("Image", "")),
            health_output=[
                str(entry.get("Output", "")).strip() for entry in (health.get("Log") or [])[-3:]
            ],
        )

    def summary(self) -> dict[str, Any]:
        return {
            "container": self.name,
            "container_id": self.id,
            "status": self.status,
            "health": self.health,
            "restart_count": self.restart_count,
            "exit_code": self.exit_code,
            "image": self.image,
            "image_id": self.image_id,
        }


_DOCKER_TIME_RE = re.compile(r"^(?P<base>[\d-]+T[\d:]+)(?:\.(?P<frac>\d+))?(?P<zone>Z|[+-][\d:]+)$")


def parse_docker_time(text: str | None) -> datetime | None:
    """Docker's RFC 3339 times (nanoseconds, `Z`); the zero time means never."""
    match = _DOCKER_TIME_RE.match(text or "")
    if not match or match["base"].startswith("0001-"):
        return None
    zone = "+00:00" if match["zone"] == "Z" else match["zone"]
    fraction = (match["frac"] or "0")[:6].ljust(6, "0")
    return datetime.fromisoformat(f"{match['base']}.{fraction}{zone}")


def last_log_lines(container: Any, lines: int) -> list[str]:
    """The container's last log lines (stdout and stderr interleaved as the engine keeps them)."""
    try:
        raw = container.logs(stdout=True, stderr=True, tail=lines)
    except DockerException as exc:
        return [f"<logs unavailable: {exc}>"]
    return raw.decode(errors="replace").splitlines()


def image_facts(client: Any, ref: str) -> dict[str, Any] | None:
    """ID, size, tags and labels of a local image, or None when the engine has no such image."""
    try:
        image = client.images.get(ref)
    except ImageNotFound:
        return None
    return {
        "id": image.id,
        "size": int(image.attrs.get("Size") or 0),
        "tags": list(image.tags),
        "labels": dict((image.attrs.get("Config") or {}).get("Labels") or {}),
        "created": image.attrs.get("Created"),
    }
