"""Release v2: a reporting endpoint over the `v_item_status_summary` view (migration 007)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandbox_app.api import App, Request, Response


def routes(app: App) -> dict[tuple[str, str], Callable[[Request], Response]]:
    from sandbox_app.api import Response  # noqa: PLC0415 - api imports this module at start-up

    def summary(request: Request) -> Response:
        rows = app.query(
            "v_item_status_summary",
            "SELECT status, item_count, runs, avg_run_ms::float8 FROM v_item_status_summary"
            " ORDER BY status",
        )
        if isinstance(rows, Response):
            return rows
        keys = ("status", "item_count", "runs", "avg_run_ms")
        return Response(200, {"summary": [dict(zip(keys, row, strict=True)) for row in rows]})

    return {("GET", "/api/v1/reports/summary"): summary}
