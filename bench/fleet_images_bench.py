"""Build once, run everywhere: seconds and bytes of copying a release's image to app hosts with
engines of their own, stagegate's copy against the raw tools in the same run.

    .venv/bin/python bench/fleet_images_bench.py [--image stagegate/deployhost:test] [--hosts 2]

Starts a fleet (tests/fleet_fixtures.py: containers with sshd reached over real SSH) whose first
app host uses this machine's engine (the build host) and whose other `--hosts` app hosts each
talk to a dockerd of their own (`own_engine`), holding nothing. The image (default: the fleet
hosts' own image, a Debian with Python, 200-odd MB) is tagged under a unique name, then:

1. stagegate: tests/fleet/images.yml (playbooks/tasks/fleet_images.yml) through
   `ansible-playbook`, the project's ansible.cfg: every own-engine host gets the image (forks:
   in parallel); per host the bytes and seconds the copy printed, and the playbook's wall time;
2. the same playbook again (nothing to copy: the cost of checking);
3. raw, controller between: `ssh build docker save | ssh host docker load` per host, one host
   at a time, and then all hosts at once (what the playbook does);
4. raw, host to host: `ssh -A build 'docker save | ssh host docker load'` per host (the build
   host reaches the app host itself, with the controller's key through agent forwarding).

Between the runs the image is removed from the own engines. Everything is removed at the end
(the tag, the containers, the engines with their data).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, cast

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))

from conftest import unique_name  # noqa: E402 - the tests' helpers
from ee_fixtures import build_deployhost  # noqa: E402
from fleet_fixtures import SSH_OPTIONS, Engine, Fleet, FleetHost, fleet  # noqa: E402
from sandbox_fixtures import remove_images, run_playbook  # noqa: E402

PLAYBOOK = str(REPO_ROOT / "tests" / "fleet" / "images.yml")
Env = dict[str, str] | None
COPIED = re.compile(
    r"(app\d+): copied \d+ image\(s\) from \S+ \(.*?\), .*? \((\d+) bytes\) in ([\d.]+) s"
)


def ssh(made: Fleet, host: FleetHost, *extra: str) -> list[str]:
    return ["ssh", "-o", "BatchMode=yes", "-i", str(made.key), "-p", str(host.ssh_port),
            *SSH_OPTIONS.split(), *extra, "root@127.0.0.1"]  # fmt: skip


def timed_pipe(save: list[str], load: list[str] | None = None, env: Env = None) -> float:
    """Seconds of `save | load` (the raw tools, an OS pipe between them), or of `save` alone."""
    start = time.perf_counter()
    saver = subprocess.Popen(save, stdout=subprocess.PIPE if load else subprocess.DEVNULL, env=env)
    if load:
        subprocess.run(load, stdin=saver.stdout, capture_output=True, check=True, env=env)
        cast("IO[bytes]", saver.stdout).close()
    if saver.wait():
        raise SystemExit(f"{' '.join(save)} failed ({saver.returncode})")
    return time.perf_counter() - start


def forget(targets: list[FleetHost], reference: str) -> None:
    for host in targets:
        cast("Engine", host.engine).docker("image", "rm", reference)


def stagegate_copy(
    inventory: Path, built: dict[str, Any], targets: list[FleetHost]
) -> tuple[dict[str, tuple[int, float]], float, float]:
    """images.yml twice: (per host bytes and seconds, wall of the copy, wall with nothing to do)."""
    reference, image_id = built["app"]["image"], built["app"]["id"]
    start = time.perf_counter()
    run = run_playbook(PLAYBOOK, {"fleet_images_built": built}, inventory)
    wall = time.perf_counter() - start
    if run.rc != 0:
        raise SystemExit(f"images.yml failed:\n{run.output[-4000:]}")
    if any(cast("Engine", h.engine).image_id(reference) != image_id for h in targets):
        raise SystemExit("an own-engine host does not hold the build's image ID")
    start = time.perf_counter()
    again = run_playbook(PLAYBOOK, {"fleet_images_built": built}, inventory)
    idle = time.perf_counter() - start
    if again.rc != 0 or COPIED.search(again.output):
        raise SystemExit(f"the second images.yml copied or failed:\n{again.output[-4000:]}")
    return {h: (int(b), float(s)) for h, b, s in COPIED.findall(run.output)}, wall, idle


def raw_copies(
    made: Fleet, reference: str, targets: list[FleetHost], work: Path
) -> tuple[dict[str, float], float, dict[str, float]]:
    """(raw pipe per host one at a time, raw pipes to all at once, host to host per host)."""
    build = made.apps[0]
    save = [*ssh(made, build), f"docker save {reference}"]
    one: dict[str, float] = {}
    for host in targets:
        forget(targets, reference)
        one[host.name] = timed_pipe(save, [*ssh(made, host), "docker load"])
    forget(targets, reference)
    with ThreadPoolExecutor(len(targets)) as pool:
        start = time.perf_counter()
        list(pool.map(lambda h: timed_pipe(save, [*ssh(made, h), "docker load"]), targets))
        all_at_once = time.perf_counter() - start
    # Host to host: the build host's ssh reaches the app host with the controller's key through
    # agent forwarding (no key is copied to any host).
    sock = work / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        subprocess.run(["ssh-add", "-q", str(made.key)], check=True, env=env)
        hop: dict[str, float] = {}
        for host in targets:
            forget(targets, reference)
            inner = shlex.join([*ssh(made, host)[:1], *ssh(made, host)[5:], "docker load"])
            hop[host.name] = timed_pipe(
                [*ssh(made, build, "-A"), f"docker save {reference} | {inner}"], env=env
            )
    finally:
        agent.terminate()
        agent.wait()
    return one, all_at_once, hop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="")
    parser.add_argument("--hosts", type=int, default=2, help="app hosts with engines of their own")
    args = parser.parse_args()
    source_image = args.image or build_deployhost()
    reference = f"{unique_name('sgtbench')}/app:v1"
    subprocess.run(["docker", "tag", source_image, reference], check=True)
    try:
        image_id, size = subprocess.run(
            ["docker", "image", "inspect", "--format", "{{.Id}} {{.Size}}", reference],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        built = {"app": {"image": reference, "release_image": reference, "id": image_id}}
        with tempfile.TemporaryDirectory(prefix="sgt-fleet-images-bench-") as tmp:
            work = Path(tmp)
            names = [f"app{i}" for i in range(2, args.hosts + 2)]
            started = time.perf_counter()
            with fleet(work, apps=args.hosts + 1, runtime=True, own_engine=names) as made:
                print(f"{args.hosts + 1} app hosts ({args.hosts} with engines of their own) up "
                      f"in {time.perf_counter() - started:.1f} s")  # fmt: skip
                print(f"image {source_image} as {reference}: {int(size) / 1e6:.0f} MB "
                      "(docker image inspect .Size)")  # fmt: skip
                targets = made.apps[1:]
                inventory = made.write_inventory(work / "hosts.yml")
                copies, wall, idle = stagegate_copy(inventory, built, targets)
                one, all_at_once, hop = raw_copies(made, reference, targets, work)
    finally:
        remove_images(reference)
    print("\ncopy of the image to each own-engine host, seconds (bytes: stagegate's copy line)")
    print(f"{'host':>6} {'bytes':>11} {'stagegate':>10} {'raw pipe':>9} {'ratio':>6} "
          f"{'host-to-host':>13}")  # fmt: skip
    for host in targets:
        size_, seconds = copies[host.name]
        print(f"{host.name:>6} {size_:>11} {seconds:>10.1f} {one[host.name]:>9.1f} "
              f"{seconds / one[host.name]:>6.2f} {hop[host.name]:>13.1f}")  # fmt: skip
    print(
        f"\nimages.yml wall, {len(targets)} hosts copied in parallel: {wall:.1f} s; raw pipes "
        f"to all {len(targets)} at once: {all_at_once:.1f} s (ratio {wall / all_at_once:.2f})"
    )
    print(f"images.yml wall, nothing to copy (second run): {idle:.1f} s")


if __name__ == "__main__":
    main()
