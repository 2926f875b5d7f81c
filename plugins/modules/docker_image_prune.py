#!/usr/bin/python
# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: docker_image_prune
short_description: Remove dangling images older than a limit, of one compose project
description:
  - Removes dangling images (no tag left, typically the previous build of a service after a
    rebuild) created more than O(older_than) ago.
  - O(project_name) limits the clean-up to images Compose built for that project (label
    C(com.docker.compose.project)); O(labels) adds further label filters. Both are wise on a
    shared engine.
  - Volumes are never touched unless O(prune_volumes=true), and then only unused volumes of
    O(project_name) (required for it), because a volume holds a database.
version_added: "0.1.0"
author: stagegate developers (@stagegate)
options:
  older_than:
    description:
      - Minimum age of an image to remove, a number and a unit (C(s), C(m), C(h), C(d)), for
        example C(24h). C(0s) removes every dangling image that matches.
    type: str
    default: 24h
  project_name:
    description: Only images (and volumes) of this compose project.
    type: str
  labels:
    description: Further C(label=value) filters an image must match.
    type: dict
    default: {}
  prune_volumes:
    description: Also remove the unused volumes of O(project_name).
    type: bool
    default: false
attributes:
  check_mode:
    description: Lists what would be removed; removes nothing.
    support: full
  diff_mode:
    description: Not supported; RV(images) and RV(volumes) list what was removed.
    support: none
  idempotent:
    description: A second run finds nothing left to remove.
    support: full
requirements:
  - docker (Python SDK) >= 7.0 on the deploy host
seealso:
  - name: docker image prune
    description: The Docker CLI equivalent (this module filters by project and age).
    link: https://docs.docker.com/reference/cli/docker/image/prune/
"""

EXAMPLES = r"""
- name: Remove dangling images of the project older than a week
  stagegate.release.docker_image_prune:
    project_name: "{{ stagegate_compose_project }}"
    older_than: 7d
"""

RETURN = r"""
images:
  description:
    - Dangling images removed (check mode, that would be removed), with size and creation time.
    - Images a container (even a stopped one) still uses are left alone.
  returned: always
  type: list
  elements: dict
  sample: [{id: "sha256:1d2f...", size: 231000000, created: "2026-11-20T10:00:00Z"}]
volumes:
  description: Volumes removed (check mode, that would be removed).
  returned: always
  type: list
  elements: str
reclaimed_bytes:
  description: Sum of the removed images' sizes.
  returned: always
  type: int
"""

import re
from datetime import datetime, timedelta, timezone
from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.stagegate.release.plugins.module_utils._docker import (
    DOCKER_SDK_IMPORT_ERROR,
    HAS_DOCKER_SDK,
    PROJECT_LABEL,
    DockerException,
    docker_client,
    parse_docker_time,
)

_AGE_RE = re.compile(r"^\s*(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>[smhd])\s*$")
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class PruneManager:
    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        params = module.params
        match = _AGE_RE.match(params["older_than"])
        if not match:
            module.fail_json(
                msg=f"older_than={params['older_than']!r}: expected a number and a unit "
                "(s, m, h, d), such as '24h'"
            )
        self.min_age = timedelta(seconds=float(match["num"]) * _AGE_UNITS[match["unit"]])
        self.project: str | None = params["project_name"]
        self.labels = {str(k): str(v) for k, v in params["labels"].items()}
        if self.project:
            self.labels[PROJECT_LABEL] = self.project
        self.prune_volumes: bool = params["prune_volumes"]
        if self.prune_volumes and not self.project:
            module.fail_json(msg="prune_volumes=true needs project_name (volumes hold data)")
        self.client = docker_client()

    def dangling_images(self) -> list[dict[str, Any]]:
        label_filter = [f"{k}={v}" for k, v in sorted(self.labels.items())]
        filters: dict[str, Any] = {"dangling": True}
        if label_filter:
            filters["label"] = label_filter
        # A stopped container still holds its image: leave those (removal would fail anyway).
        in_use = {c.attrs.get("Image") for c in self.client.containers.list(all=True)}
        now = datetime.now(timezone.utc)
        found = []
        for image in self.client.images.list(filters=filters):
            created = parse_docker_time(image.attrs.get("Created"))
            if image.id not in in_use and created is not None and now - created >= self.min_age:
                found.append(
                    {
                        "id": image.id,
                        "size": int(image.attrs.get("Size") or 0),
                        "created": image.attrs.get("Created"),
                    }
                )
        return found

    def unused_volumes(self) -> list[str]:
        if not self.prune_volumes:
            return []
        in_use = {
            mount.get("Name")
            for container in self.client.containers.list(all=True)
            for mount in container.attrs.get("Mounts", [])
        }
        volumes = self.client.volumes.list(filters={"label": f"{PROJECT_LABEL}={self.project}"})
        return sorted(v.name for v in volumes if v.name not in in_use)

    def run(self) -> dict[str, Any]:
        images = self.dangling_images()
        volumes = self.unused_volumes()
        if not self.module.check_mode:
            for image in images:
                self.client.images.remove(image["id"], noprune=False)
            for name in volumes:
                self.client.volumes.get(name).remove()
        return {
            "changed": bool(images or volumes),
            "images": images,
            "volumes": volumes,
            "reclaimed_bytes": sum(i["size"] for i in images),
        }


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "older_than": {"type": "str", "default": "24h"},
            "project_name": {"type": "str"},
            "labels": {"type": "dict", "default": {}},
            "prune_volumes": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    if not HAS_DOCKER_SDK:
        module.fail_json(msg=missing_required_lib("docker"), exception=DOCKER_SDK_IMPORT_ERROR)
    try:
        module.exit_json(**PruneManager(module).run())
    except DockerException as exc:
        module.fail_json(msg=f"Docker engine error: {exc}")


if __name__ == "__main__":
    main()
