"""Backup, restore and clone: the pg_* modules against the raw PostgreSQL tools, in one run.

    .venv/bin/python bench/pg_bench.py [--scale 30] [--repeat 3]

Makes a throwaway cluster with a pgbench database of the given scale, then times (best of
--repeat, wall clock, each module run as Ansible runs it: its own Python process with a JSON
args file):
  raw `pg_dump -Fc -Z1`           vs pg_backup (verify=none, verify=list, verify=restore),
  raw `pg_restore -j2` (new db)   vs pg_restore (verify off / on),
  CREATE DATABASE .. TEMPLATE     vs `pg_dump | pg_restore` (the dry-run's fallback).
Prints each figure, the ratio to its raw tool, and the verification time on its own.
Bar: backup and restore within 1.2x of the raw tools (verification shown separately).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from conftest import PgCluster, start_pg_cluster, stop_pg_cluster  # noqa: E402
from pg_fixtures import MODULES, module_env  # noqa: E402


def best_of(
    repeat: int, run: Callable[[], Any], reset: Callable[[], None] | None = None
) -> tuple[float, Any]:
    """Fastest wall time of `repeat` runs (noise on a shared machine only ever adds time)."""
    best, result = float("inf"), None
    for _ in range(repeat):
        if reset:
            reset()
        started = time.perf_counter()
        outcome = run()
        elapsed = time.perf_counter() - started
        if elapsed < best:
            best, result = elapsed, outcome
    return best, result


def module(name: str, args: dict[str, Any], workdir: Path) -> dict[str, Any]:
    args_file = workdir / f"{name}.args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    proc = subprocess.run(
        [sys.executable, str(MODULES / f"{name}.py"), str(args_file)],
        capture_output=True,
        text=True,
        check=False,
        env=module_env(),
    )
    result: dict[str, Any] = json.loads(proc.stdout)
    if result.get("failed"):
        raise SystemExit(f"{name} failed: {result['msg']}")
    return result


def tool(cluster: PgCluster, name: str, *args: str) -> None:
    subprocess.run([str(cluster.bindir / name), *args], check=True, capture_output=True)


def line(label: str, seconds: float, raw: float | None = None) -> None:
    ratio = f"  {seconds / raw:5.2f}x raw" if raw else ""
    print(f"  {label:<44} {seconds:7.2f} s{ratio}")


def paired(
    repeat: int,
    raw: Callable[[], Any],
    ours: Callable[[], Any],
    reset: Callable[[], None] | None = None,
) -> tuple[float, float, Any]:
    """Best raw and best module time, runs interleaved so both see the same machine load."""
    best_raw = best_ours = float("inf")
    result = None
    for _ in range(repeat):
        best_raw = min(best_raw, best_of(1, raw, reset)[0])
        seconds, outcome = best_of(1, ours, reset)
        if seconds < best_ours:
            best_ours, result = seconds, outcome
    return best_raw, best_ours, result


def bench_backup(cluster: PgCluster, db: str, work: Path, repeat: int) -> Path:
    print("backup (custom format, -Z1)")
    raw_file = work / "raw.dump"

    def raw() -> None:
        tool(cluster, "pg_dump", "-Fc", "-Z1", "-f", str(raw_file), "-d", cluster.dsn(db))

    server = {"host": cluster.host, "port": cluster.port, "name": db, "user": cluster.user}
    base = {"db": server, "backup_dir": str(work / "backups"), "compress": 1, "force": True}
    for verify, counts in (("none", "estimate"), ("list", "estimate"), ("restore", "exact")):
        args = {**base, "name": f"b-{verify}", "verify": verify, "row_counts": counts}
        raw_s, ours, result = paired(repeat, raw, lambda a=args: module("pg_backup", a, work))
        verification = result["manifest"]["verification"].get("seconds", 0.0)
        line("raw pg_dump", raw_s)
        line(f"pg_backup verify={verify} row_counts={counts}", ours, raw_s)
        line("  of which pg_dump inside the module", result["manifest"]["duration_seconds"], raw_s)
        if verify != "none":
            line(f"  of which verification ({verify})", verification)
            line(f"  pg_backup verify={verify} less verification", ours - verification, raw_s)
    return work / "backups" / "b-restore.dump"


def bench_restore(cluster: PgCluster, archive: Path, repeat: int) -> None:
    print("restore (-j2, into a new database)")
    target = "bench_restored"

    def reset() -> None:
        cluster.drop_database(target)

    def raw() -> None:
        cluster.create_database(target)
        tool(cluster, "pg_restore", "-j2", "-d", cluster.dsn(target), str(archive))

    server = {"host": cluster.host, "port": cluster.port, "name": "postgres", "user": cluster.user}
    base = {"db": server, "backup": str(archive), "name": target, "jobs": 2, "force": True}
    for verify in (False, True):
        raw_s, ours, result = paired(
            repeat,
            raw,
            lambda v=verify: module("pg_restore", {**base, "verify": v}, archive.parent),
            reset,
        )
        line("raw pg_restore -j2", raw_s)
        line(f"pg_restore verify={str(verify).lower()}", ours, raw_s)
        line("  of which pg_restore inside the module", result["seconds"], raw_s)
    reset()


def bench_clone(cluster: PgCluster, db: str, repeat: int) -> None:
    print("scratch copy for the migration dry-run")
    target = "bench_copy"

    def reset() -> None:
        cluster.drop_database(target)

    def dump_restore() -> None:
        cluster.create_database(target)
        dump = subprocess.Popen(
            [str(cluster.bindir / "pg_dump"), "-Fc", "-Z0", "-d", cluster.dsn(db)],
            stdout=subprocess.PIPE,
        )
        subprocess.run(
            [str(cluster.bindir / "pg_restore"), "-d", cluster.dsn(target)],
            stdin=dump.stdout,
            check=True,
        )
        dump.wait()

    for strategy in ("wal_log", "file_copy"):
        piped, seconds, _ = paired(
            repeat,
            dump_restore,
            lambda s=strategy: cluster.psql(
                f'CREATE DATABASE {target} TEMPLATE "{db}" STRATEGY {s}'
            ),
            reset,
        )
        line("pg_dump | pg_restore", piped)
        line(f"CREATE DATABASE .. TEMPLATE (STRATEGY {strategy})", seconds, piped)
    reset()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    cluster = start_pg_cluster()
    try:
        db = cluster.create_database("bench")
        started = time.perf_counter()
        tool(cluster, "pgbench", "-i", "-q", "-s", str(options.scale), "-d", cluster.dsn(db))
        size = cluster.psql(f"SELECT pg_size_pretty(pg_database_size('{db}'))")
        made = time.perf_counter() - started
        print(f"pgbench scale {options.scale}: {size} in {made:.1f} s; best of {options.repeat}")
        with tempfile.TemporaryDirectory(prefix="sgbench-", dir="/var/tmp") as tmp:
            archive = bench_backup(cluster, db, Path(tmp), options.repeat)
            bench_restore(cluster, archive, options.repeat)
            bench_clone(cluster, db, options.repeat)
    finally:
        stop_pg_cluster(cluster)


if __name__ == "__main__":
    main()
