"""A fleet host's application: the catalog endpoints the sandbox API serves, standard library only.

    python3 app.py PORT ROOT

Runs inside each fleet host container (tests/fleet_fixtures.py) beside sshd. ROOT is the host's
own /srv/stagegate: the release it answers with is ROOT/checkout/.stagegate-release, and the fault
switch is the file ROOT/fault, read on every request (`unhealthy`: /health/ready answers 503;
`no_headers`: the security headers are left out), so a test flips a host's health without
restarting anything.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(sys.argv[2] if len(sys.argv) > 2 else "/srv/stagegate")
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'",
    "Strict-Transport-Security": "max-age=31536000",
    "Referrer-Policy": "no-referrer",
}


def _read(name: str) -> str:
    try:
        return (ROOT / name).read_text().strip()
    except OSError:
        return ""


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: object, content_type: str = "application/json") -> None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if _read("fault") != "no_headers":
            for key, value in SECURITY_HEADERS.items():
                self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        release, fault = _read("checkout/.stagegate-release"), _read("fault")
        if self.path == "/health/live":
            self._send(200, {"status": "alive"})
        elif self.path == "/health/ready":
            healthy = fault != "unhealthy"
            self._send(
                200 if healthy else 503,
                {"status": "healthy" if healthy else "unhealthy", "release": release},
            )
        elif self.path == "/version":
            self._send(200, {"release": release})
        elif self.path == "/api/v1/items":
            self._send(200, {"items": [{"id": 1, "name": "first"}]})
        elif self.path == "/metrics":
            text = f'# TYPE app_up gauge\napp_up{{release="{release}"}} 1\n'
            self._send(200, text, "text/plain; version=0.0.4")
        else:
            self._send(404, {"error": "not found"})


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
