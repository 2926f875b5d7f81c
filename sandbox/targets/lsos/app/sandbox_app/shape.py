"""Runbook 003 (LSOS) endpoints on the sandbox API, in its envelopes.

Success: `{"success": true, "data": ..., "error": null, "meta": {...}}`; non-2xx: the global
error envelope `{"success": false, "errors": [...], "meta": {...}}`. Routes under
`/api/v1`: `auth/login`, `health`, `health/readiness`, `health/metrics` (`metrics`, `slos`,
`alert_state`, and the modelled task queue), `dashboard` and `reports/schedule`
(`?campaign_id=`), `debug/headers` (the request headers the API received, for the check that
the proxy passes `Authorization` and `X-Request-ID` through), and `simulation/start`, which
the staging load simulator (scripts/staging_load_simulation.py) calls to put load on the
modelled queue.

The queue is a model, computed from the time since the load started: jobs arrive at the
configured jobs per second during the load phase; `LSOS_WORKER_CONCURRENCY` workers drain 1.9
jobs per second each, so the queue gate reads the worker concurrency exactly, whatever the
host's speed. Latency is measured for real by the simulator.
"""

from __future__ import annotations

import hmac
import os
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox_app.api import App, Request, Response

DRAIN_PER_WORKER = 1.9
FAILURE_RATES = {"crawl": 0.4, "entity": 0.9, "scheduled_report": 0.0}  # percent


class QueueModel:
    def __init__(self, workers: float) -> None:
        self.drain = workers * DRAIN_PER_WORKER
        self.lock = threading.Lock()
        self.started: float | None = None
        self.load_seconds = 0.0
        self.arrivals = 0.0

    def start(self, load_seconds: float, arrivals_per_second: float) -> None:
        with self.lock:
            self.started = time.monotonic()
            self.load_seconds = load_seconds
            self.arrivals = arrivals_per_second

    def depth(self) -> float:
        with self.lock:
            if self.started is None:
                return 0.0
            elapsed = time.monotonic() - self.started
            growth = max(0.0, self.arrivals - self.drain)
            peak = growth * min(elapsed, self.load_seconds)
            return max(0.0, peak - self.drain * max(0.0, elapsed - self.load_seconds))

    def state(self) -> str:
        """Degraded while the backlog exceeds a full load phase of arrivals."""
        with self.lock:
            limit = self.arrivals * self.load_seconds
        return "degraded" if limit and self.depth() > limit else "healthy"


def routes(app: App) -> dict[tuple[str, str], Callable[[Request], Response]]:
    from sandbox_app.api import Response  # noqa: PLC0415 - api imports this module at start-up

    queue = QueueModel(float(os.environ.get("LSOS_WORKER_CONCURRENCY") or 6))

    def meta() -> dict[str, Any]:
        return {"version": app.settings.release, "at": time.time()}

    def ok(data: Any) -> Response:
        return Response(200, {"success": True, "data": data, "error": None, "meta": meta()})

    def fail(status: int, code: str, message: str) -> Response:
        errors = [{"code": code, "message": message}]
        return Response(status, {"success": False, "errors": errors, "meta": meta()})

    def campaign(request: Request) -> str | None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query)
        return (query.get("campaign_id") or [None])[0]

    def login(request: Request) -> Response:
        data = request.json()
        email, password = str(data.get("email", "")), str(data.get("password", ""))
        good = hmac.compare_digest(email, app.admin_user) and bool(app.admin_password)
        if not (good and hmac.compare_digest(password, app.admin_password)):
            return fail(401, "invalid_credentials", "invalid email or password")
        return ok({"access_token": app.tokens.issue(email), "token_type": "bearer"})

    def health(request: Request) -> Response:
        return ok({"status": "ok"})

    def echo_headers(request: Request) -> Response:
        # Staging only: what reached the API through the proxy, sent back to the caller.
        return ok({"headers": dict(request.headers.items())})

    def readiness(request: Request) -> Response:
        checks = {"database": app._check_database(), "redis": app._check_redis()}
        if all(c["status"] == "healthy" for c in checks.values()):
            return ok({"status": "ready", "checks": checks})
        return fail(503, "not_ready", "dependencies unavailable")

    def metrics(request: Request) -> Response:
        depth = queue.depth()
        return ok(
            {
                "metrics": {"queue_depth": round(depth, 2), "failure_rates": FAILURE_RATES},
                "slos": {"api_p95_ms": 1200, "queue_drain": "drain >= growth"},
                "alert_state": {"firing": []},
                "platform_state": queue.state(),
            }
        )

    def dashboard(request: Request) -> Response:
        if not campaign(request):
            return fail(422, "campaign_id_required", "campaign_id is required")
        return ok(
            {
                "technical_score": 82,
                "entity_score": 74,
                "recommendation_summary": {"open": 3},
                "latest_crawl_status": "completed",
                "report_status_summary": {"scheduled": 1},
                "slo_health_snapshot": {"api_p95_ms": "ok"},
                "platform_state": queue.state(),
            }
        )

    def schedule(request: Request) -> Response:
        if not campaign(request):
            return fail(422, "campaign_id_required", "campaign_id is required")
        rows = app.query(
            "report_schedules",
            "SELECT cron, report FROM report_schedules WHERE campaign_id = %s",
            (campaign(request),),
        )
        if isinstance(rows, Response):
            return fail(503, "schema", "report_schedules missing: run alembic upgrade head")
        return ok({"schedules": [{"cron": cron, "report": report} for cron, report in rows]})

    def simulation_start(request: Request) -> Response:
        data = request.json()
        load = float(data.get("load_phase_seconds", 300))
        queue.start(load, float(data.get("jobs_per_second", 16)))
        return ok({"drain_per_second": queue.drain})

    return {
        ("POST", "/api/v1/auth/login"): login,
        ("GET", "/api/v1/health"): health,
        ("GET", "/api/v1/debug/headers"): echo_headers,
        ("GET", "/api/v1/health/readiness"): readiness,
        ("GET", "/api/v1/health/metrics"): metrics,
        ("GET", "/api/v1/dashboard"): dashboard,
        ("GET", "/api/v1/reports/schedule"): schedule,
        ("POST", "/api/v1/simulation/start"): simulation_start,
    }
