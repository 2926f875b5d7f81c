"""HTTP, flow, prometheus, tcp and TLS checks against real local servers, through the engine."""

from __future__ import annotations

import json
import resource
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from checks_fixtures import PASSWORD, TOKEN, App, AppState, Handler
from conftest import free_port

from stagegate.catalog import CatalogError, load_catalog
from stagegate.engine import run_checks
from stagegate.plugins import Hooks, new_plugin_manager
from stagegate.results import CheckResult, Status

HOOKS = Hooks(new_plugin_manager(entry_points=False))


def run(*entries: dict[str, Any], check_mode: bool = False) -> list[CheckResult]:
    specs = load_catalog(list(entries), HOOKS.check_types())
    return run_checks(specs, hooks=HOOKS, check_mode=check_mode)


def one(**entry: Any) -> CheckResult:
    entry.setdefault("name", "c")
    (result,) = run(entry)
    return result


def test_http_status_json_and_headers_pass(http_app: App) -> None:
    result = one(
        type="http",
        url=f"{http_app.url}/health",
        json=["checks.database.status == 'healthy'", "status == 'ok'"],
        headers_present=["X-Frame-Options", "Strict-Transport-Security"],
        headers_absent=["X-Powered-By"],
        header_values={"X-Frame-Options": "^(DENY|SAMEORIGIN)$"},
        body_regex=['"status"'],
    )
    assert result.status is Status.PASS, result.message
    assert result.value == 200
    assert result.duration_ms > 0


def test_http_failed_assertions_are_named(http_app: App) -> None:
    result = one(
        type="http",
        url=f"{http_app.url}/degraded",
        status=[200, 204],
        json=["checks.database.status == 'healthy'"],
        headers_present=["X-Frame-Options"],
    )
    assert result.status is Status.FAIL
    assert "status 503, expected 200 or 204" in result.message
    assert "checks.database.status == 'healthy'" in result.message
    assert "header X-Frame-Options missing" in result.message


def test_non_json_body_where_json_asserted_is_an_error(http_app: App) -> None:
    result = one(type="http", url=f"{http_app.url}/text", json=["status == 'ok'"])
    assert result.status is Status.ERROR
    assert "not JSON" in result.message


def test_a_valid_expression_the_body_does_not_fit_is_not_called_invalid(http_app: App) -> None:
    """`length(errors)` on a body without `errors`: the expression is valid, the body is not."""
    result = one(type="http", url=f"{http_app.url}/health", json=["length(errors) == `0`"])
    assert result.status is Status.ERROR
    assert "is invalid" not in result.message
    assert "cannot be evaluated on this data" in result.message, result.message
    assert "length()" in result.message


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:{port}/", "cannot connect"),
        ("http://no-such-host.invalid/", "DNS lookup failed"),
    ],
)
def test_unreachable_and_dns_failures_are_errors(url: str, expected: str) -> None:
    result = one(type="http", url=url.format(port=free_port()), timeout=3)
    assert result.status is Status.ERROR
    assert expected in result.message


def test_latency_bands_pass_and_warn(http_app: App) -> None:
    passing, warning = run(
        {
            "name": "fast",
            "type": "http",
            "url": f"{http_app.url}/health",
            "latency": {"requests": 20, "concurrency": 4, "p95": {"pass": "<= 5s"}, "avg": "<= 5s"},
        },
        {
            "name": "slow",
            "type": "http",
            "url": f"{http_app.url}/slow",
            "latency": {
                "requests": 6,
                "concurrency": 2,
                "p95": {"pass": "<= 1ms", "warn": "<= 60s"},
            },
        },
    )
    assert passing.status is Status.PASS, passing.message
    assert {"avg_ms", "p50_ms", "p95_ms", "max_ms"} <= set(passing.metrics)
    assert passing.metrics["latency_requests"] == 20
    assert "p95_ms: PASS <= 5 s" in (passing.threshold or "")
    assert warning.status is Status.WARN
    assert warning.metrics["p95_ms"] >= 50
    assert "outside PASS <= 1 ms" in warning.message


def test_rate_limit_probe_counts_429(http_app: App) -> None:
    limited = one(
        type="http",
        url=f"{http_app.url}/limited",
        status=[200, 429],
        rate_limit={"requests": 12, "concurrency": 4, "min_429": 3},
    )
    assert limited.status is Status.PASS, limited.message
    assert limited.metrics["rate_limited"] >= 3
    unlimited = one(
        type="http", url=f"{http_app.url}/health", rate_limit={"requests": 5, "concurrency": 5}
    )
    assert unlimited.status is Status.FAIL
    assert "0 of 5 requests got 429, expected at least 1" in unlimited.message


def test_flow_captures_a_token_and_never_shows_it(http_app: App) -> None:
    entry = {
        "name": "login-flow",
        "type": "flow",
        "group": "authentication",
        "base_url": http_app.url,
        "steps": [
            {
                "name": "login",
                "url": "/login",
                "method": "POST",
                "body": {"user": "alice", "password": PASSWORD},
                "capture": {"token": "access_token"},
            },
            {
                "name": "me",
                "url": "/me",
                "headers": {"Authorization": "Bearer [[ token ]]"},
                "json": ["user == 'alice'"],
            },
        ],
    }
    (result,) = run(entry)
    assert result.status is Status.PASS, result.message
    assert result.details["steps_passed"] == ["login", "me"]
    bad = {**entry, "name": "bad-flow"}
    bad["steps"] = [entry["steps"][0], {**entry["steps"][1], "json": ["user == 'bob'"]}]
    (failed,) = run(bad)
    assert failed.status is Status.FAIL
    assert "me:" in failed.message
    for shown in (result, failed):
        text = json.dumps(shown.to_dict())
        assert TOKEN not in text
        assert PASSWORD not in text


def test_secret_headers_are_redacted_in_failures(http_app: App) -> None:
    result = one(
        type="http",
        url=f"{http_app.url}/me",
        headers={"Authorization": f"Bearer {TOKEN}-wrong"},
        body_regex=[f"{TOKEN}-wrong"],
    )
    assert result.status is Status.FAIL
    assert TOKEN not in json.dumps(result.to_dict())


def test_request_headers_must_reach_the_application(http_app: App) -> None:
    """Seed 003: the proxy passes Authorization and X-Request-ID, seen through the app's echo."""
    sent = {"Authorization": f"Bearer {TOKEN}", "X-Request-ID": "req-42"}
    entry = {
        "type": "http",
        "headers": sent,
        "headers_echoed": ["Authorization", "x-request-id"],
        "echo_json": "data.headers",
    }
    passed, dropped, changed, not_echo = run(
        {"name": "passed", **entry, "url": f"{http_app.url}/echo-headers"},
        {"name": "dropped", **entry, "url": f"{http_app.url}/echo-headers?drop=Authorization"},
        {"name": "changed", **entry, "url": f"{http_app.url}/echo-headers?change=X-Request-ID"},
        {"name": "not_echo", **entry, "url": f"{http_app.url}/health"},
    )
    assert passed.status is Status.PASS, passed.message
    assert "header Authorization passed through" in passed.message
    assert dropped.status is Status.FAIL
    assert dropped.message == "header Authorization did not reach the application"
    assert changed.status is Status.FAIL
    assert changed.message == (
        "header x-request-id reached the application changed ('rewritten-by-proxy')"
    )
    assert not_echo.status is Status.FAIL
    assert "no JSON object at 'data.headers'" in not_echo.message
    assert TOKEN not in json.dumps([r.to_dict() for r in (passed, dropped, changed, not_echo)])
    with pytest.raises(CatalogError, match=r"'headers_echoed' names \['X-Trace'\], which"):
        one(**{**entry, "url": http_app.url, "headers_echoed": ["X-Trace"]})


def test_prometheus_format_and_required_metrics(http_app: App) -> None:
    good, missing, broken = run(
        {
            "name": "m1",
            "type": "prometheus",
            "url": f"{http_app.url}/metrics",
            "required": ["http_requests_total", "process_resident_memory_bytes"],
        },
        {
            "name": "m2",
            "type": "prometheus",
            "url": f"{http_app.url}/metrics",
            "required": ["no_such_metric"],
        },
        {"name": "m3", "type": "prometheus", "url": f"{http_app.url}/bad-metrics"},
    )
    assert good.status is Status.PASS, good.message
    assert missing.status is Status.FAIL
    assert "no_such_metric" in missing.message
    assert broken.status is Status.FAIL
    assert "do not parse" in broken.message


def test_tcp_connect_and_refused(http_app: App) -> None:
    port = int(http_app.url.rsplit(":", 1)[1])
    up, down = run(
        {"name": "up", "type": "tcp", "host": "127.0.0.1", "port": port},
        {"name": "down", "type": "tcp", "host": "127.0.0.1", "port": free_port()},
    )
    assert up.status is Status.PASS
    assert down.status is Status.ERROR
    assert "refused" in down.message.lower()


def test_a_hung_endpoint_times_out_and_others_finish(http_app: App) -> None:
    hung, fine = run(
        {"name": "hung", "type": "http", "url": f"{http_app.url}/hang", "timeout": 1},
        {"name": "fine", "type": "http", "url": f"{http_app.url}/health"},
    )
    assert hung.status is Status.ERROR
    assert "timed out" in hung.message
    assert fine.status is Status.PASS


def test_retries_wait_until_healthy(http_app: App) -> None:
    # /limited answers 200 five times then 429: a check expecting 429 passes after retries.
    result = one(type="http", url=f"{http_app.url}/limited", status=429, retries=8, delay=0.01)
    assert result.status is Status.PASS
    assert result.attempts == 6


def test_severity_warning_failure_grades_warn(http_app: App) -> None:
    result = one(type="http", url=f"{http_app.url}/degraded", severity="warning")
    assert result.status is Status.WARN
    assert result.details["check_status"] == "FAIL"


def test_catalog_errors_name_check_key_value_and_expectation() -> None:
    with pytest.raises(CatalogError) as caught:
        load_catalog(
            [
                {"name": "a", "type": "htp", "url": "http://x"},
                {"name": "b", "type": "http"},
                {"name": "c", "type": "http", "url": "http://x", "status": "ok"},
                {"name": "d", "type": "http", "url": "http://x", "timeout": -1, "group": "Misc!"},
                {
                    "name": "e",
                    "type": "http",
                    "url": "http://x",
                    "latency": {"requests": 3, "p95": "fast"},
                },
                {"name": "e", "type": "tcp", "host": "h", "port": 1, "colour": "red"},
                {"name": "f", "type": "tls", "host": "h", "days_to_expiry": "soon"},
            ],
            HOOKS.check_types(),
        )
    text = str(caught.value)
    assert "check 'a': 'type' = 'htp': expected one of" in text
    assert "check 'b' (type http): option 'url' is required" in text
    assert "check 'c' (type http): option 'status' = 'ok': expected an integer or a list" in text
    assert "check 'd': 'timeout' = -1: expected a number" in text
    assert "check 'd': 'group' = 'Misc!': expected a lower-case name" in text
    assert "check 'e': 'name' is used twice" in text
    assert "check 'e' (type http) option 'latency': option 'p95' = 'fast': expected cannot" in text
    assert "unknown option 'colour'" in text
    assert (
        "check 'f' (type tls): option 'days_to_expiry' = 'soon': expected cannot parse band" in text
    )


def test_nothing_runs_when_the_catalog_is_invalid(http_app: App) -> None:
    with pytest.raises(CatalogError):
        run(
            {"name": "ok", "type": "http", "url": f"{http_app.url}/limited"},
            {"name": "bad", "type": "nope"},
        )
    assert http_app.state.limited_hits == 0


def test_check_mode_runs_read_only_checks_and_skips_the_others(http_app: App) -> None:
    http_result, post_result, forced, command_result, results_file = run(
        {"name": "h", "type": "http", "url": f"{http_app.url}/health"},
        {"name": "post", "type": "http", "url": f"{http_app.url}/login", "method": "POST"},
        {
            "name": "forced",
            "type": "http",
            "url": f"{http_app.url}/login",
            "method": "POST",
            "status": 401,
            "read_only": True,
        },
        {"name": "cmd", "type": "command", "cmd": ["touch", "/nonexistent/x"]},
        {"name": "junit", "type": "suite", "junit": "/nonexistent/junit.xml"},
        check_mode=True,
    )
    assert http_result.status is Status.PASS
    assert forced.status is Status.PASS
    assert post_result.status is Status.SKIP
    assert command_result.status is Status.SKIP
    assert results_file.status is Status.ERROR  # reading a file is read-only: it ran


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """An HTTPS server (TLSv1.2 at most) with a throwaway self-signed certificate for localhost."""
    tmp_path = tmp_path_factory.mktemp("tls")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "10",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.maximum_version = ssl.TLSVersion.TLSv1_2  # so a TLSv1.3 minimum is refused
    handler = type("H", (Handler,), {"state": AppState()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.server_address[1]), cert
    finally:
        server.shutdown()
        server.server_close()


def test_tls_expiry_bands_and_verification(tls_server: tuple[int, Path]) -> None:
    port, cert = tls_server
    trusted, untrusted, wrong_name, https = run(
        {
            "name": "trusted",
            "type": "tls",
            "host": "127.0.0.1",
            "port": port,
            "server_name": "localhost",
            "ca_file": str(cert),
            "min_version": "TLSv1.2",
        },
        {
            "name": "untrusted",
            "type": "tls",
            "host": "127.0.0.1",
            "port": port,
            "server_name": "localhost",
        },
        {
            "name": "wrong-name",
            "type": "tls",
            "host": "127.0.0.1",
            "port": port,
            "server_name": "example.org",
            "ca_file": str(cert),
        },
        {
            "name": "https",
            "type": "http",
            "url": f"https://localhost:{port}/health",
            "ca_file": str(cert),
        },
    )
    # 10 days left: outside the default PASS band (>= 30d), inside WARN (>= 7d)
    assert trusted.status is Status.WARN, trusted.message
    assert 9 <= trusted.metrics["days_to_expiry"] <= 10
    assert trusted.details["protocol"] == "TLSv1.2"
    assert untrusted.status is Status.FAIL
    assert "verification failed" in untrusted.message
    assert wrong_name.status is Status.FAIL
    assert "hostname" in wrong_name.message.lower() or "match" in wrong_name.message.lower()
    assert https.status is Status.PASS, https.message


def test_tls_minimum_version_is_enforced(tls_server: tuple[int, Path]) -> None:
    port, cert = tls_server
    result = one(
        type="tls",
        host="127.0.0.1",
        port=port,
        server_name="localhost",
        ca_file=str(cert),
        min_version="TLSv1.3",
    )
    assert result.status is Status.ERROR
    assert "TLS handshake" in result.message
    assert "minimum TLSv1.3" in result.message


def test_https_with_an_untrusted_certificate_is_a_tls_error(tls_server: tuple[int, Path]) -> None:
    port, _ = tls_server
    result = one(type="http", url=f"https://localhost:{port}/health")
    assert result.status is Status.ERROR
    assert "TLS error" in result.message


def test_a_band_in_the_wrong_unit_is_an_error(http_app: App) -> None:
    result = one(type="http", url=f"{http_app.url}/health", latency={"requests": 2, "p95": "<= 5%"})
    assert result.status is Status.ERROR
    assert "p95_ms: cannot compare 'ms' with '%'" in result.message


def test_numbers_and_booleans_written_as_text_are_accepted() -> None:
    (spec,) = load_catalog(
        [{"name": "t", "type": "tls", "host": "h", "port": "8443", "verify": "false"}],
        HOOKS.check_types(),
    )
    assert spec.options["port"] == 8443
    assert spec.options["verify"] is False


def test_a_token_in_the_url_query_is_never_shown(http_app: App) -> None:
    query_token = "qtok-5b1e9d7c3a"
    passed, failed = run(
        {"name": "q1", "type": "http", "url": f"{http_app.url}/health?access_token={query_token}"},
        {"name": "q2", "type": "http", "url": f"{http_app.url}/degraded?api_key={query_token}&x=1"},
    )
    assert (passed.status, failed.status) == (Status.PASS, Status.FAIL)
    for result in (passed, failed):
        text = json.dumps(result.to_dict())
        assert query_token not in text
        assert "_token=***" in text or "api_key=***" in text


def test_templated_numbers_arrive_as_text_and_follow_one_rule(http_app: App) -> None:
    # `-e t=3` then `timeout: "{{ t }}"`: Ansible hands the catalog the text "3"
    (result,) = run(
        {
            "name": "t",
            "type": "http",
            "url": f"{http_app.url}/health",
            "timeout": "3",
            "retries": "1",
            "delay": "0.5",
            "read_only": "yes",
            "status": ["200", "204"],
            "latency": {"requests": "2", "concurrency": "1"},
        }
    )
    assert result.status is Status.PASS, result.message
    (spec,) = load_catalog(
        [{"name": "t", "type": "http", "url": "http://x", "timeout": " 2.5 ", "status": "201"}],
        HOOKS.check_types(),
    )
    assert (spec.timeout, spec.options["status"]) == (2.5, 201)
    with pytest.raises(CatalogError) as caught:
        load_catalog(
            [
                {"name": "a", "type": "http", "url": "http://x", "timeout": "three"},
                {"name": "b", "type": "http", "url": "http://x", "retries": True},
                {"name": "c", "type": "http", "url": "http://x", "delay": "nan"},
                {"name": "d", "type": "http", "url": "http://x", "read_only": "maybe"},
            ],
            HOOKS.check_types(),
        )
    text = str(caught.value)
    assert "check 'a': 'timeout' = 'three': expected a number >= 0.001" in text
    assert "check 'b': 'retries' = True: expected an integer >= 0" in text
    assert "check 'c': 'delay' = 'nan': expected a number" in text
    assert "check 'd': 'read_only' = 'maybe': expected true or false" in text


class SlowHandler(Handler):
    """Two real faults: a 1.5 s endpoint and a body that never ends."""

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        if self.path == "/slow1500":
            time.sleep(1.5)
            self._send(200, {"status": "ok"})
        elif self.path == "/endless":  # as fast as the socket takes it, until the client goes
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            chunk = b"x" * 65536
            try:
                while True:
                    self.wfile.write(chunk)
            except OSError:
                self.close_connection = True
        else:
            super().do_GET()


@pytest.fixture
def faulty_app() -> Iterator[App]:
    state = AppState()
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Bound", (SlowHandler,), {"state": state}))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield App(f"http://127.0.0.1:{server.server_address[1]}", state)
    finally:
        server.shutdown()
        server.server_close()


def test_an_endless_body_is_capped_not_read_into_memory(faulty_app: App) -> None:
    http_app = faulty_app
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    capped, default_cap, latency = run(
        {"name": "a", "type": "http", "url": f"{http_app.url}/endless", "max_body_bytes": 1048576},
        {"name": "b", "type": "http", "url": f"{http_app.url}/endless", "timeout": 30},
        {
            "name": "c",
            "type": "http",
            "url": f"{http_app.url}/health",
            "latency": {"requests": 2},
            "max_body_bytes": "1024",
        },
    )
    assert capped.status is Status.ERROR
    assert "body larger than 1048576 bytes (max_body_bytes)" in capped.message
    assert default_cap.status is Status.ERROR
    assert "body larger than 10485760 bytes (max_body_bytes)" in default_cap.message
    assert latency.status is Status.PASS, latency.message  # a small body stays under the cap
    # kilobytes; the uncapped read held hundreds of megabytes within seconds
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 100 * 1024


def test_latency_timeout_is_per_request_and_fail_shows_the_graded_figure(faulty_app: App) -> None:
    http_app = faulty_app
    bands = {"pass": "<= 1s", "warn": "<= 1.2s"}
    slow, cut = run(
        {
            "name": "slow",
            "type": "http",
            "timeout": 2,  # per request; the series of 4 at 1.5 s takes longer than that
            "url": f"{http_app.url}/slow1500",
            "latency": {"requests": 4, "concurrency": 2, "p95": bands},
        },
        {
            "name": "cut",
            "type": "http",
            "timeout": 2,
            "url": f"{http_app.url}/slow1500",
            "latency": {"requests": 3, "concurrency": 1, "deadline": 1, "avg": "<= 5s"},
        },
    )
    assert slow.status is Status.FAIL, slow.message
    assert slow.metrics["latency_requests"] == 4
    assert slow.value == pytest.approx(slow.metrics["p95_ms"], abs=0.1)
    assert slow.value >= 1500
    assert slow.details["value_is"] == "p95_ms"
    assert "outside PASS <= 1 s (and outside WARN <= 1.2 s)" in slow.message
    assert f"p95_ms {slow.metrics['p95_ms']:g}ms" in slow.message
    assert "p95_ms: PASS <= 1 s, WARN <= 1.2 s" in (slow.threshold or "")
    # the series' own deadline: requests not started by then make the check FAIL, with figures
    assert cut.status is Status.FAIL
    assert "2 of 3 latency requests not started within the 1s latency deadline" in cut.message
    assert cut.details["value_is"] == "avg_ms"
    assert cut.value >= 1500
