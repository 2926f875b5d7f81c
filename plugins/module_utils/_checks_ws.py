# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The `websocket` check type (seed 001's `websocat` smoke test): the opening handshake, a ping
answered, optionally a message sent and the reply matched (regex, JMESPath on JSON).

It uses the `websockets` library (its threading client, `websockets.sync.client`), a
dependency of the stagegate-release distribution on the controller; on a deploy host
(`run_on: host`) it must be installed there, else the check is an ERROR that says so.
"""

from __future__ import annotations

import importlib.util
import json
import re
import ssl
import time
from typing import Any

from ansible_collections.stagegate.release.plugins.module_utils._checks_common import (
    Assertions,
    CheckError,
    CheckType,
    Outcome,
    RunContext,
)
from ansible_collections.stagegate.release.plugins.module_utils._checks_http import search

HAS_WEBSOCKETS = importlib.util.find_spec("websockets") is not None


def _client() -> Any:
    if not HAS_WEBSOCKETS:
        raise CheckError(
            "the websockets library is required for websocket checks "
            "(pip install 'websockets>=15' where the check runs)"
        )
    import websockets.exceptions  # noqa: PLC0415
    import websockets.sync.client  # noqa: PLC0415

    return websockets


def _ssl_context(opts: dict[str, Any]) -> ssl.SSLContext | None:
    if not opts["url"].startswith("wss://"):
        return None
    context = ssl.create_default_context(cafile=opts.get("ca_file"))
    if not opts["validate_certs"]:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _message(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _expect_reply(checks: Assertions, opts: dict[str, Any], reply: str) -> None:
    for pattern in opts.get("reply_regex") or []:
        checks.expect(
            re.search(pattern, reply) is not None,
            f"reply ~ {pattern}",
            f"reply does not match {pattern!r}; starts with {reply[:80]!r}",
        )
    if opts.get("json"):
        try:
            document = json.loads(reply)
        except ValueError:
            raise CheckError(f"reply is not JSON; starts with {reply[:80]!r}") from None
        for expression in opts["json"]:
            found = search(expression, document)
            checks.expect(bool(found), expression, f"JSON {expression!r} is {json.dumps(found)}")


def _exchange(ws: Any, opts: dict[str, Any], ctx: RunContext, outcome: Outcome) -> str | None:
    """Ping, then the message and its reply (None when nothing is awaited)."""
    started = time.monotonic()
    if not ws.ping().wait(ctx.timeout):
        raise CheckError(f"no pong within {ctx.timeout:g}s")
    outcome.measure("ping_ms", (time.monotonic() - started) * 1000, "ms", opts.get("ping_ms"))
    if opts.get("send") is not None:
        ws.send(_message(opts["send"]))
    if opts.get("send") is None and not opts.get("reply_regex") and not opts.get("json"):
        return None
    started = time.monotonic()
    reply = ws.recv(timeout=ctx.timeout)
    outcome.measure("reply_ms", (time.monotonic() - started) * 1000, "ms")
    return reply if isinstance(reply, str) else reply.decode("utf-8", "replace")


def run_websocket(opts: dict[str, Any], ctx: RunContext) -> Outcome:
    if not opts["url"].lower().startswith(("ws://", "wss://")):
        raise CheckError(f"url {opts['url']!r}: expected a ws:// or wss:// URL")
    websockets = _client()  # headers with secret-looking names are redacted by the engine
    measured = Outcome("PASS")
    started = time.monotonic()
    try:
        with websockets.sync.client.connect(
            opts["url"],
            additional_headers=opts.get("headers") or None,
            subprotocols=opts.get("subprotocols") or None,
            ssl=_ssl_context(opts),
            open_timeout=ctx.timeout,
            close_timeout=min(ctx.timeout, 5),
        ) as ws:
            measured.measure(
                "handshake_ms", (time.monotonic() - started) * 1000, "ms", opts.get("handshake_ms")
            )
            subprotocol = ws.subprotocol
            reply = _exchange(ws, opts, ctx, measured)
    except TimeoutError:
        raise CheckError(f"{opts['url']}: no answer within {ctx.timeout:g}s") from None
    except (OSError, websockets.exceptions.WebSocketException) as exc:
        raise CheckError(f"{opts['url']}: {type(exc).__name__}: {exc}") from None
    checks = Assertions()
    if opts.get("subprotocols"):
        checks.expect(
            subprotocol is not None,
            f"subprotocol {subprotocol}",
            f"the server chose none of the subprotocols {', '.join(opts['subprotocols'])}",
        )
    if reply is not None:
        _expect_reply(checks, opts, reply)
        measured.details["reply"] = reply[:500]
    return checks.outcome(
        ", ".join(["connected", *checks.passed]),
        value=measured.metrics.get("handshake_ms"),
        metrics=measured.metrics,
        details=measured.details,
        measurements=measured.measurements,
    )


WEBSOCKET = CheckType(
    name="websocket",
    description="a WebSocket opening handshake and a ping answered; optionally a message sent "
    "and its reply matched (regex, JMESPath on JSON); handshake and ping times against bands",
    options={
        "url": {"type": "str", "required": True, "description": "ws:// or wss:// URL"},
        "headers": {
            "type": "dict",
            "default": {},
            "description": "handshake request headers (secret ones redacted)",
        },
        "subprotocols": {
            "type": "list",
            "elements": "str",
            "default": [],
            "description": "offered; the server must choose one",
        },
        "validate_certs": {"type": "bool", "default": True},
        "ca_file": {"type": "str"},
        "send": {
            "type": "raw",
            "description": "a message to send after the handshake (a "
            "mapping or list is sent as JSON); its first reply is matched",
        },
        "reply_regex": {
            "type": "list",
            "elements": "regex",
            "default": [],
            "description": "regexes the first message received must match",
        },
        "json": {
            "type": "list",
            "elements": "str",
            "default": [],
            "description": "JMESPath expressions over the first message received (JSON) "
            "that must be truthy",
        },
        "handshake_ms": {"type": "bands", "description": "bands for the handshake time"},
        "ping_ms": {"type": "bands", "description": "bands for the ping round trip"},
    },
    run=run_websocket,
    # a message sent may change something: only a connect, ping and read runs in check mode
    read_only=lambda opts: opts.get("send") is None,
)
