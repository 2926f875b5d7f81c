"""LSOS's reverse proxy in front of the API (runbook 003 section 2: the proxy must pass
`Authorization` and `X-Request-ID` through), simulated: every request is forwarded to
`LSOS_PROXY_UPSTREAM` with its headers, except those named in `LSOS_PROXY_DROP_HEADERS`
(comma-separated), which a misconfigured proxy would lose. Standard library only.
"""

from __future__ import annotations

import http.client
import os
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LISTEN_PORT = 8081
UPSTREAM = urllib.parse.urlsplit(os.environ.get("LSOS_PROXY_UPSTREAM", "http://api:8080"))
DROPPED = {
    name.strip().lower()
    for name in os.environ.get("LSOS_PROXY_DROP_HEADERS", "").split(",")
    if name.strip()
}
# Hop-by-hop headers (RFC 9110 7.6.1) are the proxy's own, never forwarded.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"}


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # the name http.server dispatches to
        self.forward("GET")

    def do_POST(self) -> None:  # the name http.server dispatches to
        self.forward("POST")

    def forward(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {
            name: value
            for name, value in self.headers.items()
            if name.lower() not in DROPPED | HOP_BY_HOP
        }
        upstream = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port or 80, timeout=30)
        try:
            upstream.request(method, self.path, body=body, headers=headers)
            reply = upstream.getresponse()
            payload = reply.read()
        except OSError as exc:
            self.send_error(502, f"upstream: {exc}")
            return
        finally:
            upstream.close()
        self.send_response(reply.status)
        for name, value in reply.getheaders():
            if name.lower() not in HOP_BY_HOP | {"content-length"}:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:  # stdlib signature
        """No access log: the API logs each request."""


class Server(ThreadingHTTPServer):
    daemon_threads = True


if __name__ == "__main__":
    Server(("0.0.0.0", LISTEN_PORT), Proxy).serve_forever()  # all interfaces: inside its container
