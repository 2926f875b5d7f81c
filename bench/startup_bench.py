"""Tiered startup (stagegate's TieredStartup, as compose_up_tiers runs it) against
`docker compose up --detach --wait` for the same services, in one run.

Both start tests/compose/app (busybox: `slow` becomes healthy after a few seconds, `web` has
an HTTP healthcheck, `worker` none) from nothing. For the same ordering, Compose gets the
tiers as `depends_on` conditions (service_healthy on a tier with a healthcheck), so both
wait for the first tier before starting the second. Rounds alternate which goes first; the
figure is median(tiered) / median(compose). Bar: <= 1.3.

    .venv/bin/python bench/startup_bench.py [--rounds 5] [--slow-seconds 2]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import stagegate  # noqa: F401 - its finder serves the collection's module_utils (no .pth)

# isort: split
from ansible_collections.stagegate.release.plugins.module_utils._compose import (
    ComposeProject,
    Tier,
    TieredStartup,
)
from ansible_collections.stagegate.release.plugins.module_utils._docker import docker_client

APP_DIR = Path(__file__).resolve().parent.parent / "tests" / "compose" / "app"
TIERS = [["slow"], ["web", "worker"]]
TIER_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def project(
    prefix: str, slow_seconds: float, extra_files: list[str] | None = None
) -> ComposeProject:
    return ComposeProject(
        project_dir=str(APP_DIR),
        name=f"sgbench{uuid.uuid4().hex[:8]}",
        files=["compose.yaml", *(extra_files or [])],
        env={
            "SGT_IMAGE_PREFIX": prefix,
            "SGT_WEB_PORT": str(free_port()),
            "SGT_SLOW_SECONDS": str(slow_seconds),
        },
    )


def tiers_as_depends_on(compose: ComposeProject, directory: str) -> str:
    """A compose override that makes each tier wait for the one before (what tiers mean)."""
    services: dict[str, Any] = {}
    for before, tier in itertools.pairwise(TIERS):
        conditions = {
            name: {
                "condition": "service_healthy"
                if compose.services[name].get("healthcheck")
                else "service_started"
            }
            for name in before
        }
        for name in tier:
            services[name] = {"depends_on": conditions}
    path = Path(directory) / "tiers-depends-on.json"
    path.write_text(json.dumps({"services": services}))
    return str(path)


def run_tiered(prefix: str, slow_seconds: float, client: Any) -> float:
    compose = project(prefix, slow_seconds)
    startup = TieredStartup(compose, client)
    try:
        started = time.monotonic()
        for services in TIERS:
            _, failure, _ = startup.start(Tier(services, TIER_TIMEOUT))
            if failure:
                raise RuntimeError(f"tiered startup failed: {failure.as_dict()}")
        return time.monotonic() - started
    finally:
        compose.run("down", "--volumes", "--timeout", "0", check=False)


def run_compose_wait(prefix: str, slow_seconds: float, override: str) -> float:
    compose = project(prefix, slow_seconds, [override])
    services = [s for tier in TIERS for s in tier]
    try:
        started = time.monotonic()
        compose.run("up", "--detach", "--wait", "--wait-timeout", str(int(TIER_TIMEOUT)), *services)
        return time.monotonic() - started
    finally:
        compose.run("down", "--volumes", "--timeout", "0", check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--slow-seconds", type=float, default=2.0)
    args = parser.parse_args()

    prefix = f"sgbench/{uuid.uuid4().hex[:8]}"
    builder = project(prefix, args.slow_seconds)
    builder.run("build")
    client = docker_client()
    tiered: list[float] = []
    waited: list[float] = []
    try:
        with tempfile.TemporaryDirectory(prefix="sgbench-") as tmp:
            override = tiers_as_depends_on(builder, tmp)
            for round_no in range(args.rounds):
                pair = [
                    lambda: tiered.append(run_tiered(prefix, args.slow_seconds, client)),
                    lambda: waited.append(run_compose_wait(prefix, args.slow_seconds, override)),
                ]
                for run in pair if round_no % 2 == 0 else reversed(pair):
                    run()
    finally:
        for repo in ("web", "worker"):
            for image in client.images.list(name=f"{prefix}/{repo}"):
                for tag in image.tags:
                    client.images.remove(tag)

    ratio = statistics.median(tiered) / statistics.median(waited)
    verdict = "PASS" if ratio <= 1.3 else "FAIL"
    print(f"tiers {TIERS}, slow healthy after {args.slow_seconds:g} s, {args.rounds} rounds")
    print(f"tiered startup (TieredStartup):    {_fmt(tiered)}")
    print(f"docker compose up --detach --wait: {_fmt(waited)}")
    print(f"ratio tiered / compose --wait: {ratio:.2f} (bar <= 1.30: {verdict})")
    print(f"load average: {os.getloadavg()[0]:.1f}")


def _fmt(values: list[float]) -> str:
    runs = ", ".join(f"{v:.2f}" for v in values)
    return f"median {statistics.median(values):.2f} s  [{runs}]"


if __name__ == "__main__":
    main()
