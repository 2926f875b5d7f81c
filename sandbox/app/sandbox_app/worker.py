"""The sandbox worker: takes item ids from a Redis queue, marks the items processed in
PostgreSQL and records each run; touches a heartbeat file while its dependencies answer."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import psycopg2
import redis

from sandbox_app.common import (
    JOBS_QUEUE,
    Log,
    Settings,
    db_connection,
    redis_client,
    start_service,
    table_exists,
)

HEARTBEAT_FILE = Path("/tmp/sandbox-worker-heartbeat")
POLL_SECONDS = 2


def process(settings: Settings, log: Log, item_id: int) -> None:
    started = time.monotonic()
    with db_connection(settings) as conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE items SET status = 'processed', processed_at = now() WHERE id = %s", (item_id,)
        )
        cur.execute(
            "INSERT INTO job_runs (item_id, status, duration_ms) VALUES (%s, 'done', %s)",
            (item_id, round((time.monotonic() - started) * 1000, 2)),
        )
    log.info("job done", item_id=item_id)


def schema_ready(settings: Settings) -> bool:
    with db_connection(settings) as conn:
        return table_exists(conn, "items") and table_exists(conn, "job_runs")


def run_once(settings: Settings, log: Log, queue: redis.Redis) -> None:
    """One poll: prove both dependencies answer, beat the heart, take at most one job."""
    migrated = schema_ready(settings)
    queue.ping()
    if "unhealthy" not in settings.faults:
        HEARTBEAT_FILE.touch()
    if not migrated:
        # Before migrations there is nothing to do yet; keep the queue untouched.
        time.sleep(POLL_SECONDS)
        return
    popped = queue.brpop([JOBS_QUEUE], timeout=POLL_SECONDS)
    if popped is not None:
        process(settings, log, int(popped[1]))


def main() -> None:
    settings, log = start_service("worker")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    queue = redis_client(settings, timeout=POLL_SECONDS + 3)
    failure: str | None = None
    while True:
        previous, failure = failure, poll(settings, log, queue)
        if failure and not previous:
            log.error("dependency unreachable", detail=failure)
        elif previous and not failure:
            log.info("dependencies reachable again")
        if failure:
            time.sleep(POLL_SECONDS)


def poll(settings: Settings, log: Log, queue: redis.Redis) -> str | None:
    """None when the poll went through, else what failed (logged once per outage)."""
    try:
        run_once(settings, log, queue)
    except (psycopg2.Error, redis.RedisError) as exc:
        return str(exc).strip()
    return None


if __name__ == "__main__":
    main()
