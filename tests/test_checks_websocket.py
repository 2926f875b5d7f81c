"""The `websocket` check type (seed 001's `websocat` smoke test) against a real WebSocket
server: the `websockets` library's own threading server, on a free local port."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import free_port
from websockets.sync.server import ServerConnection, serve

from stagegate.catalog import CatalogError, load_catalog
from stagegate.engine import run_checks
from stagegate.plugins import Hooks, new_plugin_manager
from stagegate.results import CheckResult, Status

HOOKS = Hooks(new_plugin_manager(entry_points=False))
TOKEN = "ws-token-never-shown-8c1d"


def run(*entries: dict[str, Any]) -> list[CheckResult]:
    specs = load_catalog(
        [{"name": f"ws{i}", "type": "websocket", **e} for i, e in enumerate(entries)],
        HOOKS.check_types(),
    )
    return run_checks(specs, hooks=HOOKS)


def handler(ws: ServerConnection) -> None:
    """/events greets with a JSON status (and only with the bearer token); /echo echoes."""
    if ws.request is not None and ws.request.path == "/events":
        auth = ws.request.headers.get("Authorization", "")
        ws.send(json.dumps({"type": "welcome", "authenticated": auth == f"Bearer {TOKEN}"}))
        for _ in ws:  # keep the connection open until the client closes it
            pass
        return
    for message in ws:
        ws.send(f"echo: {message}")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    port = free_port()

    def choose(_: ServerConnection, offered: list[str]) -> str | None:
        return "graphql-ws" if "graphql-ws" in offered else None  # none: accepted, no subprotocol

    with serve(handler, "127.0.0.1", port, select_subprotocol=choose) as ws_server:
        thread = threading.Thread(target=ws_server.serve_forever, daemon=True)
        thread.start()
        yield f"ws://127.0.0.1:{port}"
        ws_server.shutdown()
    thread.join(timeout=10)


def test_handshake_ping_and_replies(server: str) -> None:
    echo, events, wrong_reply, bands = run(
        {"url": f"{server}/echo", "send": "hello", "reply_regex": ["^echo: hello$"]},
        {
            "url": f"{server}/events",
            "headers": {"Authorization": f"Bearer {TOKEN}"},
            "subprotocols": ["graphql-ws"],
            "json": ["type == 'welcome'", "authenticated"],
        },
        {"url": f"{server}/events", "json": ["authenticated"]},
        {"url": f"{server}/echo", "handshake_ms": {"pass": "<= 0.001ms", "warn": "<= 60s"}},
    )
    assert echo.status is Status.PASS, echo.message
    assert echo.details["reply"] == "echo: hello"
    assert echo.metrics["ping_ms"] >= 0
    assert events.status is Status.PASS, events.message
    assert "subprotocol graphql-ws" in events.message
    assert wrong_reply.status is Status.FAIL
    assert "JSON 'authenticated' is false" in wrong_reply.message
    assert bands.status is Status.WARN  # the handshake graded against its bands
    assert TOKEN not in json.dumps([r.to_dict() for r in (echo, events, wrong_reply, bands)])


def test_no_server_no_subprotocol_and_bad_options(server: str) -> None:
    down, unchosen, scheme = run(
        {"url": f"ws://127.0.0.1:{free_port()}/", "timeout": 3},
        {"url": f"{server}/echo", "subprotocols": ["mqtt"]},
        {"url": "http://127.0.0.1/"},
    )
    assert down.status is Status.ERROR
    assert "refused" in down.message.lower(), down.message
    assert unchosen.status is Status.FAIL
    assert "the server chose none of the subprotocols mqtt" in unchosen.message
    assert scheme.status is Status.ERROR
    assert "expected a ws:// or wss:// URL" in scheme.message
    with pytest.raises(CatalogError, match="option 'url' is required"):
        load_catalog([{"name": "w", "type": "websocket"}], HOOKS.check_types())
