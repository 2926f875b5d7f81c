# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Network check types: `tcp` (connect within a timeout) and `tls` (protocol version,
certificate expiry graded against bands, hostname verification). Standard library only."""

from __future__ import annotations

import socket
import ssl
import time
from typing import Any

from ansible_collections.stagegate.release.plugins.module_utils._checks_common import (
    PASS,
    Assertions,
    CheckError,
    CheckType,
    Outcome,
    RunContext,
)


def connect(host: str, port: int, timeout: float) -> tuple[socket.socket, float]:
    started = time.perf_counter()
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror as exc:
        raise CheckError(f"{host}:{port}: DNS lookup failed: {exc}") from None
    except TimeoutError:
        raise CheckError(f"{host}:{port}: no connection within {timeout:g}s") from None
    except OSError as exc:
        raise CheckError(f"{host}:{port}: cannot connect: {exc.strerror or exc}") from None
    return sock, (time.perf_counter() - started) * 1000


def run_tcp(opts: dict[str, Any], ctx: RunContext) -> Outcome:
    sock, elapsed = connect(opts["host"], opts["port"], ctx.timeout)
    sock.close()
    outcome = Outcome(PASS, f"{opts['host']}:{opts['port']} accepts connections")
    outcome.measure("connect_ms", elapsed, "ms", opts.get("connect_ms"))
    return outcome


TCP = CheckType(
    name="tcp",
    description="a TCP connection is accepted within the timeout",
    options={
        "host": {"type": "str", "required": True},
        "port": {"type": "int", "required": True},
        "connect_ms": {"type": "bands", "description": "bands for the connect time"},
    },
    run=run_tcp,
)

_VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}


def _peer_certificate(opts: dict[str, Any], timeout: float) -> tuple[dict[str, Any], str, str]:
    """(decoded certificate, protocol version, verification error or '')."""
    context = ssl.create_default_context(cafile=opts.get("ca_file"))
    context.minimum_version = _VERSIONS[opts["min_version"]]
    server_name = opts.get("server_name") or opts["host"]
    sock, _ = connect(opts["host"], opts["port"], timeout)
    verify_error = ""
    try:
        with context.wrap_socket(sock, server_hostname=server_name) as tls:
            return tls.getpeercert() or {}, tls.version() or "", ""
    except ssl.SSLCertVerificationError as exc:
        verify_error = exc.verify_message or str(exc)
    except ssl.SSLError as exc:
        raise CheckError(
            f"TLS handshake with {opts['host']}:{opts['port']} failed "
            f"(minimum {opts['min_version']}): {exc.reason or exc}"
        ) from None
    finally:
        sock.close()
    # Verification failed: read the certificate anyway so the report can say why.
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    sock, _ = connect(opts["host"], opts["port"], timeout)
    with unverified.wrap_socket(sock, server_hostname=server_name) as tls:
        der = tls.getpeercert(binary_form=True)
        version = tls.version() or ""
    return _decode_der(der), version, verify_error


def _decode_der(der: bytes | None) -> dict[str, Any]:
    """Only the expiry is needed from an unverified certificate: ssl exposes it via PEM."""
    if not der:
        return {}
    import tempfile  # noqa: PLC0415 - only on the rare unverified path

    with tempfile.NamedTemporaryFile("w", suffix=".pem") as pem:
        pem.write(ssl.DER_cert_to_PEM_cert(der))
        pem.flush()
        return ssl._ssl._test_decode_cert(pem.name)  # type: ignore[attr-defined]


def run_tls(opts: dict[str, Any], ctx: RunContext) -> Outcome:
    cert, version, verify_error = _peer_certificate(opts, ctx.timeout)
    checks = Assertions()
    if opts["verify"]:
        checks.expect(
            not verify_error,
            "certificate verified",
            f"certificate verification failed: {verify_error}",
        )
    not_after = cert.get("notAfter")
    days = (ssl.cert_time_to_seconds(not_after) - time.time()) / 86400 if not_after else -1.0
    checks.expect(days > 0, "certificate valid", f"certificate expired ({not_after})")
    outcome = checks.outcome(
        f"{version}, certificate valid for {days:.0f} days", value=round(days, 1)
    )
    outcome.details.update({"protocol": version, "not_after": not_after})
    outcome.measure("days_to_expiry", days, "d", opts.get("days_to_expiry"))
    return outcome


TLS = CheckType(
    name="tls",
    description="TLS handshake at a minimum protocol version, certificate verification "
    "(chain and hostname) and days to expiry graded against bands",
    options={
        "host": {"type": "str", "required": True},
        "port": {"type": "int", "default": 443},
        "server_name": {"type": "str", "description": "SNI/hostname to verify (default: host)"},
        "min_version": {"type": "str", "default": "TLSv1.2", "choices": list(_VERSIONS)},
        "ca_file": {"type": "str", "description": "CA bundle that signs the certificate"},
        "verify": {
            "type": "bool",
            "default": True,
            "description": "fail when chain or hostname do not verify",
        },
        "days_to_expiry": {"type": "bands", "default": {"pass": ">= 30d", "warn": ">= 7d"}},
    },
    run=run_tls,
)
