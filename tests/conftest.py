"""Shared fixtures: throwaway PostgreSQL clusters, the Docker engine, free ports.

Everything a fixture creates is removed in its teardown, also when the test fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

# Topic fixtures live in tests/<topic>_fixtures.py (add yours here).
pytest_plugins = [
    "pg_fixtures",
    "compose_fixtures",
    "checks_fixtures",
    "sandbox_fixtures",
    "preflight_fixtures",
    "gate_fixtures",
    "prometheus_fixtures",
    "fleet_fixtures",
]


@pytest.fixture(scope="session", autouse=True)
def subprocess_tmpdir() -> Iterator[Path]:
    """TMPDIR of every process the tests start (ansible-playbook, its modules, ansible-runner):
    a directory of this session, removed at its end. A run a test kills on purpose (a lost
    node) leaves its run-record file and its modules' unpacked payloads there, not in /tmp."""
    tempfile.gettempdir()  # this process keeps /tmp (pytest's tmp_path), cached from here on
    path = Path(tempfile.mkdtemp(prefix="stagegate-tests-tmp-"))
    path.chmod(0o1777)  # as /tmp: a container's own user reads what a module put there
    saved = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(path)
    try:
        yield path
    finally:
        if saved is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved
        shutil.rmtree(path, ignore_errors=True)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unique_name(prefix: str) -> str:
    """A name no other test run on this machine uses (compose projects, databases)."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def _pg_bindir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        pytest.fail("PostgreSQL server binaries not found; run `make setup`")
    return found[-1].parent


@dataclass(frozen=True)
class PgCluster:
    """A running throwaway PostgreSQL server (trust auth, superuser `postgres`)."""

    bindir: Path
    datadir: Path
    socket_dir: Path
    port: int
    host: str = "127.0.0.1"
    user: str = "postgres"

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host={self.host} port={self.port} user={self.user} dbname={dbname}"

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run SQL through psql and return its unaligned, tuples-only output."""
        proc = subprocess.run(
            ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-At", "-d", self.dsn(dbname), "-c", sql],
            capture_output=True,
            text=True,
            check=True,
        )
        return proc.stdout.strip()

    def create_database(self, name: str | None = None) -> str:
        name = name or unique_name("sgtest_")
        self.psql(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def pg_ctl(self, action: str) -> None:
        _as_postgres(
            [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-w", "-m", "fast", action]
            + (["-l", str(self.datadir / "server.log")] if action == "start" else [])
        )


def _as_postgres(cmd: list[str]) -> None:
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    subprocess.run(cmd, check=True, capture_output=True, text=True)


def start_pg_cluster(settings: dict[str, str] | None = None) -> PgCluster:
    """initdb + start a cluster on a free port; the caller must call stop_pg_cluster."""
    bindir = _pg_bindir()
    base = Path(tempfile.mkdtemp(prefix="sgpg-", dir="/tmp"))
    base.chmod(0o755)
    datadir = base / "data"
    socket_dir = base / "sock"
    socket_dir.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
        shutil.chown(socket_dir, "postgres", "postgres")
    _as_postgres(
        [str(bindir / "initdb"), "-D", str(datadir), "-A", "trust", "-U", "postgres", "-E", "UTF8"]
    )
    port = free_port()
    conf = {
        "port": str(port),
        "listen_addresses": "'127.0.0.1'",
        "unix_socket_directories": f"'{socket_dir}'",
        "fsync": "off",
        "max_connections": "50",
        **(settings or {}),
    }
    with (datadir / "postgresql.auto.conf").open("a") as fh:
        fh.writelines(f"{key} = {value}\n" for key, value in conf.items())
    cluster = PgCluster(bindir=bindir, datadir=datadir, socket_dir=socket_dir, port=port)
    cluster.pg_ctl("start")
    return cluster


def stop_pg_cluster(cluster: PgCluster) -> None:
    # The test may have stopped the server itself (e.g. one killed mid-backup).
    with contextlib.suppress(subprocess.CalledProcessError):
        cluster.pg_ctl("stop")
    shutil.rmtree(cluster.datadir.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One throwaway cluster for the whole test session."""
    cluster = start_pg_cluster()
    try:
        yield cluster
    finally:
        stop_pg_cluster(cluster)


@pytest.fixture
def pg_database(pg_cluster: PgCluster) -> Iterator[str]:
    """A fresh empty database on the session cluster, dropped afterwards."""
    name = pg_cluster.create_database()
    try:
        yield name
    finally:
        pg_cluster.drop_database(name)


@pytest.fixture
def private_pg_cluster() -> Iterator[PgCluster]:
    """A cluster of the test's own, for tests that stop or break the server."""
    cluster = start_pg_cluster()
    try:
        yield cluster
    finally:
        stop_pg_cluster(cluster)


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    """A Docker SDK client for the real engine that `make setup` started."""
    deadline = time.monotonic() + 30
    while True:
        try:
            client = docker.from_env()
            client.ping()
        except Exception as exc:  # any engine failure is reported the same way
            if time.monotonic() > deadline:
                pytest.fail(f"Docker engine not reachable ({exc}); run `make setup`")
            time.sleep(1)
        else:
            return client
