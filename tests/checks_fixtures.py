"""Fixtures for the check engine tests: a small in-process HTTP application on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

TOKEN = "tok-7f3a9c2e51b84d06"  # what /login hands out; must never appear in results
PASSWORD = "hunter2-correct-horse"

METRICS = """# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{method="GET",code="200"} 1027
http_request_duration_seconds_bucket{le="0.1"} 900
http_request_duration_seconds_bucket{le="+Inf"} 1027
process_resident_memory_bytes 3.1e+07
"""


@dataclass
class AppState:
    limited_hits: int = 0
    flaky_hits: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Handler(BaseHTTPRequestHandler):
    state: AppState
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        """Quiet: tests read results, not access logs."""

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        for name, value in (headers or {"Content-Type": "application/json"}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        secure = {
            "Content-Type": "application/json",
            "X-Frame-Options": "DENY",
            "Strict-Transport-Security": "max-age=63072000",
        }
        path = self.path.split("?")[0]
        if path == "/health":
            self._send(200, {"status": "ok", "checks": {"database": {"status": "healthy"}}}, secure)
        elif path == "/degraded":
            self._send(503, {"status": "degraded", "checks": {"database": {"status": "down"}}})
        elif path == "/text":
            self._send(
                200, b"<html>not json</html>", {"Content-Type": "text/html", "Server": "x/1"}
            )
        elif path == "/slow":
            time.sleep(0.05)
            self._send(200, {"status": "ok"})
        elif path == "/hang":
            time.sleep(30)
            self._send(200, {})
        elif path == "/limited":
            with self.state.lock:
                self.state.limited_hits += 1
                over = self.state.limited_hits > 5
            self._send(429 if over else 200, {"limited": over})
        elif path == "/flaky":  # a fault: every fourth request answers 500
            with self.state.lock:
                self.state.flaky_hits += 1
                fault = self.state.flaky_hits % 4 == 0
            self._send(500 if fault else 200, {"fault": fault})
        elif path == "/me":
            ok = self.headers.get("Authorization") == f"Bearer {TOKEN}"
            self._send(200 if ok else 401, {"user": "alice"} if ok else {"error": "unauthorized"})
        elif path == "/echo-headers":  # what a proxy in front would pass: ?drop=, ?change=
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            received = {k: v for k, v in self.headers.items() if k not in query.get("drop", [])}
            received.update(dict.fromkeys(query.get("change", []), "rewritten-by-proxy"))
            self._send(200, {"data": {"headers": received}})
        elif path == "/metrics":
            self._send(200, METRICS.encode(), {"Content-Type": "text/plain; version=0.0.4"})
        elif path == "/bad-metrics":
            self._send(200, b"this is { not prometheus\n", {"Content-Type": "text/plain"})
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path == "/login" and body.get("password") == PASSWORD:
            self._send(200, {"access_token": TOKEN, "token_type": "bearer"})
        else:
            self._send(401, {"error": "bad credentials"})


@dataclass
class App:
    url: str
    state: AppState


@pytest.fixture
def http_app() -> Iterator[App]:
    """The application on a free 127.0.0.1 port, stopped after the test."""
    state = AppState()
    handler = type("BoundHandler", (Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield App(f"http://127.0.0.1:{server.server_address[1]}", state)
    finally:
        server.shutdown()
        server.server_close()
