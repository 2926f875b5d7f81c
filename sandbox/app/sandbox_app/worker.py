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
    ConnectionPool,
    Log,
    Settings,
    redis_client,
    start_service,
    table_exists,
)

HEARTBEAT_FILE = Path("/tmp/sandbox-worker-heartbeat")
POLL_SECONDS = 2


class Worker:
    def __init__(self, settings: Settings, log: Log) -> None:
        self.settings = settings
        self.log = log
        self.db = ConnectionPool(settings, size=1)
        self.queue = redis_client(settings, timeout=POLL_SECONDS + 3)

    def run(self) -> None:
        failure: str | None = None
        while True:
            previous, failure = failure, self.poll()
            if failure and not previous:
                self.log.error("dependency unreachable", detail=failure)
            elif previous and not failure:
                self.log.info("dependencies reachable again")
            if failure:
                time.sleep(POLL_SECONDS)

    def poll(self) -> str | None:
        """None when the poll went through, else what failed (logged once per outage)."""
        try:
            self.run_once()
        except (psycopg2.Error, redis.RedisError) as exc:
            return str(exc).strip()
        return None

    def run_once(self) -> None:
        """Prove both dependencies answer, beat the heart, take at most one job."""
        migrated = self.schema_ready()
        self.queue.ping()
        if "unhealthy" not in self.settings.faults:
            HEARTBEAT_FILE.touch()
        if not migrated:
            # Before migrations there is nothing to do yet; leave the queue alone.
            time.sleep(POLL_SECONDS)
            return
        popped = self.queue.brpop([JOBS_QUEUE], timeout=POLL_SECONDS)
        if popped is not None:
            self.process(int(popped[1]))

    def schema_ready(self) -> bool:
        with self.db.connection() as conn:
            return table_exists(conn, "items") and table_exists(conn, "job_runs")

    def process(self, item_id: int) -> None:
        started = time.monotonic()
        with self.db.connection() as conn, conn.cursor() as cur:
            cur.execute(
                "UPDATE items SET status = 'processed', processed_at = now() WHERE id = %s",
                (item_id,),
            )
            cur.execute(
                "INSERT INTO job_runs (item_id, status, duration_ms) VALUES (%s, 'done', %s)",
                (item_id, round((time.monotonic() - started) * 1000, 2)),
            )
        self.log.info("job done", item_id=item_id)


def main() -> None:
    settings, log = start_service("worker")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    Worker(settings, log).run()


if __name__ == "__main__":
    main()
