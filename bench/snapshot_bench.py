"""Rollback by TEMPLATE snapshot against rollback by dump, on a sandbox database grown large.

    .venv/bin/python bench/snapshot_bench.py [--scales 100 300]

For each pgbench scale, on a fresh isolated sandbox stack (v1 deployed with
tests/playbooks/rollback_deploy.yml, the app database then grown with `pgbench -i -s N`,
server-side generation, into its own tables):

1. v2 is promoted with `stagegate_backup_snapshot: true` (tests/playbooks/snapshot_deploy.yml:
   source, backup uncompressed (`stagegate_backup_compress: 0`), the deploy role with its
   snapshot, ledger record); the snapshot's creation
   cost is printed (seconds, of which the copy, and bytes) from the release manifest;
2. `ansible-playbook playbooks/rollback.yml` (by snapshot) is timed, `--repeat N` times (each
   after a promotion of its own), and the fastest and the median are kept: on a shared machine
   other work only adds time, so the fastest is the figure compared across scales; the swap's
   own seconds (stop to verified rename, as the ledger's rollback record has them) are printed
   beside it: the part of the rollback that could depend on the data;
3. v2 is promoted again and `rollback.yml -e stagegate_rollback_snapshot=false` (by dump) is
   timed;
4. the raw commands of each, typed by hand: `docker compose stop api worker`, then for the
   snapshot `CREATE DATABASE .. TEMPLATE .. STRATEGY FILE_COPY` (not timed in the rollback: the
   promotion pays it) and the two renames in one transaction, for the dump `docker cp` of the
   archive into the database container (rollback.yml puts it there too), drop/create and
   `pg_restore -j2` of it; then `docker compose up -d --wait`. Each command is timed.

Bars (issue #17): the snapshot rollback takes the same time (within 10%) at every scale, and at
scale 100 under 0.5x the dump rollback. The deploys in between are not timed. Everything the
bench creates (stack, volumes, images, grown database, state) is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))
sys.path.insert(0, str(REPO_ROOT / "bench"))

from rollback_bench import Bench as RollbackBench  # noqa: E402 - same stack and variables
from rollback_bench import playbook_env  # noqa: E402
from sandbox_fixtures import (  # noqa: E402 - the test helpers are the sandbox's API
    INVENTORY,
    VENV_BIN,
    SandboxStack,
    make_sandbox_repo,
    run_playbook,
)

from stagegate import ledger  # noqa: E402

PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"


class Bench(RollbackBench):
    def __init__(self, stack: SandboxStack) -> None:
        super().__init__(stack)
        self.runs = 0
        self.vars["sandbox_latency_bands"] = {"p95": {"pass": "<= 60s"}}
        self.vars["stagegate_deploy_unhealthy_grace"] = 90
        # Uncompressed dumps: on 2 busy cores zlib makes the dump of scale 100 take an hour.
        self.vars["stagegate_backup_compress"] = 0

    def playbook(self, playbook: str, **extra: Any) -> None:
        run = run_playbook(playbook, {**self.vars, **extra})
        if run.rc:
            sys.exit(f"{playbook} failed:\n{run.output[-4000:]}")

    def promote(self) -> dict[str, Any]:
        self.runs += 1
        self.playbook(
            "../tests/playbooks/snapshot_deploy.yml",
            stagegate_release="v2",
            stagegate_backup_snapshot=True,
            stagegate_run_id=f"bench-{self.runs}",
        )
        path = self.stack.state_dir / "releases" / "v2" / "manifest.json"
        return json.loads(path.read_text())["backup"]  # type: ignore[no-any-return]

    def grow(self, scale: int) -> float:
        started = time.perf_counter()
        subprocess.run(
            [PGBENCH, "-i", "-s", str(scale), "-I", "dtGvp", "-q",
             "-h", "127.0.0.1", "-p", str(self.stack.pg_port), "-U", "app", "app"],
            env={**os.environ, "PGPASSWORD": self.password},
            check=True, capture_output=True,
        )  # fmt: skip
        return time.perf_counter() - started

    def psql(self, query: str) -> str:
        done = subprocess.run(
            ["docker", "exec", self.postgres, "psql", "-X", "-At", "-U", "app", "-d", "postgres",
             "-v", "ON_ERROR_STOP=1", "-c", query],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return done.stdout.strip()

    def rollback(self, **extra: Any) -> float:
        started = time.perf_counter()
        done = subprocess.run(
            [str(VENV_BIN / "ansible-playbook"), "playbooks/rollback.yml", "-i", str(INVENTORY),
             "-e", json.dumps({**self.vars, **extra})],
            cwd=REPO_ROOT, env=playbook_env(), capture_output=True, text=True, check=False,
        )  # fmt: skip
        elapsed = time.perf_counter() - started
        if done.returncode:
            sys.exit(f"rollback.yml failed:\n{done.stdout[-4000:]}")
        way = "dump" if "stagegate_rollback_snapshot" in extra else "snapshot"
        if f"Database restore by: {way}" not in done.stdout or "Not by snapshot" in done.stdout:
            sys.exit(f"rollback.yml went the unexpected way:\n{done.stdout[-4000:]}")
        return elapsed

    def last_database_seconds(self) -> float:
        """The database step's seconds of the newest rollback, from the ledger."""
        records = ledger.read(ledger.ledger_path(self.stack.state_dir))
        rollbacks = [r for r in records if r.get("kind") == "rollback" and "database" in r]
        return float(rollbacks[-1]["database"]["seconds"])

    def raw(self, database_steps: list[list[str]]) -> tuple[float, list[tuple[float, str]]]:
        compose = ["docker", "compose", "--project-name", self.stack.project]
        argvs = [[*compose, "stop", "api", "worker"], *database_steps,
                 [*compose, "up", "--detach", "--wait"]]  # fmt: skip
        steps = []
        started = time.perf_counter()
        for argv in argvs:
            step_started = time.perf_counter()
            done = subprocess.run(
                argv, capture_output=True, text=True, env={**os.environ, **self.stack.env()},
                cwd=self.stack.project_dir, check=False,
            )  # fmt: skip
            if done.returncode:
                sys.exit(f"{shlex.join(argv)} exited {done.returncode}:\n{done.stderr[-2000:]}")
            steps.append((time.perf_counter() - step_started, shlex.join(argv)[:90]))
        return time.perf_counter() - started, steps

    def psql_argv(self, query: str, user: str = "app") -> list[str]:
        return ["docker", "exec", self.postgres, "psql", "-X", "-q", "-U", user, "-d",
                "postgres", "-v", "ON_ERROR_STOP=1", "-c", query]  # fmt: skip


class Figures(dict[str, Any]):
    """The figures of one scale, each printed the moment it is measured (a long run that is
    stopped still leaves what it measured)."""

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        print(f"  scale {self.get('scale')}: {key} = {json.dumps(value)}", flush=True)


def one_scale(repo: Path, workdir: Path, scale: int, repeat: int) -> dict[str, Any]:
    stack = SandboxStack(repo=repo, state_dir=workdir / f"state-{scale}")
    bench = Bench(stack)
    out = Figures(scale=scale)
    try:
        bench.playbook("../tests/playbooks/rollback_deploy.yml", stagegate_release="v1")
        out["grow_seconds"] = round(bench.grow(scale), 1)
        out["db_bytes"] = int(bench.psql("SELECT pg_database_size('app')"))
        backup = bench.promote()
        snap = backup["snapshot"]
        out["snapshot_create"] = {
            "seconds": snap["seconds"],
            "copy_seconds": snap["copy_seconds"],
            "bytes": snap["size_bytes"],
        }
        out["dump_bytes"] = backup["size_bytes"]
        times = [bench.rollback()]
        swaps = [bench.last_database_seconds()]
        for _ in range(repeat - 1):
            bench.promote()
            times.append(bench.rollback())
            swaps.append(bench.last_database_seconds())
        out["rollback_snapshot_runs"] = [round(t, 2) for t in times]
        out["swap_seconds_runs"] = swaps
        out["rollback_snapshot"] = round(min(times), 2)
        out["rollback_snapshot_median"] = round(statistics.median(times), 2)
        bench.promote()
        out["rollback_dump"] = round(bench.rollback(stagegate_rollback_snapshot=False), 2)
        # Raw, by hand: the same database step of each way, between stop and up --wait.
        # The copy needs the database idle, as in a promotion: the app tier stopped first.
        compose = ["docker", "compose", "--project-name", stack.project]
        subprocess.run(
            [*compose, "stop", "api", "worker"], cwd=stack.project_dir, check=True,
            env={**os.environ, **stack.env()}, capture_output=True,
        )  # fmt: skip
        copy_started = time.perf_counter()
        bench.psql("CREATE DATABASE app_raw TEMPLATE app STRATEGY FILE_COPY")
        out["raw_snapshot_create"] = round(time.perf_counter() - copy_started, 2)
        out["raw_snapshot"], out["raw_snapshot_steps"] = bench.raw(
            [
                bench.psql_argv(
                    "BEGIN; ALTER DATABASE app RENAME TO app_rawold; "
                    "ALTER DATABASE app_raw RENAME TO app; COMMIT"
                )
            ]
        )
        bench.psql("DROP DATABASE app_rawold WITH (FORCE)")
        archive = backup["path"]
        out["raw_dump"], out["raw_dump_steps"] = bench.raw(
            [
                # the archive where the container's pg_restore reads it, as rollback.yml puts
                # it there (and bench/rollback_bench.py times it)
                ["docker", "cp", archive, f"{bench.postgres}:/tmp/bench.dump"],
                # as the container's superuser, as bench/rollback_bench.py does: the archive's
                # comment on an untrusted extension (pg_stat_statements) needs it
                bench.psql_argv("DROP DATABASE app WITH (FORCE)", "postgres"),
                bench.psql_argv("CREATE DATABASE app OWNER app", "postgres"),
                [
                    "docker",
                    "exec",
                    bench.postgres,
                    "pg_restore",
                    "-U",
                    "postgres",
                    "-d",
                    "app",
                    "--exit-on-error",
                    "--jobs=2",
                    "/tmp/bench.dump",
                ],
            ]
        )
    finally:
        stack.teardown()
    return out


def stop_on_sigterm(signum: int, frame: object) -> None:
    """A bench stopped with kill still removes its stack, volumes and images (the finally)."""
    sys.exit(f"stopped by signal {signum}")


def main() -> None:
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[100, 300])
    parser.add_argument(
        "--repeat", type=int, default=3, help="snapshot rollbacks per scale (fastest compared)"
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="sgt-snapshot-bench-", dir="/var/tmp"))
    results = []
    try:
        make_sandbox_repo(workdir / "sandbox.git")
        for scale in args.scales:
            free = shutil.disk_usage("/var/lib/docker").free
            need = scale * 15_000_000 * 6  # database, snapshot, set-aside, raw copy, dumps
            if free < need:
                print(f"scale {scale}: skipped, {free} bytes free < {need} needed")
                continue
            result = one_scale(workdir / "sandbox.git", workdir, scale, args.repeat)
            results.append(result)
            print(json.dumps(result, indent=1), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("\nscale  db MB  snapshot create (s, copy s, MB)  rollback snapshot (fastest, median)"
          "  dump  raw snapshot  raw dump  snap/dump")  # fmt: skip
    for r in results:
        c = r["snapshot_create"]
        print(
            f"{r['scale']:5}  {r['db_bytes'] / 1e6:6.0f}  "
            f"{c['seconds']:6.2f} {c['copy_seconds']:6.2f} "
            f"{c['bytes'] / 1e6:7.0f}  "
            f"{r['rollback_snapshot']:8.2f} {r['rollback_snapshot_median']:8.2f}  "
            f"{r['rollback_dump']:6.2f}  "
            f"{r['raw_snapshot']:12.2f}  {r['raw_dump']:8.2f}  "
            f"{r['rollback_snapshot'] / r['rollback_dump']:.2f}"
        )
    if len(results) >= 2:
        times = [r["rollback_snapshot"] for r in results]
        spread = max(times) / min(times) - 1
        print(f"snapshot rollback (fastest) spread across scales: {spread:.1%} (bar <= 10%)")
        for r in results:
            print(f"scale {r['scale']}: swap seconds in rollback.yml {r['swap_seconds_runs']}")
    for r in results:
        if r["scale"] == 100:
            ratio = r["rollback_snapshot"] / r["rollback_dump"]
            print(f"scale 100 snapshot/dump rollback: {ratio:.2f} (bar < 0.5)")
            by_dump = r["rollback_dump"] / r["raw_dump"]
            print(f"scale 100 rollback.yml by dump / raw dump: {by_dump:.2f} (issue 14: <= 1.15)")


if __name__ == "__main__":
    main()
