"""Runbook 004 (AC-6 staging validation) endpoints on the sandbox API.

`AC6_ROLE` picks what a container is: `api` (the AI Agents API: `/health` with its
`dependencies`, `/docs`, `/metrics/`, CORS headers, 404s with a `detail` field,
`/webhook/servicedesk`, `/api/auth/login`, `/api/agents`) or a monitoring service's health
endpoint: `prometheus` (`/-/healthy`, `/api/v1/targets`), `grafana` (`/api/health`) or
`jaeger` (`/`). `AC6_WEBHOOK_STATUS` is what the webhook answers without a signature (401 as
expected; the report found 500).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandbox_app.api import App, Request, Response

CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "GET, POST"}


def routes(app: App) -> dict[tuple[str, str], Callable[[Request], Response]]:
    from sandbox_app.api import Response  # noqa: PLC0415 - api imports this module at start-up

    role = os.environ.get("AC6_ROLE", "api")
    webhook_status = int(os.environ.get("AC6_WEBHOOK_STATUS") or 401)

    def health(request: Request) -> Response:
        checks = {"database": app._check_database(), "redis": app._check_redis()}
        dependencies = {name: check["status"] for name, check in checks.items()}
        healthy = all(status == "healthy" for status in dependencies.values())
        body = {
            "status": "healthy" if healthy else "unhealthy",
            "service": "AI Agents",
            "dependencies": dependencies,
        }
        return Response(200 if healthy else 503, body, CORS)

    def docs(request: Request) -> Response:
        page = "<html><head><title>Swagger UI</title></head><body>swagger-ui</body></html>"
        return Response(200, page, {"Content-Type": "text/html"})

    def webhook(request: Request) -> Response:
        if webhook_status >= 500:
            return app.server_error("webhook processing failed", "signature check crashed")
        return Response(webhook_status, {"detail": "missing signature"})

    def agents(request: Request) -> Response:
        if app._user(request) is None:
            return Response(401, {"detail": "not authenticated"})
        return Response(200, {"agents": [{"name": "developer"}]})

    def ok(body: object) -> Callable[[Request], Response]:
        return lambda request: Response(200, body)

    by_role: dict[str, dict[tuple[str, str], Callable[[Request], Response]]] = {
        "api": {
            ("GET", "/health"): health,
            ("GET", "/docs"): docs,
            ("GET", "/metrics/"): app.render_metrics,
            ("POST", "/webhook/servicedesk"): webhook,
            ("POST", "/api/auth/login"): app.login,
            ("GET", "/api/agents"): agents,
        },
        "prometheus": {
            ("GET", "/-/healthy"): ok("Prometheus Server is Healthy.\n"),
            ("GET", "/api/v1/targets"): ok(
                {
                    "status": "success",
                    "data": {
                        "activeTargets": [
                            {"labels": {"job": "fastapi-app"}, "health": "up"},
                            {"labels": {"job": "fastapi-app"}, "health": "up"},
                        ]
                    },
                }
            ),
        },
        "grafana": {("GET", "/api/health"): ok({"database": "ok", "version": "10.2.0"})},
        "jaeger": {("GET", "/"): ok("<html><title>Jaeger UI</title></html>")},
    }
    return by_role[role]
