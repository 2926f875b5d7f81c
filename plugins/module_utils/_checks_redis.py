# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The `redis` check type: PING, the keyspace hit rate and CONFIG values, over a small RESP
client on a plain socket (standard library only: no redis library needed on either side)."""

from __future__ import annotations

import re
import socket
from typing import Any

from ansible_collections.stagegate.release.plugins.module_utils._checks_common import (
    Assertions,
    CheckError,
    CheckType,
    Outcome,
    RunContext,
)
from ansible_collections.stagegate.release.plugins.module_utils._checks_net import connect


class RespClient:
    """Just enough RESP2 to send commands and read simple, error, integer and bulk replies."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = sock.makefile("rb")

    def command(self, *args: str) -> Any:
        payload = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
        self.sock.sendall(payload.encode())
        return self._reply()

    def _reply(self) -> Any:
        line = self.reader.readline()
        if not line:
            raise CheckError("redis closed the connection")
        kind, body = line[:1], line[1:].rstrip(b"\r\n").decode()
        if kind == b"+":
            return body
        if kind == b"-":
            raise CheckError(f"redis error: {body}")
        if kind == b":":
            return int(body)
        if kind == b"$":
            size = int(body)
            return None if size < 0 else self.reader.read(size + 2)[:-2].decode()
        if kind == b"*":
            return [self._reply() for _ in range(int(body))]
        raise CheckError(f"unexpected redis reply {line[:40]!r}")


def parse_info(text: str) -> dict[str, str]:
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


# CONFIG parameters whose values are credentials: read and compared, never shown.
_SECRET_CONFIG = re.compile(r"pass|auth|secret|user", re.IGNORECASE)


def config_values(client: RespClient, names: list[str]) -> dict[str, str | None]:
    """CONFIG GET of each name (one call each: Redis before 7 takes one pattern per call);
    None for a parameter the server does not have."""
    values: dict[str, str | None] = {}
    for name in names:
        reply = client.command("CONFIG", "GET", name)
        pairs = dict(zip(reply[::2], reply[1::2])) if isinstance(reply, list) else {}
        values[name] = pairs.get(name)
    return values


def _expect_config(
    checks: Assertions, outcome: Outcome, opts: dict[str, Any], values: dict[str, str | None]
) -> None:
    for name, pattern in (opts.get("config") or {}).items():
        value = values.get(name)
        shown = "***" if _SECRET_CONFIG.search(name) else repr(value)
        if checks.expect(value is not None, f"{name} exists", f"CONFIG {name}: no such parameter"):
            checks.expect(
                re.fullmatch(str(pattern), value or "") is not None,
                f"{name} {shown}",
                f"CONFIG {name} is {shown}, expected {str(pattern)!r}",
            )
    for name, bands in (opts.get("config_bands") or {}).items():
        value = values.get(name)
        try:
            number = float(value or "")
        except ValueError:
            checks.expect(False, name, f"CONFIG {name} is {value!r}, expected a number")
            continue
        outcome.measure(f"config.{name}", number, "b" if "memory" in name else "", bands)
    outcome.details["config"] = {
        n: ("***" if _SECRET_CONFIG.search(n) else v) for n, v in values.items()
    }


def run_redis(opts: dict[str, Any], ctx: RunContext) -> Outcome:
    sock, elapsed = connect(opts["host"], opts["port"], ctx.timeout)
    names = list(dict.fromkeys([*(opts.get("config") or {}), *(opts.get("config_bands") or {})]))
    try:
        client = RespClient(sock)
        if opts.get("password"):
            user = [opts["username"]] if opts.get("username") else []
            client.command("AUTH", *user, opts["password"])
        pong = client.command("PING")
        stats = parse_info(client.command("INFO", "stats"))
        values = config_values(client, names)
    except (OSError, TimeoutError) as exc:
        raise CheckError(f"redis {opts['host']}:{opts['port']}: {exc}") from None
    finally:
        sock.close()
    for name, value in values.items():
        if value and _SECRET_CONFIG.search(name):
            ctx.redactor.add(value)
    checks = Assertions()
    checks.expect(pong == "PONG", "PONG", f"PING answered {pong!r}, expected PONG")
    hits, misses = int(stats.get("keyspace_hits", 0)), int(stats.get("keyspace_misses", 0))
    measured = Outcome("PASS")
    if names:
        _expect_config(checks, measured, opts, values)
    outcome = checks.outcome(
        ", ".join([f"PING {pong}", *checks.passed[1:]]),
        value=pong,
        details=measured.details,
        measurements=measured.measurements,
        metrics=measured.metrics,
    )
    outcome.measure("ping_ms", elapsed, "ms")
    if hits + misses:
        rate = 100.0 * hits / (hits + misses)
        outcome.measure("hit_rate", rate, "%", opts.get("hit_rate"))
        outcome.message += f", hit rate {rate:.1f}% ({hits} hits, {misses} misses)"
    elif opts.get("hit_rate") is not None:
        outcome.message += ", no keyspace lookups yet: hit rate not graded"
    return outcome


REDIS = CheckType(
    name="redis",
    description="Redis answers PING; keyspace hit rate graded against bands; CONFIG values "
    "(maxmemory, maxmemory-policy, save) matched or graded",
    options={
        "host": {"type": "str", "default": "127.0.0.1"},
        "port": {"type": "int", "default": 6379},
        "username": {"type": "str"},
        "password": {"type": "str", "no_log": True},
        "hit_rate": {"type": "bands", "description": "e.g. {pass: '>= 80%', warn: '>= 50%'}"},
        "config": {
            "type": "dict",
            "default": {},
            "description": "CONFIG parameter -> regex its value must fullmatch, e.g. "
            "{maxmemory-policy: allkeys-lru, save: '.+'}",
        },
        "config_bands": {
            "type": "dict",
            "default": {},
            "description": "CONFIG parameter -> bands for its number, e.g. {maxmemory: "
            "'>= 256mb'} (a parameter named *memory* is in bytes)",
        },
    },
    run=run_redis,
)
