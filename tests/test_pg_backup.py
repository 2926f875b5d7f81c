"""pg_backup on a real PostgreSQL 15 server: verified dumps, bad input, faults, retention."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from subprocess import Popen
from typing import Any

import pytest
from ansible_collections.stagegate.release.plugins.module_utils._pg import (
    PgError,
    PgTarget,
    run_tool,
)
from ansible_collections.stagegate.release.plugins.module_utils._pg_archive import (
    rehearse_restore,
    staged_archive,
    verify_listing,
)
from conftest import PgCluster, free_port
from pg_fixtures import (
    MODULES,
    backup_dir_entries,
    count_scratch,
    db_arg,
    module_env,
    run_module,
)


def backup_args(cluster: PgCluster, db: str, tmp_path: Path, **extra: object) -> dict[str, object]:
    return {"db": db_arg(cluster, db), "backup_dir": str(tmp_path / "backups"), **extra}


def test_backup_verified_with_manifest_and_idempotent(
    pg_cluster: PgCluster, sample_db: str, tmp_path: Path
) -> None:
    args = backup_args(pg_cluster, sample_db, tmp_path, release="v1", verify="restore")
    first = run_module("pg_backup", args)
    assert first.get("failed") is not True, first
    assert first["changed"] is True
    manifest = json.loads(Path(first["manifest_path"]).read_text())
    assert manifest["verified"] is True
    assert manifest["verification"]["level"] == "restore"
    assert manifest["tables"]["public.orders"]["rows"] == 1000
    assert manifest["tables"]["public.customers"]["rows"] == 200
    assert manifest["server_version"].startswith("15")
    assert manifest["release"] == "v1"
    # hashed while pg_dump wrote it: the same digest as reading the file back
    assert manifest["sha256"] == hashlib.sha256(Path(first["path"]).read_bytes()).hexdigest()
    assert manifest["size_bytes"] == Path(first["path"]).stat().st_size
    assert {e["table"] for e in first["progress"]} >= {"public.orders", "public.customers"}
    # the rehearsal's scratch database was created and dropped after the dump: those commits
    # make "nothing changed since" unprovable, so a second run takes a backup of its own
    again = run_module("pg_backup", args)
    assert again["changed"] is True
    assert again["reused"] is False
    assert again["path"] != first["path"]
    assert backup_dir_entries(Path(first["path"]).parent) == sorted(
        [Path(first["path"]).name, Path(first["path"]).name + ".manifest.json",
         Path(again["path"]).name, Path(again["path"]).name + ".manifest.json"]
    )  # fmt: skip
    assert count_scratch(pg_cluster) == 0


def test_tool_output_that_cannot_be_written_fails_the_run() -> None:
    # /dev/full: every write is ENOSPC, as on a full backup disk; the tool must not block on
    # the pipe and the run must not count as good even though the tool itself exits 0.
    run = run_tool(["sh", "-c", "head -c 8000000 /dev/zero; exit 0"], {}, stdout_path="/dev/full")
    assert not run.ok
    assert run.sha256 == ""
    assert "No space left on device" in str(run.failure("pg_dump"))


def test_directory_format_with_parallel_jobs(
    pg_cluster: PgCluster, sample_db: str, tmp_path: Path
) -> None:
    args = backup_args(pg_cluster, sample_db, tmp_path, name="par", format="directory", jobs=2)
    result = run_module("pg_backup", args)
    assert result.get("failed") is not True, result
    assert Path(result["path"]).is_dir()
    assert (Path(result["path"]) / "toc.dat").exists()


@pytest.mark.parametrize(
    ("db_override", "expected"),
    [
        ({"password": "wrong-pw"}, "password authentication failed"),
        ({"name": "no_such_db"}, 'database "no_such_db" does not exist'),
        ({"port": None}, "Connection refused"),
    ],
    ids=["wrong-credentials", "unknown-database", "unreachable-host"],
)
def test_connection_failures_name_the_dsn_without_password(
    password_cluster: PgCluster, tmp_path: Path, db_override: dict[str, object], expected: str
) -> None:
    db = db_arg(password_cluster, "postgres", user="app", password="s3cret-pw")
    db.update({k: v if v is not None else free_port() for k, v in db_override.items()})
    result = run_module("pg_backup", {"db": db, "backup_dir": str(tmp_path)})
    assert result["failed"] is True
    assert expected in result["msg"]
    assert f"port={db['port']}" in result["msg"]
    assert f"dbname={db['name']}" in result["msg"]
    assert "user=app" in result["msg"]
    text = json.dumps(result)
    assert "s3cret-pw" not in text
    assert "wrong-pw" not in text
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_server_stopped_mid_backup_leaves_nothing_good(
    private_pg_cluster: PgCluster, tmp_path: Path
) -> None:
    db = private_pg_cluster.create_database("bigdb")
    subprocess.run(
        [
            str(private_pg_cluster.bindir / "pgbench"),
            "-i",
            "-q",
            "-s",
            "8",
            "-d",
            private_pg_cluster.dsn(db),
        ],
        check=True,
        capture_output=True,
    )
    progress = tmp_path / "progress.log"
    backup_dir = tmp_path / "backups"
    args = {
        "ANSIBLE_MODULE_ARGS": {
            "db": db_arg(private_pg_cluster, db),
            "backup_dir": str(backup_dir),
            "release": "v9",
            "compress": 9,
            "row_counts": "estimate",
            "progress_file": str(progress),
        }
    }
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps(args))
    proc = subprocess.Popen(
        [sys.executable, str(MODULES / "pg_backup.py"), str(args_file)],
        stdout=subprocess.PIPE,
        text=True,
        env=module_env(),
    )
    deadline = time.monotonic() + 60
    while "pgbench_accounts" not in (progress.read_text() if progress.exists() else ""):
        assert proc.poll() is None, "the dump finished before the server could be stopped"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    private_pg_cluster.pg_ctl("stop")  # fast shutdown while pg_dump streams pgbench_accounts
    out, _ = proc.communicate(timeout=60)
    result = json.loads(out)
    assert result["failed"] is True
    assert "pg_dump failed" in result["msg"]
    assert "stderr" in result
    assert result["rc"] != 0
    assert backup_dir_entries(backup_dir) == []  # no final file, no manifest, no partial


@pytest.fixture
def good_backup(pg_cluster: PgCluster, sample_db: str, tmp_path: Path) -> tuple[PgTarget, Path]:
    result = run_module("pg_backup", backup_args(pg_cluster, sample_db, tmp_path, name="good"))
    assert result.get("failed") is not True, result
    target = PgTarget.from_module_params({"db": db_arg(pg_cluster, sample_db)})
    return target, Path(result["path"])


def test_truncated_dump_fails_listing(good_backup: tuple[PgTarget, Path], tmp_path: Path) -> None:
    target, archive = good_backup
    truncated = tmp_path / "truncated.dump"
    truncated.write_bytes(archive.read_bytes()[:200])
    with (
        staged_archive(target, str(truncated)) as staged,
        pytest.raises(PgError, match="pg_restore --list cannot read"),
    ):
        verify_listing(staged, ["public.orders"])
    empty = tmp_path / "empty.dump"
    empty.write_bytes(b"")
    with staged_archive(target, str(empty)) as staged, pytest.raises(PgError, match="is empty"):
        verify_listing(staged, [])


def test_truncated_data_fails_restore_rehearsal(
    pg_cluster: PgCluster, good_backup: tuple[PgTarget, Path], tmp_path: Path
) -> None:
    target, archive = good_backup
    data = archive.read_bytes()
    truncated = tmp_path / "half.dump"
    truncated.write_bytes(data[: len(data) * 3 // 4])  # the TOC survives, table data does not
    with (
        pg_cluster_admin(target) as admin,
        staged_archive(target, str(truncated)) as staged,
        pytest.raises(PgError, match="pg_restore"),
    ):
        rehearse_restore(
            target,
            admin=admin,
            staged=staged,
            expected_rows={"public.orders": 1000, "public.customers": 200},
            exact=True,
            jobs=1,
        )
    assert count_scratch(pg_cluster) == 0


def test_corrupted_dump_fails_verification_and_restore(
    pg_cluster: PgCluster, good_backup: tuple[PgTarget, Path]
) -> None:
    target, archive = good_backup
    data = bytearray(archive.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = b"\xff" * 64
    archive.write_bytes(bytes(data))
    with (
        pg_cluster_admin(target) as admin,
        staged_archive(target, str(archive)) as staged,
        pytest.raises(PgError),
    ):
        rehearse_restore(
            target,
            admin=admin,
            staged=staged,
            expected_rows={"public.orders": 1000, "public.customers": 200},
            exact=True,
            jobs=1,
        )
    restore = run_module(
        "pg_restore",
        {
            "db": db_arg(pg_cluster, "postgres"),
            "backup": str(archive),
            "name": "sgt_never_restored",
        },
    )
    assert restore["failed"] is True
    assert "sha256" in restore["msg"]
    assert count_scratch(pg_cluster) == 0


def pg_cluster_admin(target: PgTarget):  # type: ignore[no-untyped-def]
    return target.for_database("postgres").connect()


def test_retention_keeps_newest_and_the_release_backup(
    pg_cluster: PgCluster, sample_db: str, tmp_path: Path
) -> None:
    paths = {}
    for release in ("r1", "r2", "r3"):
        # force: nothing changes in between, so the first backup would be reused otherwise
        args = backup_args(pg_cluster, sample_db, tmp_path, release=release, force=True)
        paths[release] = run_module("pg_backup", args)["path"]
    state = tmp_path / "state"
    for release, backup in (("r4", "r1"), ("r3", "r2")):
        (state / "releases" / release).mkdir(parents=True)
        (state / "releases" / release / "manifest.json").write_text(
            json.dumps({"backup": {"path": paths[backup]}})
        )
    # A promotion of r4 while r3 runs: r3's manifest names the backup a rollback from r3
    # restores (r2's), which retention keeps as well as r4's own manifest's.
    args = backup_args(
        pg_cluster, sample_db, tmp_path, release="r4", running_release="r3", keep=1,
        state_dir=str(state), force=True,
    )  # fmt: skip
    planned = run_module("pg_backup", args, check_mode=True)
    assert planned["removed"] == [paths["r3"]]
    assert Path(paths["r3"]).exists()
    done = run_module("pg_backup", args)
    assert done["removed"] == [paths["r3"]]
    left = backup_dir_entries(Path(paths["r1"]).parent)
    kept = [Path(paths["r1"]).name, Path(paths["r2"]).name, Path(done["path"]).name]
    assert left == sorted([*kept, *(name + ".manifest.json" for name in kept)])


def test_backup_reused_only_when_provably_of_the_current_state(
    quiet_cluster: PgCluster, quiet_db: str, tmp_path: Path
) -> None:
    def backup(run_id: str, check_mode: bool = False) -> dict[str, Any]:
        args = backup_args(quiet_cluster, quiet_db, tmp_path, release="v1", run_id=run_id)
        result = run_module("pg_backup", args, check_mode=check_mode)
        assert result.get("failed") is not True, result
        return result

    first = backup("run1")
    assert Path(first["path"]).name == f"{quiet_db}-v1-run1.dump"  # named by the run
    assert first["changed"] is True
    assert first["manifest"]["run_id"] == "run1"
    # nothing committed since: the same state, provably; the archive is reused
    planned = backup("run2", check_mode=True)
    assert (planned["changed"], planned["reused"]) == (False, True)
    same = backup("run2")
    assert (same["changed"], same["reused"], same["path"]) == (False, True, first["path"])
    # the content no longer has its sha256 (mutant: no re-check on reuse): a new backup
    archive = Path(first["path"])
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    fresh = backup("run3")
    assert (fresh["changed"], fresh["reused"]) == (True, False)
    assert Path(fresh["path"]).name == f"{quiet_db}-v1-run3.dump"
    # a committed write (e.g. the restore of a rollback, or the app): never reused
    quiet_cluster.psql("INSERT INTO customers (name) VALUES ('late')", quiet_db)
    after_write = backup("run4")
    assert (after_write["changed"], after_write["reused"]) == (True, False)
    assert after_write["manifest"]["tables"]["public.customers"]["rows"] == 201
    assert "changed" in after_write["reuse_check"]
    # nextval changes a sequence without any transaction: never reused either
    quiet_cluster.psql("SELECT nextval('orders_id_seq')", quiet_db)
    after_nextval = backup("run5")
    assert (after_nextval["changed"], after_nextval["reused"]) == (True, False)
    forced = run_module(
        "pg_backup",
        backup_args(quiet_cluster, quiet_db, tmp_path, release="v1", run_id="run6", force=True),
    )
    assert (forced["changed"], forced["reused"]) == (True, False)
    # nothing committed since run6, but it was only listed: no stand-in for a rehearsal
    rehearsed = run_module(
        "pg_backup",
        backup_args(
            quiet_cluster, quiet_db, tmp_path, release="v1", run_id="run7", verify="restore"
        ),
    )
    assert (rehearsed["changed"], rehearsed["reused"]) == (True, False)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("name", "../../escaped"),
        ("name", "/tmp/absolute"),
        ("name", "sub/dir"),
        ("name", ".."),
        ("release", "../v1"),
        ("run_id", "a\\b"),
        ("name", ".stagegate-partial-x"),
    ],
)
def test_names_that_leave_the_backup_dir_are_refused(
    pg_cluster: PgCluster, sample_db: str, tmp_path: Path, option: str, value: str
) -> None:
    backup_dir = tmp_path / "a" / "b" / "backups"
    args = {"db": db_arg(pg_cluster, sample_db), "backup_dir": str(backup_dir), option: value}
    for check_mode in (True, False):
        result = run_module("pg_backup", args, check_mode=check_mode)
        assert result["failed"] is True
        assert f"{option}={value!r}" in result["msg"]
        assert "expected one file name" in result["msg"]
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == []
    assert not Path("/tmp/absolute.dump").exists()


def test_damaged_manifests_are_named_never_a_traceback(
    pg_cluster: PgCluster, sample_db: str, tmp_path: Path
) -> None:
    args = backup_args(pg_cluster, sample_db, tmp_path, name="named")
    first = run_module("pg_backup", args)
    manifest = Path(first["manifest_path"])
    manifest.write_text(manifest.read_text()[:40])  # torn: a crash mid-write elsewhere
    again = run_module("pg_backup", args)
    assert again["failed"] is True
    assert f"backup manifest {manifest} cannot be read" in again["msg"]
    assert "Traceback" not in json.dumps(again)
    restore = run_module(
        "pg_restore", {"db": db_arg(pg_cluster, "postgres"), "backup": first["path"]}
    )
    assert restore["failed"] is True
    assert f"backup manifest {manifest} cannot be read" in restore["msg"]
    # a damaged release manifest: retention must not guess which backup it protected
    state = tmp_path / "state"
    (state / "releases" / "v2").mkdir(parents=True)
    (state / "releases" / "v2" / "manifest.json").write_text('{"backup": {"pa')
    kept = run_module(
        "pg_backup",
        backup_args(pg_cluster, sample_db, tmp_path, release="v2", keep=1, state_dir=str(state)),
    )
    assert kept["failed"] is True
    assert f"release manifest {state}/releases/v2/manifest.json cannot be read" in kept["msg"]
    assert Path(first["path"]).exists()


@contextmanager
def tmpfs(mount: Path, options: str) -> Iterator[Path]:
    """A tmpfs of its own at `mount` (made), unmounted afterwards."""
    mount.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs (root and CAP_SYS_ADMIN needed): {proc.stderr}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs with room for the backup lock, a filler and one more file (4 inodes with its
    root): the dump fits, the manifest written next does not (ENOSPC)."""
    with tmpfs(tmp_path / "tiny", "size=64m,nr_inodes=4") as mount:
        (mount / ".stagegate-backup.lock").touch()
        (mount / "filler").touch()
        yield mount


def test_read_only_backup_dir_fails_naming_the_cause(
    pg_cluster: PgCluster, sample_db: str, tmp_path: Path
) -> None:
    # Issue 13 item 17: a bare "Module failed: [Errno 30]" named no cause.
    with tmpfs(tmp_path / "ro", "ro,size=1m") as mount:
        backup_dir = mount / "backups"
        args = {"db": db_arg(pg_cluster, sample_db), "backup_dir": str(backup_dir)}
        result = run_module("pg_backup", args)
    assert result["failed"] is True
    assert f"Read-only file system {backup_dir}" in result["msg"]
    assert result["msg"].startswith(f"host=127.0.0.1 port={pg_cluster.port} dbname={sample_db}")


def test_full_disk_leaves_no_archive_without_its_manifest(
    pg_cluster: PgCluster, sample_db: str, tiny_disk: Path
) -> None:
    # Issue 13 item 9: the archive was renamed to its final name before its manifest was
    # written, so a full disk left a good-looking archive with no manifest.
    args = {"db": db_arg(pg_cluster, sample_db), "backup_dir": str(tiny_disk), "name": "full"}
    result = run_module("pg_backup", args)
    assert result["failed"] is True
    assert f"writing the manifest {tiny_disk}/full.dump.manifest.json failed" in result["msg"]
    assert "No space left on device" in result["msg"]
    assert backup_dir_entries(tiny_disk) == ["filler"]  # no archive, manifest or partial
    (tiny_disk / "filler").unlink()  # room again: the next run succeeds
    again = run_module("pg_backup", args)
    assert again.get("failed") is not True, again
    assert backup_dir_entries(tiny_disk) == ["full.dump", "full.dump.manifest.json"]


@pytest.fixture
def start_module(tmp_path: Path) -> Iterator[Callable[[str, dict[str, Any]], Popen[str]]]:
    """Start a module process left running (run_module waits for it); every process still
    running at the end of the test, also of a failed one, is killed."""
    started: list[Popen[str]] = []

    def start(name: str, args: dict[str, Any]) -> Popen[str]:
        args_file = tmp_path / f"{name}-{time.monotonic_ns()}.json"
        args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        proc = subprocess.Popen(
            [sys.executable, str(MODULES / f"{name}.py"), str(args_file)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=module_env(),
        )  # fmt: skip
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()


def wait_for_partial(backup_dir: Path, proc: Popen[str]) -> Path:
    deadline = time.monotonic() + 60
    while True:
        found = [p for p in backup_dir.glob(".stagegate-partial-*") if p.suffix == ".dump"]
        if found:
            return found[0]
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no partial archive appeared"
        time.sleep(0.05)


def test_two_backups_into_one_directory_and_the_leftover_of_a_killed_one(
    pg_cluster: PgCluster,
    sample_db: str,
    tmp_path: Path,
    start_module: Callable[[str, dict[str, Any]], Popen[str]],
) -> None:
    # Issue 13 item 10: the second backup's leftover sweep deleted the first one's in-flight
    # partial and the first failed with "is empty". A run whose progress file is a FIFO
    # without a reader stops, in flight, at its first progress line: no timing involved.
    backup_dir = tmp_path / "backups"
    fifo = tmp_path / "progress.fifo"
    os.mkfifo(fifo)
    base = {"db": db_arg(pg_cluster, sample_db), "backup_dir": str(backup_dir)}
    first = start_module("pg_backup", {**base, "name": "first", "progress_file": str(fifo)})
    in_flight = wait_for_partial(backup_dir, first)
    second = run_module("pg_backup", {**base, "name": "second"})
    assert second.get("failed") is not True, second
    assert second["swept"] == []
    assert in_flight.exists()  # not swept: its run holds the directory's lock
    reader = os.open(fifo, os.O_RDWR)  # a reader: the first run goes on
    try:
        out, err = first.communicate(timeout=120)
    finally:
        os.close(reader)
    done = json.loads(out)
    assert done.get("failed") is not True, (done, err)
    assert done["manifest"]["verified"] is True
    # a run killed in flight leaves its partial; the next run alone in the directory removes
    # it (mutant: no sweep) and nothing else
    killed = start_module("pg_backup", {**base, "name": "killed", "progress_file": str(fifo)})
    leftover = wait_for_partial(backup_dir, killed)
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=30)
    assert leftover.exists()
    after = run_module("pg_backup", {**base, "name": "after", "force": True})
    assert after.get("failed") is not True, after
    assert after["swept"] == [leftover.name]
    assert backup_dir_entries(backup_dir) == sorted(
        f"{n}.dump{s}" for n in ("first", "second", "after") for s in ("", ".manifest.json")
    )
