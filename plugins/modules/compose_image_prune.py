#!/usr/bin/python
# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: compose_image_prune
short_description: Remove a Compose project's old images, never the ones a rollback needs
version_added: 0.1.0
description:
  - The clean-up of seed 002's C(docker system prune -af), scoped to one Compose project. Only
    images that carry the label C(com.docker.compose.project=<project_name>) (Compose puts it on
    every image it builds) are considered; other projects' images, base images, containers,
    networks, volumes and the build cache are never touched.
  - Kept, whatever their age, are the images a rollback needs, by ID and by tag; the images of
    the releases in O(keep_releases) (the release being promoted and the one running), of the
    O(keep_good) newest good or adopted releases of the ledger in O(state_dir) that were not
    rolled back from since (by the image IDs their release manifests record, and by their
    release tags), and every image a container uses, running or stopped.
  - Every other image of the project is removed, each of its tags and then the image
    (untagged, dangling leftovers of earlier builds included). An image the engine refuses to
    remove (a child image depends on it) is reported in RV(skipped), never forced.
options:
  project_name:
    description: The Compose project (C(stagegate_compose_project)).
    type: str
    required: true
  state_dir:
    description: The environment's state directory with the ledger and release manifests.
    type: path
    required: true
  keep_releases:
    description: Releases whose images are kept (the one being promoted, the one running).
    type: list
    elements: str
    default: []
  keep_good:
    description:
      - How many of the ledger's newest good releases keep their images (at least 1, the
        previous good release a rollback goes back to).
    type: int
    default: 2
attributes:
  check_mode:
    support: full
    description: Check mode lists what would be removed and removes nothing.
  diff_mode:
    support: none
    description: Returns no diff.
  idempotent:
    support: full
    description: A second run finds nothing more to remove.
requirements:
  - docker (Docker SDK for Python)
author:
  - stagegate contributors (@stagegate)
seealso:
  - module: stagegate.release.compose_build
  - module: stagegate.release.rollback_plan
"""

EXAMPLES = r"""
- name: Remove the project's images no rollback needs
  stagegate.release.compose_image_prune:
    project_name: "{{ stagegate_compose_project }}"
    state_dir: "{{ stagegate_state_dir }}"
    keep_releases: ["{{ stagegate_release }}", "{{ stagegate_previous_release }}"]
    keep_good: 2
"""

RETURN = r"""
removed:
  description: The images removed (in check mode, that would be), each C(id), C(tags), C(size).
  returned: always
  type: list
  elements: dict
kept:
  description: The project's images kept, each C(id), C(tags) and C(why).
  returned: always
  type: list
  elements: dict
skipped:
  description: Images the engine refused to remove, each C(id) and C(error).
  returned: always
  type: list
  elements: dict
releases_kept:
  description: The releases whose images are kept.
  returned: always
  type: list
  elements: str
reclaimed_bytes:
  description: The size of the images removed (in check mode, that would be).
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.stagegate.release.plugins.module_utils import _ledger
from ansible_collections.stagegate.release.plugins.module_utils._docker import (
    DOCKER_SDK_IMPORT_ERROR,
    HAS_DOCKER_SDK,
    PROJECT_LABEL,
    DockerException,
    docker_client,
)
from ansible_collections.stagegate.release.plugins.module_utils._image_prune import (
    ImageFacts,
    plan_prune,
)
from ansible_collections.stagegate.release.plugins.module_utils._rollback import RollbackError


class ImagePruneManager:
    def __init__(self, module):
        self.module = module
        self.project = module.params["project_name"]
        self.state_dir = module.params["state_dir"]
        self.client = docker_client()

    def project_images(self):
        listed = self.client.images.list(
            all=True, filters={"label": f"{PROJECT_LABEL}={self.project}"}
        )
        return [ImageFacts(i.id, list(i.tags), int(i.attrs.get("Size") or 0)) for i in listed]

    def used_ids(self):
        return {c.attrs.get("Image", "") for c in self.client.containers.list(all=True)}

    def run(self):
        records, warnings = _ledger.scan(_ledger.ledger_path(self.state_dir))
        for warning in warnings:
            self.module.warn(warning)
        images = self.project_images()
        plan = plan_prune(
            images,
            used_ids=self.used_ids(),
            state_dir=self.state_dir,
            records=records,
            keep_releases=[r for r in self.module.params["keep_releases"] if r],
            keep_good=self.module.params["keep_good"],
        )
        removed, skipped = [], []
        for image in plan.remove:
            error = None if self.module.check_mode else self.remove(image)
            if error:
                skipped.append({"id": image.id, "tags": image.tags, "error": error})
            else:
                removed.append({"id": image.id, "tags": image.tags, "size": image.size})
        kept = [
            {"id": i.id, "tags": i.tags, "why": plan.keep[i.id]}
            for i in images
            if i.id in plan.keep
        ]
        self.module.exit_json(
            changed=bool(removed),
            removed=removed,
            kept=kept,
            skipped=skipped,
            releases_kept=plan.releases_kept,
            reclaimed_bytes=sum(r["size"] for r in removed),
        )

    def remove(self, image):
        """Each tag, then the image itself; the engine's refusal is returned, never forced."""
        try:
            for tag in image.tags:
                self.client.images.remove(tag, noprune=False)
            if not image.tags or self.exists(image.id):
                self.client.images.remove(image.id, noprune=False)
        except DockerException as exc:
            return str(exc)
        return None

    def exists(self, image_id):
        try:
            self.client.images.get(image_id)
        except DockerException:
            return False
        return True


def main():
    module = AnsibleModule(
        argument_spec={
            "project_name": {"type": "str", "required": True},
            "state_dir": {"type": "path", "required": True},
            "keep_releases": {"type": "list", "elements": "str", "default": []},
            "keep_good": {"type": "int", "default": 2},
        },
        supports_check_mode=True,
    )
    if not HAS_DOCKER_SDK:
        module.fail_json(msg=missing_required_lib("docker"), exception=DOCKER_SDK_IMPORT_ERROR)
    if module.params["keep_good"] < 1:
        module.fail_json(
            msg=f"keep_good: got {module.params['keep_good']}, expected at least 1 (the previous "
            "good release a rollback goes back to)"
        )
    try:
        ImagePruneManager(module).run()
    except (DockerException, RollbackError, OSError) as exc:
        module.fail_json(msg=f"cannot prune the images of {module.params['project_name']}: {exc}")


if __name__ == "__main__":
    main()
