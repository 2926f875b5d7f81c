"""Runbook 000 (Aragora staging) endpoints on the sandbox API, in its envelopes: `/api/health`,
`/api/health/detailed` (`checks.database.status`, `checks.redis.status`), `/api/ws/stats`,
`/api/auth/login` (email, password -> `access_token`), `/api/user/me` (a JWT or the staging
API key), `/api/debates` (dry run), `/api/audit/events`, `/api/billing/usage` and
`/api/audit/verify` (`{"valid": true, "errors": []}`); for runbook 001 (production readiness)
also `/api/rate-limits/config`, `/api/agents/circuit-breakers` and `GET /api/debates/d-1`."""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandbox_app.api import App, Request, Response


def routes(app: App) -> dict[tuple[str, str], Callable[[Request], Response]]:
    from sandbox_app.api import Response  # noqa: PLC0415 - api imports this module at start-up

    api_key = os.environ.get("ARAGORA_API_KEY", "")

    def caller(request: Request) -> str | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        if api_key and hmac.compare_digest(token, api_key):
            return "staging-api-key"
        return app.tokens.subject(token)

    def unauthorized() -> Response:
        return Response(401, {"error": "unauthorized"})

    def health(request: Request) -> Response:
        return Response(200, {"status": "healthy", "version": app.settings.release})

    def detailed(request: Request) -> Response:
        checks = {"database": app._check_database(), "redis": app._check_redis()}
        healthy = all(c["status"] == "healthy" for c in checks.values())
        return Response(200, {"status": "healthy" if healthy else "degraded", "checks": checks})

    def ws_stats(request: Request) -> Response:
        return Response(200, {"status": "running", "connections": 0})

    def login(request: Request) -> Response:
        data = request.json()
        email, password = str(data.get("email", "")), str(data.get("password", ""))
        good = hmac.compare_digest(email, app.admin_user) and bool(app.admin_password)
        if not (good and hmac.compare_digest(password, app.admin_password)):
            return Response(401, {"error": "invalid credentials"})
        return Response(200, {"access_token": app.tokens.issue(email), "token_type": "bearer"})

    def me(request: Request) -> Response:
        user = caller(request)
        return Response(200, {"user": user}) if user else unauthorized()

    def debates(request: Request) -> Response:
        if not caller(request):
            return unauthorized()
        data = request.json()
        return Response(201, {"debate_id": "d-1", "dry_run": bool(data.get("dry_run"))})

    def debate(request: Request) -> Response:
        return (
            Response(200, {"debate_id": "d-1", "status": "running"})
            if caller(request)
            else unauthorized()
        )

    def rate_limits(request: Request) -> Response:
        limits = {"per_token_per_minute": 100, "per_ip_per_minute": 200, "burst_multiplier": 2.0}
        return Response(200, {"limits": limits, "backend": "redis"})

    def circuit_breakers(request: Request) -> Response:
        return Response(
            200, [{"agent": "claude", "state": "closed"}, {"agent": "gpt-4", "state": "closed"}]
        )

    def audit_events(request: Request) -> Response:
        return Response(200, {"events": []}) if caller(request) else unauthorized()

    def usage(request: Request) -> Response:
        return Response(200, {"usage": []}) if caller(request) else unauthorized()

    def audit_verify(request: Request) -> Response:
        if not caller(request):
            return unauthorized()
        rows = app.query("audit_events", "SELECT count(*) FROM audit_events WHERE hash IS NULL")
        if isinstance(rows, Response):
            return rows
        broken = int(rows[0][0])
        errors = [f"{broken} audit event(s) without a hash"] if broken else []
        return Response(200, {"valid": not errors, "errors": errors})

    return {
        ("GET", "/api/health"): health,
        ("GET", "/api/health/detailed"): detailed,
        ("GET", "/api/ws/stats"): ws_stats,
        ("POST", "/api/auth/login"): login,
        ("GET", "/api/user/me"): me,
        ("POST", "/api/debates"): debates,
        ("GET", "/api/audit/events"): audit_events,
        ("GET", "/api/billing/usage"): usage,
        ("POST", "/api/audit/verify"): audit_verify,
        ("GET", "/api/debates/d-1"): debate,
        ("GET", "/api/rate-limits/config"): rate_limits,
        ("GET", "/api/agents/circuit-breakers"): circuit_breakers,
    }
