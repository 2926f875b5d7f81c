"""Runbook 002 (Temponest) endpoints on the sandbox API: `/health`, `/api/status` and
`/api/costs/summary` (over the `v_run_metrics_summary` view of migration 007)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandbox_app.api import App, Request, Response


def routes(app: App) -> dict[tuple[str, str], Callable[[Request], Response]]:
    from sandbox_app.api import Response  # noqa: PLC0415 - api imports this module at start-up

    def health(request: Request) -> Response:
        return app.ready(request)

    def status(request: Request) -> Response:
        body = {"status": "ok", "version": app.settings.release, "service": "temponest"}
        return Response(200, body)

    def costs_summary(request: Request) -> Response:
        rows = app.query(
            "v_run_metrics_summary",
            "SELECT status, runs, avg_duration_ms::float8 FROM v_run_metrics_summary"
            " ORDER BY status",
        )
        if isinstance(rows, Response):
            return rows
        keys = ("status", "runs", "avg_duration_ms")
        return Response(200, {"summary": [dict(zip(keys, row, strict=True)) for row in rows]})

    return {
        ("GET", "/health"): health,
        ("GET", "/api/status"): status,
        ("GET", "/api/costs/summary"): costs_summary,
    }
