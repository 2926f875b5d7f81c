"""Build once, run everywhere, over real SSH with a real second engine (docs/fleet.md): two
images built on the first app host reach app3, whose Docker is an engine of its own holding
none of them (and another image under one of their names), by `docker save | docker load`
through the controller (playbooks/tasks/fleet_images.yml, stagegate.release.fleet_image_copy).
app3 then holds the very image IDs of the build, the one manifest records them, check mode
copies nothing, a second run copies nothing, and `stagegate_fleet_image_copy: none` stops a run
whose host lacks the build, naming it.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO_ROOT, unique_name
from fleet_fixtures import Engine, Fleet, fleet
from sandbox_fixtures import PlaybookRun, remove_images, run_playbook

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)]

PLAYBOOK = str(REPO_ROOT / "tests" / "fleet" / "images.yml")
BUSYBOX = "stagegate/busybox:latest"


@pytest.fixture(scope="module")
def own_engine_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """app1 (the build host) and app2 on this machine's engine, app3 on an engine of its own."""
    with fleet(
        tmp_path_factory.mktemp("fleet-images"), apps=3, runtime=True, own_engine=["app3"]
    ) as made:
        yield made


def image_id(reference: str) -> str:
    return subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", reference],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


@pytest.fixture
def build(tmp_path: Path) -> Iterator[dict[str, dict[str, str]]]:
    """Two images of a release built on this machine's engine (the build host's), uniquely
    named, in compose_build's `images` form; every tag removed at the end."""
    prefix = unique_name("sgtimg")
    built: dict[str, dict[str, str]] = {}
    try:
        for service in ("api", "worker"):
            context = tmp_path / service
            context.mkdir()
            (context / "release").write_text(f"{prefix} {service}\n")
            (context / "Dockerfile").write_text(f"FROM {BUSYBOX}\nCOPY release /release\n")
            reference = f"{prefix}/{service}:v1"
            subprocess.run(
                ["docker", "build", "--quiet", "--tag", reference, str(context)],
                check=True, capture_output=True,
            )  # fmt: skip
            built[service] = {
                "image": reference, "release_image": reference, "id": image_id(reference),
            }  # fmt: skip
        yield built
    finally:
        remove_images(f"{prefix}/*")


def distribute(inventory: Path, built: dict[str, Any], *options: str, **extra: Any) -> PlaybookRun:
    return run_playbook(
        PLAYBOOK, {"fleet_images_built": built, **extra}, inventory, options=options
    )


def changed_per_host(output: str) -> dict[str, int]:
    """`changed=N` of each host in the play recap."""
    return {h: int(n) for h, n in re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", output, re.M)}


def test_an_app_host_with_its_own_engine_gets_the_build_by_save_and_load(
    own_engine_fleet: Fleet, build: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    made = own_engine_fleet
    engine = made.apps[2].engine
    assert isinstance(engine, Engine)
    api, worker = build["api"]["image"], build["worker"]["image"]
    # app3's engine holds none of the build, and another image under the worker's name.
    engine.load_from_this_machine(BUSYBOX)
    assert engine.docker("tag", BUSYBOX, worker).returncode == 0
    decoy_id = engine.image_id(worker)
    assert decoy_id
    assert decoy_id != build["worker"]["id"]
    assert engine.image_id(api) == ""
    inventory = made.write_inventory(tmp_path / "hosts.yml")

    # Check mode says what would go where, and copies nothing.
    run = distribute(inventory, build, "--check")
    assert run.rc == 0, run.output[-4000:]
    assert f"Images to copy: {api}, {worker} from app1 to app3" in run.output
    assert f"app3: would copy 2 image(s) from app1 ({api}, {worker})" in run.output
    assert (engine.image_id(api), engine.image_id(worker)) == ("", decoy_id)

    # The copy: only app3, only what it lacks or holds another build of; the same IDs after.
    run = distribute(inventory, build)
    assert run.rc == 0, run.output[-4000:]
    copied = re.findall(
        r"(app\d): copied 2 image\(s\) from app1 \(.*?\), [\d.]+ [KMG]B \((\d+) bytes\) in "
        r"([\d.]+) s",
        run.output,
    )
    assert [host for host, _, _ in copied] == ["app3"], run.output[-4000:]
    assert int(copied[0][1]) > 0
    for entry in build.values():
        assert engine.image_id(entry["image"]) == entry["id"], entry
    printed = re.search(r"FLEET_IMAGES (\{.*\})", run.output.replace('\\"', '"'))
    assert printed, run.output[-4000:]
    assert json.loads(printed.group(1)) == {
        service: {"image": entry["image"], "id": entry["id"]} for service, entry in build.items()
    }
    assert changed_per_host(run.output)["app3"] == 1

    # Idempotent: every host holds the build now, so a second run copies nothing.
    run = distribute(inventory, build)
    assert run.rc == 0, run.output[-4000:]
    assert not re.search(r"Images to copy: |app\d: copied", run.output), run.output[-4000:]
    assert changed_per_host(run.output) == {"app1": 0, "app2": 0, "app3": 0}

    # `none` copies nothing: a host without the build stops the run, named.
    assert engine.docker("image", "rm", api).returncode == 0
    run = distribute(inventory, build, stagegate_fleet_image_copy="none")
    assert run.rc != 0
    assert f"app3 lacks {api} (stagegate_fleet_image_copy is none: nothing is copied)" in run.output
    assert engine.image_id(api) == ""

    # A value that is neither: refused naming the key, the value and the choices.
    run = distribute(inventory, build, stagegate_fleet_image_copy="scp")
    assert run.rc != 0
    assert "stagegate_fleet_image_copy: 'scp' is not one of save_load (" in run.output
