"""The webhook notifier POSTs the verdict summary to a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from stagegate.gatekeeper import GateRequest, run_gate

SECRET_HEADER = "hook-secret-55d1"


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]
    status = 204

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.received.append(
            {
                "path": self.path,
                "headers": dict(self.headers),
                "body": json.loads(self.rfile.read(length)),
            }
        )
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]], type[_Receiver]]]:
    handler = type("Handler", (_Receiver,), {"received": []})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", handler.received, handler
    finally:
        server.shutdown()
        server.server_close()


def _run(tmp_path: Path, url: str) -> Any:
    return run_gate(
        GateRequest(
            release="v2",
            previous="v1",
            report_dir=str(tmp_path),
            checks=[
                {"name": "api_health", "group": "infra", "type": "http", "status": "PASS"},
                {
                    "name": "migrations",
                    "group": "db",
                    "type": "sql",
                    "status": "FAIL",
                    "message": "schema_version 7, expected 8",
                },
            ],
            webhook={"url": url, "headers": {"X-Hook-Token": SECRET_HEADER}, "timeout": 5},
        )
    )


def test_webhook_receives_the_verdict_summary(tmp_path: Path, receiver: Any) -> None:
    url, received, _ = receiver
    outcome = _run(tmp_path, f"{url}/hooks/release")
    assert outcome.notify_errors == []
    assert len(received) == 1
    call = received[0]
    assert call["path"] == "/hooks/release"
    assert call["headers"]["Content-Type"] == "application/json"
    assert call["headers"]["X-Hook-Token"] == SECRET_HEADER
    body = call["body"]
    assert body["event"] == "stagegate.run_finished"
    assert body["verdict"] == "NO_GO"
    assert body["release"]["version"] == "v2"
    assert body["failed_checks"] == ["migrations"]
    assert body["reports"]["report.json"] == str(tmp_path / "report.json")
    for name in ("report.json", "report.md", "report.html", "junit.xml"):
        assert SECRET_HEADER not in (tmp_path / name).read_text()


def test_a_failing_webhook_is_reported_and_never_changes_the_verdict(
    tmp_path: Path, receiver: Any
) -> None:
    url, received, handler = receiver
    handler.status = 500
    outcome = _run(tmp_path, f"{url}/T0KEN-in-path")
    assert outcome.verdict == "NO_GO"
    assert len(received) == 1
    assert len(outcome.notify_errors) == 1
    assert "500" in outcome.notify_errors[0]
    assert "T0KEN-in-path" not in outcome.notify_errors[0]  # webhook paths may hold tokens
