"""Settings, structured logging, fault switches and connections shared by the API and the worker."""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg2
import redis

JOBS_QUEUE = "sandbox:jobs"
# Generous on purpose: on a busy 2-core host a connection handshake can take seconds, and a
# dependency is only reported down (an ERROR line) when it really does not answer.
DEPENDENCY_TIMEOUT_SECONDS = 5
KNOWN_FAULTS = frozenset(
    {
        "crash_on_start",
        "slow_start",
        "unhealthy",
        "no_security_headers",
        "http_500",
        "slow_responses",
        "error_logs",
    }
)


def parse_faults(spec: str, service: str) -> frozenset[str]:
    """Faults from a comma list of `name` (every service) or `service:name` (one service)."""
    faults = set()
    for item in filter(None, (part.strip() for part in spec.split(","))):
        target, _, name = item.rpartition(":")
        if name not in KNOWN_FAULTS:
            raise ValueError(f"unknown fault {item!r}; known: {', '.join(sorted(KNOWN_FAULTS))}")
        if target in ("", service):
            faults.add(name)
    return frozenset(faults)


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


@dataclass(frozen=True)
class Settings:
    service: str
    release: str = field(default_factory=lambda: os.environ.get("SANDBOX_RELEASE", "dev"))
    db_host: str = field(default_factory=lambda: os.environ.get("POSTGRES_HOST", "postgres"))
    db_port: int = field(default_factory=lambda: _env_int("POSTGRES_PORT", 5432))
    db_name: str = field(default_factory=lambda: os.environ.get("POSTGRES_DB", "app"))
    db_user: str = field(default_factory=lambda: os.environ.get("POSTGRES_USER", "app"))
    db_password: str = field(default_factory=lambda: os.environ.get("POSTGRES_PASSWORD", ""))
    redis_host: str = field(default_factory=lambda: os.environ.get("REDIS_HOST", "redis"))
    redis_port: int = field(default_factory=lambda: _env_int("REDIS_PORT", 6379))
    slow_start_seconds: int = field(
        default_factory=lambda: _env_int("SANDBOX_SLOW_START_SECONDS", 20)
    )
    slow_ms: int = field(default_factory=lambda: _env_int("SANDBOX_SLOW_MS", 400))
    faults: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls, service: str) -> Settings:
        spec = os.environ.get("SANDBOX_FAULTS", "")
        return cls(service=service, faults=parse_faults(spec, service))


class Log:
    """One line per event: `ts=... level=... service=... msg="..." key=value`."""

    def __init__(self, service: str) -> None:
        self.service = service

    def _emit(self, level: str, msg: str, fields: dict[str, object]) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        extra = "".join(f" {key}={_quote(value)}" for key, value in fields.items())
        sys.stdout.write(
            f"ts={stamp} level={level} service={self.service} msg={_quote(msg)}{extra}\n"
        )
        sys.stdout.flush()

    def info(self, msg: str, **fields: object) -> None:
        self._emit("INFO", msg, fields)

    def warning(self, msg: str, **fields: object) -> None:
        self._emit("WARNING", msg, fields)

    def error(self, msg: str, **fields: object) -> None:
        self._emit("ERROR", msg, fields)

    def critical(self, msg: str, **fields: object) -> None:
        self._emit("CRITICAL", msg, fields)


def _quote(value: object) -> str:
    text = str(value)
    if text and not any(ch in text for ch in ' "=\n'):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def start_service(service: str) -> tuple[Settings, Log]:
    """Read settings and apply the start-up faults; exits on `crash_on_start` or a bad switch."""
    log = Log(service)
    try:
        settings = Settings.from_env(service)
    except ValueError as exc:
        log.critical("invalid SANDBOX_FAULTS", detail=exc)
        sys.exit(2)
    if settings.faults:
        log.warning("fault switches on", faults=",".join(sorted(settings.faults)))
    if "crash_on_start" in settings.faults:
        log.critical("crashing on start (fault switch crash_on_start)")
        sys.exit(1)
    if "error_logs" in settings.faults:
        threading.Thread(target=_emit_fault_errors, args=(log,), daemon=True).start()
    log.info("starting", release=settings.release)
    return settings, log


def _emit_fault_errors(log: Log) -> None:
    """The `error_logs` fault: ERROR and CRITICAL lines such as a failing dependency would cause."""
    while True:
        log.error("payment provider timeout", upstream="billing", attempt=3)
        log.critical("circuit breaker open", upstream="billing")
        time.sleep(5)


class ConnectionPool:
    """Reuses idle connections: a new one costs a SCRAM handshake, far more than a query."""

    def __init__(
        self, settings: Settings, size: int = 4, timeout: int = DEPENDENCY_TIMEOUT_SECONDS
    ) -> None:
        self.settings = settings
        self.size = size
        self.timeout = timeout
        self.idle: queue.LifoQueue[psycopg2.extensions.connection] = queue.LifoQueue()

    @contextmanager
    def connection(self) -> Iterator[psycopg2.extensions.connection]:
        """A connection in a transaction that commits on success; broken ones are dropped."""
        conn = self._checkout()
        try:
            with conn:
                yield conn
        except BaseException:
            conn.close()
            raise
        if self.idle.qsize() < self.size:
            self.idle.put(conn)
        else:
            conn.close()

    def _checkout(self) -> psycopg2.extensions.connection:
        while True:
            try:
                conn = self.idle.get_nowait()
            except queue.Empty:
                return self._connect()
            try:
                conn.poll()  # raises when the server ended the session (restart, terminate)
            except psycopg2.Error:
                conn.close()
                continue
            return conn

    def _connect(self) -> psycopg2.extensions.connection:
        return psycopg2.connect(
            host=self.settings.db_host,
            port=self.settings.db_port,
            dbname=self.settings.db_name,
            user=self.settings.db_user,
            password=self.settings.db_password,
            connect_timeout=self.timeout,
            application_name=f"sandbox-{self.settings.service}",
        )


def redis_client(settings: Settings, timeout: float = DEPENDENCY_TIMEOUT_SECONDS) -> redis.Redis:
    return redis.Redis(
        host=settings.redis_host,
        port=settings.redis_port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
    )


def table_exists(conn: psycopg2.extensions.connection, name: str) -> bool:
    """True once the migration that creates `name` ran (asked without logging a server error)."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (f"public.{name}",))
        row = cur.fetchone()
    return bool(row and row[0])


def monotonic_ms(start: float) -> float:
    return round((time.monotonic() - start) * 1000, 2)
