# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which of a Compose project's images a clean-up may remove, and which a rollback needs.

Standard library only (the module passes Docker SDK objects in as plain facts). Seed 002 runs
`docker system prune -af --volumes` before its build; stagegate's clean-up is scoped to one
Compose project's images (the `com.docker.compose.project` label Compose puts on what it
builds), never touches volumes, containers or other projects' images, and keeps:

- the images of the releases a rollback may need: the one being promoted, the one running
  (`keep_releases`), and the newest good (or adopted) releases of the ledger that were not
  rolled back from since, by the image IDs their release manifests record and by their tags;
- every image a container uses (running or stopped).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ansible_collections.stagegate.release.plugins.module_utils._rollback import (
    is_good,
    manifest_images,
    read_manifest,
    rolled_back_releases,
)


@dataclass
class ImageFacts:
    """One image of the project, as the engine lists it."""

    id: str
    tags: list[str]
    size: int = 0


@dataclass
class PrunePlan:
    keep: dict[str, str] = field(default_factory=dict)  # image id -> why
    remove: list[ImageFacts] = field(default_factory=list)
    releases_kept: list[str] = field(default_factory=list)


def good_releases(records: list[dict[str, Any]], count: int) -> list[str]:
    """The `count` newest good or adopted releases of the ledger not rolled back from since."""
    rolled_back = rolled_back_releases(records)
    found: list[str] = []
    for record in reversed(records):
        release = record.get("release")
        if (
            release
            and release not in found
            and release not in rolled_back
            and is_good(record)
            and len(found) < count
        ):
            found.append(release)
    return found


def release_image_ids(state_dir: str, release: str) -> set[str]:
    """The image IDs the release's manifest records (empty without a manifest)."""
    images = manifest_images(read_manifest(state_dir, release))
    return {image["id"] for image in images.values() if image.get("id")}


def plan_prune(
    images: list[ImageFacts],
    *,
    used_ids: set[str],
    state_dir: str,
    records: list[dict[str, Any]],
    keep_releases: list[str],
    keep_good: int,
) -> PrunePlan:
    """Sort the project's images into kept (with why) and removed."""
    releases = list(dict.fromkeys([*keep_releases, *good_releases(records, keep_good)]))
    plan = PrunePlan(releases_kept=releases)
    by_manifest = {image_id: r for r in releases for image_id in release_image_ids(state_dir, r)}
    for image in images:
        tagged = [r for r in releases if any(t.rsplit(":", 1)[-1] == r for t in image.tags)]
        if image.id in used_ids:
            plan.keep[image.id] = "used by a container"
        elif image.id in by_manifest:
            plan.keep[image.id] = f"recorded in the manifest of {by_manifest[image.id]}"
        elif tagged:
            plan.keep[image.id] = f"tagged {tagged[0]}"
        else:
            plan.remove.append(image)
    return plan
