# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The `redis` check type: PING and the keyspace hit rate, over a small RESP client on a
plain socket (standard library only: no redis library needed on either side)."""

from __future__ import annotations

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


def run_redis(opts: dict[str, Any], ctx: RunContext) -> Outcome:
    sock, elapsed = connect(opts["host"], opts["port"], ctx.timeout)
    try:
        client = RespClient(sock)
        if opts.get("password"):
            user = [opts["username"]] if opts.get("username") else []
            client.command("AUTH", *user, opts["password"])
        pong = client.command("PING")
        stats = parse_info(client.command("INFO", "stats"))
    except (OSError, TimeoutError) as exc:
        raise CheckError(f"redis {opts['host']}:{opts['port']}: {exc}") from None
    finally:
        sock.close()
    checks = Assertions()
    checks.expect(pong == "PONG", "PONG", f"PING answered {pong!r}, expected PONG")
    hits, misses = int(stats.get("keyspace_hits", 0)), int(stats.get("keyspace_misses", 0))
    outcome = checks.outcome(f"PING {pong}", value=pong)
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
    description="Redis answers PING; keyspace hit rate graded against bands",
    options={
        "host": {"type": "str", "default": "127.0.0.1"},
        "port": {"type": "int", "default": 6379},
        "username": {"type": "str"},
        "password": {"type": "str", "no_log": True},
        "hit_rate": {"type": "bands", "description": "e.g. {pass: '>= 80%', warn: '>= 50%'}"},
    },
    run=run_redis,
)
