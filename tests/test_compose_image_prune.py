"""compose_image_prune through real ansible-playbook on the real engine: seed 002's
`docker system prune -af`, scoped to one compose project, never removing what a rollback needs."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from compose_fixtures import ComposeTestProject
from conftest import unique_name

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def build(project: ComposeTestProject, release: str, message: str) -> None:
    project.env["SGT_RELEASE"] = release
    project.compose("build", "--build-arg", f"MESSAGE={message}", "web", "worker")


def other_project_image(docker_client: Any, label: str) -> Any:
    """An image another compose project built (its own project label)."""
    dockerfile = f"FROM stagegate/busybox:latest\nLABEL com.docker.compose.project={label}\n"
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile.encode()))
    context.seek(0)
    image, _ = docker_client.images.build(
        fileobj=context, custom_context=True, tag=f"{label}:x", rm=True, forcerm=True
    )  # rm: no intermediate container is left behind (the SDK's default keeps them)
    return image


def test_prune_keeps_what_a_rollback_needs_and_nothing_of_other_projects(
    app_project: ComposeTestProject, tmp_path: Path, docker_client: Any
) -> None:
    web, _ = app_project.image_repos
    build(app_project, "v1", "first")
    build(app_project, "v2", "second, first try")
    dangling = docker_client.images.get(f"{web}:v2").id
    build(app_project, "v2", "second")  # the first v2 image is left untagged
    build(app_project, "v3", "third")
    build(app_project, "v4", "fourth")
    ids = {r: docker_client.images.get(f"{web}:{r}").id for r in ("v1", "v2", "v3", "v4")}
    state = tmp_path / "state"
    for release in ("v1", "v2", "v3"):
        manifest = state / "releases" / release / "manifest.json"
        manifest.parent.mkdir(parents=True)
        manifest.write_text(json.dumps({"release": release, "images": {"web": ids[release]}}))
    (state / "ledger.jsonl").write_text(
        "".join(
            json.dumps({"release": r, "verdict": v}) + "\n"
            for r, v in (("v1", "GO"), ("v2", "GO"), ("v3", "NO_GO"))
        )
    )
    other_label = unique_name("sgtother")
    other = other_project_image(docker_client, other_label)
    holder = docker_client.containers.create(ids["v1"], name=unique_name("sgtprune"))
    try:
        # Promoting v4 while v2 runs (v3 was NO_GO); a stopped container still uses v1's image.
        run = app_project.playbook(
            "compose_image_prune.yml", tmp_path, state_dir=str(state), keep_releases=["v4", "v2"]
        )
        assert run.rc == 0, run.describe()
        res = run.results
        ladder = [res[k]["changed"] for k in ("check1", "real1", "check2", "real2")]
        assert ladder == [True, True, False, False]
        assert {i["id"] for i in res["check1"]["removed"]} == {ids["v3"], dangling}
        assert res["real1"]["removed"] == res["check1"]["removed"]
        assert res["real1"]["reclaimed_bytes"] > 0
        why = {i["id"]: i["why"] for i in res["real1"]["kept"]}
        assert why[ids["v4"]] == "tagged v4"
        assert why[ids["v2"]] == "recorded in the manifest of v2"
        assert why[ids["v1"]] == "used by a container"
        assert res["real1"]["releases_kept"] == ["v4", "v2"]  # v2 is also the newest good one
        assert "keep_good: got 0, expected at least 1" in res["bad"]["msg"]
        present = {i.id for i in docker_client.images.list(all=True)}
        assert ids["v3"] not in present
        assert dangling not in present
        assert {ids["v1"], ids["v2"], ids["v4"], other.id} <= present
        assert docker_client.images.get("stagegate/busybox:latest")
        assert docker_client.images.get(f"{app_project.image_repos[1]}:v3")  # worker: same ID as v4

        holder.remove()
        again = app_project.playbook(
            "compose_image_prune.yml", tmp_path, state_dir=str(state), keep_releases=["v4", "v2"]
        )
        assert again.rc == 0, again.describe()
        assert [i["id"] for i in again.results["real1"]["removed"]] == [ids["v1"]]
    finally:
        for container in docker_client.containers.list(all=True, filters={"id": holder.id}):
            container.remove(force=True)
        docker_client.images.remove(other.id, force=True)
