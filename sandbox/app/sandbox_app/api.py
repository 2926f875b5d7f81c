"""The sandbox HTTP API: health, metrics, auth, items, and routes that later releases add."""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib
import importlib.util
import json
import os
import signal
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg2

from sandbox_app.common import (
    JOBS_QUEUE,
    ConnectionPool,
    Log,
    Settings,
    monotonic_ms,
    redis_client,
    start_service,
    table_exists,
)

LISTEN_PORT = 8080
TOKEN_TTL_SECONDS = 3600
ITEMS_CACHE_KEY = "sandbox:items:list"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "Referrer-Policy": "no-referrer",
}
# A faulty release "forgets" the headers a clickjacking/XSS check looks for first.
HEADERS_DROPPED_BY_FAULT = ("X-Frame-Options", "Content-Security-Policy")
# Routes shipped by later releases: present in the image only from the release that adds them.
# `shape` is a runbook target's endpoints and envelopes (sandbox/targets/<runbook>/), never in
# the sandbox's own image.
OPTIONAL_ROUTE_MODULES = ("sandbox_app.reporting", "sandbox_app.shape")


class Response:
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers or {}


class Metrics:
    """Prometheus counters and a latency histogram per route, exposed in text format 0.0.4."""

    def __init__(self, service: str, release: str) -> None:
        self.service = service
        self.release = release
        self.lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.buckets: dict[str, list[int]] = defaultdict(lambda: [0] * len(LATENCY_BUCKETS))
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self.rate_limited = 0

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self.lock:
            self.requests[(method, route, status)] += 1
            for index, bound in enumerate(LATENCY_BUCKETS):
                if seconds <= bound:
                    self.buckets[route][index] += 1
            self.sums[route] += seconds
            self.counts[route] += 1
            if status == 429:
                self.rate_limited += 1

    def render(self) -> str:
        lines = [
            "# HELP app_info Release of the running service.",
            "# TYPE app_info gauge",
            f'app_info{{service="{self.service}",version="{self.release}"}} 1',
            "# HELP http_requests_total HTTP requests by method, route and status.",
            "# TYPE http_requests_total counter",
        ]
        with self.lock:
            for (method, route, status), count in sorted(self.requests.items()):
                labels = f'method="{method}",route="{route}",status="{status}"'
                lines.append(f"http_requests_total{{{labels}}} {count}")
            lines += [
                "# HELP http_request_duration_seconds HTTP request latency by route.",
                "# TYPE http_request_duration_seconds histogram",
            ]
            for route in sorted(self.counts):
                for bound, count in zip(LATENCY_BUCKETS, self.buckets[route], strict=True):
                    labels = f'route="{route}",le="{bound}"'
                    lines.append(f"http_request_duration_seconds_bucket{{{labels}}} {count}")
                total = self.counts[route]
                lines += [
                    f'http_request_duration_seconds_bucket{{route="{route}",le="+Inf"}} {total}',
                    f'http_request_duration_seconds_sum{{route="{route}"}} {self.sums[route]:.6f}',
                    f'http_request_duration_seconds_count{{route="{route}"}} {total}',
                ]
            lines += [
                "# HELP http_rate_limited_total Requests refused with 429.",
                "# TYPE http_rate_limited_total counter",
                f"http_rate_limited_total {self.rate_limited}",
            ]
        return "\n".join(lines) + "\n"


class RateLimiter:
    """At most `per_second` requests per client address in each one-second window (0: off)."""

    def __init__(self, per_second: int) -> None:
        self.per_second = per_second
        self.lock = threading.Lock()
        self.windows: dict[str, tuple[int, int]] = {}

    def allow(self, client: str) -> bool:
        if self.per_second <= 0:
            return True
        second = int(time.monotonic())
        with self.lock:
            window, count = self.windows.get(client, (second, 0))
            if window != second:
                window, count = second, 0
            self.windows[client] = (window, count + 1)
            return count < self.per_second


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Tokens:
    """HS256 JSON Web Tokens with the standard library."""

    def __init__(self, secret: str) -> None:
        self.key = secret.encode()

    def issue(self, subject: str) -> str:
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        claims = {
            "sub": subject,
            "iat": int(time.time()),
            "exp": int(time.time()) + TOKEN_TTL_SECONDS,
        }
        payload = _b64(json.dumps(claims).encode())
        return f"{header}.{payload}.{self._sign(f'{header}.{payload}')}"

    def subject(self, token: str) -> str | None:
        """The token's subject when the signature is good and it has not expired."""
        try:
            header, payload, signature = token.split(".")
            if not hmac.compare_digest(signature, self._sign(f"{header}.{payload}")):
                return None
            claims = json.loads(_unb64(payload))
            return str(claims["sub"]) if claims["exp"] > time.time() else None
        except (ValueError, KeyError, TypeError):
            return None

    def _sign(self, message: str) -> str:
        return _b64(hmac.new(self.key, message.encode(), hashlib.sha256).digest())


class App:
    """Routes and the state they share; one instance per process."""

    def __init__(self, settings: Settings, log: Log) -> None:
        self.settings = settings
        self.log = log
        self.started = time.monotonic()
        self.metrics = Metrics(settings.service, settings.release)
        self.db = ConnectionPool(settings)
        self.cache = redis_client(settings)  # thread-safe, keeps its own connection pool
        self.limiter = RateLimiter(int(os.environ.get("SANDBOX_RATE_LIMIT_RPS") or 20))
        self.tokens = Tokens(os.environ.get("SANDBOX_JWT_SECRET", ""))
        self.admin_user = os.environ.get("SANDBOX_ADMIN_USER", "admin")
        self.admin_password = os.environ.get("SANDBOX_ADMIN_PASSWORD", "")
        self.routes: dict[tuple[str, str], Callable[[Request], Response]] = {
            ("GET", "/health/live"): self.live,
            ("GET", "/health/ready"): self.ready,
            ("GET", "/metrics"): self.render_metrics,
            ("GET", "/version"): self.version,
            ("POST", "/api/v1/auth/login"): self.login,
            ("GET", "/api/v1/me"): self.me,
            ("GET", "/api/v1/items"): self.list_items,
            ("POST", "/api/v1/items"): self.create_item,
        }
        for name in OPTIONAL_ROUTE_MODULES:
            if importlib.util.find_spec(name) is not None:
                self.routes.update(importlib.import_module(name).routes(self))

    def live(self, request: Request) -> Response:
        return Response(200, {"status": "alive", "service": self.settings.service})

    def ready(self, request: Request) -> Response:
        remaining = self.settings.slow_start_seconds - (time.monotonic() - self.started)
        if "slow_start" in self.settings.faults and remaining > 0:
            return Response(503, {"status": "starting", "ready_in_seconds": round(remaining, 1)})
        checks = {"database": self._check_database(), "redis": self._check_redis()}
        healthy = all(check["status"] == "healthy" for check in checks.values())
        if not healthy:
            failing = ",".join(
                name for name, check in checks.items() if check["status"] != "healthy"
            )
            self.log.error("readiness check failed", dependencies=failing)
        body = {
            "status": "healthy" if healthy else "unhealthy",
            "version": self.settings.release,
            "checks": checks,
        }
        return Response(200 if healthy else 503, body)

    def _check_database(self) -> dict[str, Any]:
        if "unhealthy" in self.settings.faults:
            return {"status": "unhealthy", "error": "connection refused (fault switch unhealthy)"}
        start = time.monotonic()
        try:
            with self.db.connection() as conn, conn.cursor() as cur:
                cur.execute("SELECT 1")
        except psycopg2.Error as exc:
            return self._unhealthy("database", exc)
        return {"status": "healthy", "latency_ms": monotonic_ms(start)}

    def _check_redis(self) -> dict[str, Any]:
        start = time.monotonic()
        try:
            self.cache.ping()
        except Exception as exc:  # any client failure means "not ready"
            return self._unhealthy("redis", exc)
        return {"status": "healthy", "latency_ms": monotonic_ms(start)}

    def _unhealthy(self, dependency: str, exc: Exception) -> dict[str, Any]:
        self.log.error(f"{dependency} unreachable", detail=str(exc).strip())
        return {"status": "unhealthy", "error": type(exc).__name__}

    def render_metrics(self, request: Request) -> Response:
        return Response(200, self.metrics.render(), {"Content-Type": "text/plain; version=0.0.4"})

    def version(self, request: Request) -> Response:
        body = {
            "version": self.settings.release,
            "service": self.settings.service,
            "python": sys.version.split()[0],
            "uptime_seconds": round(time.monotonic() - self.started, 1),
        }
        return Response(200, body)

    def login(self, request: Request) -> Response:
        data = request.json()
        username, password = str(data.get("username", "")), str(data.get("password", ""))
        good_user = hmac.compare_digest(username, self.admin_user)
        good_password = bool(self.admin_password) and hmac.compare_digest(
            password, self.admin_password
        )
        if not (good_user and good_password):
            self.log.warning("login refused", user=username)
            return Response(401, {"detail": "invalid credentials"})
        return Response(
            200,
            {
                "access_token": self.tokens.issue(username),
                "token_type": "bearer",
                "expires_in": TOKEN_TTL_SECONDS,
            },
        )

    def me(self, request: Request) -> Response:
        user = self._user(request)
        if user is None:
            return _unauthorized()
        return Response(200, {"username": user, "role": "admin"})

    def list_items(self, request: Request) -> Response:
        cached = self.cache.get(ITEMS_CACHE_KEY)
        if cached is not None:
            return Response(200, json.loads(cached), {"X-Cache": "hit"})
        rows = self.query(
            "items", "SELECT id, name, status, created_at::text FROM items ORDER BY id LIMIT 100"
        )
        if isinstance(rows, Response):
            return rows
        body = {
            "items": [
                dict(zip(("id", "name", "status", "created_at"), row, strict=True)) for row in rows
            ]
        }
        self.cache.setex(ITEMS_CACHE_KEY, 5, json.dumps(body))
        return Response(200, body, {"X-Cache": "miss"})

    def create_item(self, request: Request) -> Response:
        if self._user(request) is None:
            return _unauthorized()
        name = str(request.json().get("name", "")).strip()
        if not name:
            return Response(422, {"detail": "field 'name' is required"})
        rows = self.query("items", "INSERT INTO items (name) VALUES (%s) RETURNING id", (name,))
        if isinstance(rows, Response):
            return rows
        item_id = rows[0][0]
        self.cache.delete(ITEMS_CACHE_KEY)
        self.cache.lpush(JOBS_QUEUE, str(item_id))
        return Response(201, {"id": item_id, "name": name, "status": "queued"})

    def query(self, table: str, sql: str, params: tuple[Any, ...] = ()) -> list[Any] | Response:
        """Rows of `sql`, or the error response when the schema or the database is not there."""
        if "http_500" in self.settings.faults:
            return self.server_error(
                "unhandled exception in data endpoint", "fault switch http_500"
            )
        try:
            with self.db.connection() as conn:
                if not table_exists(conn, table):
                    self.log.error("schema not migrated", missing_table=table)
                    return Response(503, {"detail": f"table {table} missing: migrations pending"})
                with conn.cursor() as cur:
                    cur.execute(sql, params)
                    return list(cur.fetchall())
        except psycopg2.Error as exc:
            return self.server_error("database query failed", str(exc).strip())

    def server_error(self, what: str, detail: object) -> Response:
        self.log.error(what, detail=detail)
        return Response(500, {"detail": "internal server error"})

    def _user(self, request: Request) -> str | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return self.tokens.subject(token) if scheme.lower() == "bearer" and token else None


def _unauthorized() -> Response:
    return Response(401, {"detail": "not authenticated"}, {"WWW-Authenticate": "Bearer"})


class Request(BaseHTTPRequestHandler):
    app: App  # set on the subclass made in serve()
    protocol_version = "HTTP/1.1"
    server_version = "sandbox-api"

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:  # the name http.server dispatches to
        self.handle_request("GET")

    def do_POST(self) -> None:  # the name http.server dispatches to
        self.handle_request("POST")

    def json(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            data = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def handle_request(self, method: str) -> None:
        start = time.monotonic()
        path = self.path.split("?", 1)[0]
        handler = self.app.routes.get((method, path))
        route = path if handler else "unmatched"
        if path.startswith("/api/") and not self.app.limiter.allow(self.client_address[0]):
            response = Response(429, {"detail": "rate limit exceeded"}, {"Retry-After": "1"})
        elif handler is None:
            response = Response(404, {"detail": "not found"})
        else:
            if "slow_responses" in self.app.settings.faults:
                time.sleep(self.app.settings.slow_ms / 1000)
            try:
                response = handler(self)
            except Exception as exc:  # a request must never kill the server
                response = self.app.server_error(f"unhandled exception in {route}", repr(exc))
        self.send(response)
        seconds = time.monotonic() - start
        self.app.metrics.observe(method, route, response.status, seconds)
        self.app.log.info(
            "request",
            method=method,
            path=path,
            status=response.status,
            duration_ms=round(seconds * 1000, 2),
        )

    def send(self, response: Response) -> None:
        if isinstance(response.body, str):
            payload, content_type = response.body.encode(), "text/plain; charset=utf-8"
        else:
            payload, content_type = (
                json.dumps(response.body, default=str).encode(),
                "application/json",
            )
        headers = {"Content-Type": content_type, **SECURITY_HEADERS, **response.headers}
        if "no_security_headers" in self.app.settings.faults:
            for name in HEADERS_DROPPED_BY_FAULT:
                headers.pop(name, None)
        self.send_response(response.status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # stdlib signature
        """Silence http.server's own access log; handle_request logs structured lines."""


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # A burst of concurrent clients (a latency series, `ab -c 10`) on a busy host must queue,
    # not be refused: the listen backlog of socketserver's default (5) overflows.
    request_queue_size = 64

    def __init__(self, app: App) -> None:
        self.app = app
        super().__init__(("0.0.0.0", LISTEN_PORT), type("BoundRequest", (Request,), {"app": app}))

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (a probe's timeout) is not a server error: one WARNING line."""
        exc = sys.exc_info()[1]
        self.app.log.warning("request aborted", client=client_address[0], detail=repr(exc))


def serve() -> None:
    settings, log = start_service("api")
    app = App(settings, log)
    server = Server(app)
    # PID 1 in a container ignores SIGTERM unless it handles it; stop promptly on `compose stop`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    log.info("listening", port=LISTEN_PORT, routes=len(app.routes))
    server.serve_forever()


if __name__ == "__main__":
    serve()
