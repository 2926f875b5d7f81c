# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP check types: `http` (status, JSON, headers, body, latency, rate limit), `flow`
(ordered steps with captures), and the exposition-format half of `prometheus`
(`_checks_prometheus`). Standard library,
plus jmespath when JSON assertions or captures are used."""

from __future__ import annotations

import functools
import http.client
import json
import re
import socket
import ssl
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ansible_collections.stagegate.release.plugins.module_utils._checks_common import (
    FAIL,
    PASS,
    Assertions,
    CheckError,
    CheckType,
    Outcome,
    RunContext,
)
from ansible_collections.stagegate.release.plugins.module_utils._checks_redact import (
    MASK,
    is_secret_name,
)

try:
    import jmespath

    HAS_JMESPATH = True
except ImportError:  # reported when an assertion needs it
    HAS_JMESPATH = False


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    elapsed_ms: float

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise CheckError(
                f"body is not JSON ({exc}); starts with {self.text()[:80]!r}"
            ) from None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@functools.lru_cache(maxsize=32)
def _opener(
    https: bool, validate_certs: bool, ca_file: str | None, follow: bool
) -> urllib.request.OpenerDirector:
    # Cached, and without a TLS context for plain http: loading the CA store costs far
    # more than a request to a local endpoint.
    handlers: list[Any] = [] if follow else [_NoRedirect()]
    if https:
        context = ssl.create_default_context(cafile=ca_file)
        if not validate_certs:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        handlers.append(urllib.request.HTTPSHandler(context=context))
    return urllib.request.build_opener(*handlers)


DEFAULT_MAX_BODY = 10 * 1024 * 1024  # bytes: far above any health or API answer
_CHUNK = 64 * 1024


def _read_body(resp: Any, what: str, max_body: int, keep: bool, deadline: float) -> bytes:
    """The body, read in chunks: at most `max_body` bytes, until the request's deadline.
    With `keep` false the chunks are counted and dropped (latency samples)."""
    kept: list[bytes] = []
    size = 0
    while True:
        chunk = resp.read(_CHUNK)
        if not chunk:
            return b"".join(kept)
        size += len(chunk)
        if size > max_body:
            raise CheckError(
                f"{what}: body larger than {max_body} bytes (max_body_bytes); not read further"
            )
        if keep:
            kept.append(chunk)
        if time.monotonic() > deadline:
            raise CheckError(f"{what}: body not complete within the timeout ({size} bytes read)")


def fetch(
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: Any = None,
    timeout: float = 10.0,
    validate_certs: bool = True,
    ca_file: str | None = None,
    follow_redirects: bool = False,
    max_body: int = DEFAULT_MAX_BODY,
    keep_body: bool = True,
) -> Response:
    """One request, body included, within `timeout` seconds (connect, each read, and the
    whole body) and `max_body` bytes; HTTP error statuses are responses, transport failures
    and oversized or endless bodies CheckError."""
    headers = dict(headers or {})
    data = None
    if body is not None:
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        else:
            data = str(body).encode()
    if not url.lower().startswith(("http://", "https://")):
        raise CheckError(f"url {url!r}: expected an http:// or https:// URL")
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310 - scheme checked above
    what = f"{method} {url}"
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    try:
        opener = _opener(
            url.lower().startswith("https:"), validate_certs, ca_file, follow_redirects
        )
        try:
            resp = opener.open(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            resp = exc
        with resp:
            status, resp_headers = (
                resp.status if hasattr(resp, "status") else resp.code,
                resp.headers,
            )
            content = _read_body(resp, what, max_body, keep_body, deadline)
    except TimeoutError:
        raise CheckError(f"{what}: timed out after {timeout:g}s") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, (ssl.SSLError, ssl.CertificateError)):
            raise CheckError(f"{what}: TLS error: {reason}") from None
        if isinstance(reason, socket.gaierror):
            raise CheckError(f"{what}: DNS lookup failed: {reason}") from None
        if isinstance(reason, TimeoutError):
            raise CheckError(f"{what}: timed out after {timeout:g}s") from None
        raise CheckError(f"{what}: cannot connect: {reason}") from None
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise CheckError(f"{what}: request failed: {exc}") from None
    elapsed = (time.perf_counter() - started) * 1000
    lowered = {k.lower(): v for k, v in resp_headers.items()}
    return Response(status, lowered, content, elapsed)


def search(expression: str, data: Any) -> Any:
    if not HAS_JMESPATH:
        raise CheckError("the jmespath library is required for JSON assertions and captures")
    try:
        return jmespath.search(expression, data)
    except jmespath.exceptions.JMESPathTypeError as exc:  # valid, but not for this data
        raise CheckError(
            f"JMESPath {expression!r} cannot be evaluated on this data: {exc}"
        ) from None
    except jmespath.exceptions.JMESPathError as exc:
        raise CheckError(f"JMESPath {expression!r} is invalid: {exc}") from None


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


def _statuses(option: Any) -> list[int]:
    return [int(s) for s in (option if isinstance(option, list) else [option])]


def assert_response(resp: Response, opts: dict[str, Any], checks: Assertions) -> None:
    """The assertions shared by `http` and each `flow` step."""
    expected = _statuses(opts.get("status") or 200)
    checks.expect(
        resp.status in expected,
        f"status {resp.status}",
        f"status {resp.status}, expected {' or '.join(map(str, expected))}",
    )
    for name in opts.get("headers_present") or []:
        checks.expect(name.lower() in resp.headers, f"header {name}", f"header {name} missing")
    for name in opts.get("headers_absent") or []:
        checks.expect(
            name.lower() not in resp.headers,
            f"no header {name}",
            f"header {name} present, expected absent",
        )
    for name, pattern in (opts.get("header_values") or {}).items():
        actual = resp.headers.get(name.lower())
        shown = MASK if is_secret_name(name) else repr(actual)
        checks.expect(
            actual is not None and re.search(str(pattern), actual) is not None,
            f"header {name}",
            f"header {name} = {shown}, expected to match {pattern!r}",
        )
    text = resp.text() if (opts.get("body_regex") or opts.get("body_not_regex")) else ""
    for pattern in opts.get("body_regex") or []:
        checks.expect(
            re.search(pattern, text) is not None,
            f"body ~ {pattern}",
            f"body does not match {pattern!r}",
        )
    for pattern in opts.get("body_not_regex") or []:
        checks.expect(
            re.search(pattern, text) is None,
            f"body !~ {pattern}",
            f"body matches forbidden {pattern!r}",
        )
    if opts.get("json"):
        document = resp.json()
        for expression in opts["json"]:
            found = search(expression, document)
            checks.expect(bool(found), expression, f"JSON {expression!r} is {json.dumps(found)}")


_REQUEST_OPTIONS: dict[str, dict[str, Any]] = {
    "url": {"type": "str", "required": True, "description": "the URL to request"},
    "method": {"type": "str", "default": "GET"},
    "headers": {
        "type": "dict",
        "default": {},
        "description": "request headers (secret ones redacted)",
    },
    "body": {"type": "raw", "description": "request body; a mapping or list is sent as JSON"},
    "validate_certs": {"type": "bool", "default": True},
    "ca_file": {"type": "str"},
    "follow_redirects": {"type": "bool", "default": False},
    "max_body_bytes": {
        "type": "int",
        "default": DEFAULT_MAX_BODY,
        "minimum": 1,
        "description": "the most of a response body read (bytes); a longer or endless body "
        "is an ERROR, never read into memory whole",
    },
}
_ASSERT_OPTIONS: dict[str, dict[str, Any]] = {
    "status": {"type": "intlist", "default": 200, "description": "expected status, or a list"},
    "json": {
        "type": "list",
        "elements": "str",
        "description": "JMESPath expressions that must be truthy",
    },
    "headers_present": {"type": "list", "elements": "str"},
    "headers_absent": {"type": "list", "elements": "str"},
    "header_values": {"type": "dict", "description": "header name -> regex its value must match"},
    "body_regex": {"type": "list", "elements": "str"},
    "body_not_regex": {"type": "list", "elements": "str"},
}


def _request(
    opts: dict[str, Any], ctx: RunContext, keep_body: bool = True, **override: Any
) -> Response:
    return fetch(
        override.get("url", opts["url"]),
        method=override.get("method", opts.get("method") or "GET"),
        headers=override.get("headers", opts.get("headers") or {}),
        body=override.get("body", opts.get("body")),
        timeout=ctx.timeout,
        validate_certs=opts.get("validate_certs", True) is not False,
        ca_file=opts.get("ca_file"),
        follow_redirects=bool(opts.get("follow_redirects")),
        max_body=int(opts.get("max_body_bytes") or DEFAULT_MAX_BODY),
        keep_body=keep_body,
    )


def _burst(
    opts: dict[str, Any],
    ctx: RunContext,
    requests: int,
    concurrency: int,
    deadline: float | None = None,
) -> list[Response | str | None]:
    """`requests` requests, `concurrency` at once, each with the check's timeout, bodies
    read and dropped. None for a request not started because `deadline` (monotonic) passed
    or the check was cancelled; the error text for a request that failed."""

    def one(_: int) -> Response | str | None:
        if ctx.cancelled.is_set() or (deadline is not None and time.monotonic() >= deadline):
            return None
        try:
            return _request(opts, ctx, keep_body=False)
        except CheckError as exc:
            return str(exc)

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        return list(pool.map(one, range(requests)))


def latency_deadline(spec: dict[str, Any], timeout: float) -> float:
    """The latency series' own deadline: `latency.deadline`, by default the time every
    request could take at its timeout, `ceil(requests / concurrency) * timeout`."""
    if spec.get("deadline"):
        return float(spec["deadline"])
    rounds = -(-int(spec.get("requests") or 10) // max(1, int(spec.get("concurrency") or 1)))
    return rounds * timeout


def _series_seconds(opts: dict[str, Any], timeout: float) -> float:
    """What a latency series and a rate-limit burst add to one attempt (engine deadline)."""
    extra = 0.0
    if opts.get("latency"):
        extra += latency_deadline(opts["latency"], timeout) + timeout  # the last one started
    if opts.get("rate_limit"):
        spec = opts["rate_limit"]
        rounds = -(-int(spec.get("requests") or 50) // max(1, int(spec.get("concurrency") or 10)))
        extra += rounds * timeout
    return extra


_GRADED_FIRST = ("p95", "avg", "p50", "max")  # which figure is the check's value


def _latency(opts: dict[str, Any], ctx: RunContext, outcome: Outcome) -> None:
    spec = opts["latency"]
    seconds = latency_deadline(spec, ctx.timeout)
    samples = _burst(opts, ctx, spec["requests"], spec["concurrency"], time.monotonic() + seconds)
    times = [s.elapsed_ms for s in samples if isinstance(s, Response)]
    errors = [s for s in samples if isinstance(s, str)]
    not_run = sum(1 for s in samples if s is None)
    outcome.metrics["latency_requests"] = len(times) + len(errors)
    outcome.metrics["latency_errors"] = len(errors)
    if not times:
        reason = errors[0] if errors else f"none started within the {seconds:g}s deadline"
        raise CheckError(f"latency: every request failed ({reason})")
    figures = {
        "avg": sum(times) / len(times),
        "p50": percentile(times, 0.5),
        "p95": percentile(times, 0.95),
        "max": max(times),
    }
    for name, value in figures.items():
        outcome.measure(f"{name}_ms", value, "ms", spec.get(name))
    graded = [name for name in _GRADED_FIRST if spec.get(name)] or ["p95"]
    outcome.value = round(figures[graded[0]], 1)
    outcome.details["value_is"] = f"{graded[0]}_ms"
    outcome.message = f"{outcome.message}; latency over {len(times)} requests: " + ", ".join(
        f"{name} {figures[name]:.1f} ms" for name in ("avg", "p95", "max")
    )
    if errors:
        outcome.status = FAIL
        outcome.message += (
            f"; {len(errors)} of {len(samples)} latency requests failed ({errors[0]})"
        )
    if not_run:
        outcome.status = FAIL
        outcome.message += (
            f"; {not_run} of {len(samples)} latency requests not started within the"
            f" {seconds:g}s latency deadline"
        )


def _rate_limit(
    opts: dict[str, Any], ctx: RunContext, checks: Assertions, metrics: dict[str, float]
) -> None:
    spec = opts["rate_limit"]
    samples = _burst(opts, ctx, spec["requests"], spec["concurrency"])
    limited = sum(1 for s in samples if isinstance(s, Response) and s.status == 429)
    metrics.update(rate_limited=limited, burst_requests=len(samples))
    checks.expect(
        limited >= spec["min_429"],
        f"{limited} of {len(samples)} requests got 429",
        f"{limited} of {len(samples)} requests got 429, expected at least {spec['min_429']}",
    )


def _headers_echoed(resp: Response, opts: dict[str, Any], checks: Assertions) -> None:
    """The request headers `headers_echoed` names reached the application unchanged: its echo
    endpoint returns the headers it received as a JSON object (at `echo_json`)."""
    sent = {k.lower(): str(v) for k, v in (opts.get("headers") or {}).items()}
    try:
        echoed = search(opts["echo_json"], resp.json())
    except CheckError:  # not JSON: said below
        echoed = None
    if not isinstance(echoed, dict):
        checks.expect(
            False,
            "",
            f"the response has no JSON object at {opts['echo_json']!r}: the URL must be the "
            "application's echo of the request headers it received",
        )
        return
    received = {str(k).lower(): v for k, v in echoed.items()}
    for name in opts["headers_echoed"]:
        value = received.get(name.lower())
        if isinstance(value, list):  # some frameworks give every header as a list
            value = ",".join(map(str, value))
        if value is None:
            checks.expect(False, "", f"header {name} did not reach the application")
        else:
            checks.expect(
                str(value) == sent[name.lower()],
                f"header {name} passed through",
                f"header {name} reached the application changed"
                + ("" if is_secret_name(name) else f" ({value!r})"),
            )


def validate_http(opts: dict[str, Any]) -> list[str]:
    sent = {k.lower() for k in opts.get("headers") or {}}
    unsent = [n for n in opts.get("headers_echoed") or [] if n.lower() not in sent]
    if unsent:
        return [
            f"option 'headers_echoed' names {unsent}, which 'headers' does not send: give each "
            "a value to send in 'headers'"
        ]
    return []


def run_http(opts: dict[str, Any], ctx: RunContext) -> Outcome:
    resp = _request(opts, ctx)
    checks = Assertions()
    assert_response(resp, opts, checks)
    if opts.get("headers_echoed"):
        _headers_echoed(resp, opts, checks)
    metrics = {"response_ms": round(resp.elapsed_ms, 3)}
    if opts.get("rate_limit"):
        _rate_limit(opts, ctx, checks, metrics)
    outcome = checks.outcome(
        f"{opts.get('method') or 'GET'} {opts['url']}: " + ", ".join(checks.passed),
        value=resp.status,
        metrics=metrics,
        details={"url": opts["url"]},
    )
    if opts.get("latency") and outcome.status == PASS:
        _latency(opts, ctx, outcome)
    return outcome


_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def _safe(method: Any) -> bool:
    return str(method or "GET").upper() in _SAFE_METHODS


HTTP = CheckType(
    name="http",
    description="an HTTP request with status, JSON (JMESPath), header and body assertions, "
    "latency sampling graded against bands, and a rate-limit probe",
    options={
        **_REQUEST_OPTIONS,
        **_ASSERT_OPTIONS,
        "latency": {
            "type": "dict",
            "description": "{requests, concurrency, deadline, avg, p50, p95, max}: a series "
            "of requests (each with the check's timeout, bodies not kept) graded against bands "
            "per figure, e.g. p95: {pass: '<= 200ms', warn: '<= 500ms'}; deadline (seconds) "
            "bounds the series, by default ceil(requests / concurrency) * timeout; the check's "
            "value is the graded figure (p95 first, then avg, p50, max)",
            "options": {
                "requests": {"type": "int", "default": 10, "minimum": 1},
                "concurrency": {"type": "int", "default": 1, "minimum": 1},
                "deadline": {"type": "float", "minimum": 0.001},
                **{figure: {"type": "bands"} for figure in ("avg", "p50", "p95", "max")},
            },
        },
        "headers_echoed": {
            "type": "list",
            "elements": "str",
            "default": [],
            "description": "request headers (sent with 'headers') that must reach the "
            "application unchanged, through a proxy say; the URL must be an endpoint of the "
            "application that returns the request headers it received as JSON",
        },
        "echo_json": {
            "type": "str",
            "default": "headers",
            "description": "JMESPath to the echoed headers object in the response's JSON",
        },
        "rate_limit": {
            "type": "dict",
            "description": "{requests, concurrency, min_429}: a burst "
            "that must see at least min_429 responses with status 429",
            "options": {
                "requests": {"type": "int", "default": 50},
                "concurrency": {"type": "int", "default": 10},
                "min_429": {"type": "int", "default": 1},
            },
        },
    },
    run=run_http,
    validate=validate_http,
    read_only=lambda opts: _safe(opts.get("method")) and not opts.get("rate_limit"),
    extra_seconds=_series_seconds,
)


def run_flow(opts: dict[str, Any], ctx: RunContext) -> Outcome:
    captured: dict[str, Any] = {}
    base = opts.get("base_url") or ""
    done: list[str] = []
    for number, step in enumerate(opts["steps"], start=1):
        label = step.get("name") or f"step {number}"
        step_opts = _substitute(step, captured)
        merged = {**opts, **step_opts, "url": base + step_opts["url"]}
        resp = _request(
            merged, ctx, headers={**(opts.get("headers") or {}), **(step_opts.get("headers") or {})}
        )
        checks = Assertions()
        assert_response(resp, merged, checks)
        if checks.failures:
            return Outcome(
                FAIL,
                f"{label}: " + "; ".join(checks.failures),
                details={"steps_passed": done, "failed_step": label},
            )
        document = resp.json() if step.get("capture") else None
        for var, expression in (step.get("capture") or {}).items():
            value = search(expression, document)
            if value is None:
                return Outcome(
                    FAIL,
                    f"{label}: capture {var!r} ({expression}) found nothing",
                    details={"steps_passed": done, "failed_step": label},
                )
            captured[var] = value
            if var not in (opts.get("public_captures") or []):
                ctx.redactor.add(value)  # captured values are secrets unless declared public
        done.append(label)
    return Outcome(
        PASS,
        f"{len(done)} steps passed: {', '.join(done)}",
        value=len(done),
        details={"steps_passed": done, "captured": sorted(captured)},
    )


_VAR_RE = re.compile(r"\[\[\s*(\w+)\s*\]\]")


def _substitute(value: Any, captured: dict[str, Any]) -> Any:
    """Replace `[[ var ]]` with captured values (not `{{ }}`, which Ansible would template)."""
    if isinstance(value, str):

        def repl(match: re.Match[str]) -> str:
            if match[1] not in captured:
                raise CheckError(f"flow variable {match[1]!r} was not captured by an earlier step")
            return str(captured[match[1]])

        return _VAR_RE.sub(repl, value)
    if isinstance(value, dict):
        return {k: _substitute(v, captured) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, captured) for v in value]
    return value


FLOW = CheckType(
    name="flow",
    description="ordered HTTP steps; `capture` takes JMESPath values from a JSON response into "
    "later steps as [[ var ]] (captured values are redacted)",
    options={
        "base_url": {"type": "str", "default": ""},
        "headers": {"type": "dict", "default": {}},
        "validate_certs": {"type": "bool", "default": True},
        "ca_file": {"type": "str"},
        "follow_redirects": {"type": "bool", "default": False},
        "max_body_bytes": _REQUEST_OPTIONS["max_body_bytes"],
        "steps": {
            "type": "list",
            "elements": "dict",
            "required": True,
            "description": "each: name, url, method, headers, body, status, json, "
            "headers_present, body_regex, capture {var: jmespath}",
        },
        "public_captures": {
            "type": "list",
            "elements": "str",
            "default": [],
            "description": "captured names that may be shown (all others redacted)",
        },
    },
    run=run_flow,
    read_only=lambda opts: all(_safe(step.get("method")) for step in opts.get("steps") or []),
)

_METRIC_LINE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?P<labels>[^}]*)\})?\s+"
    r"(?P<value>[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?|[-+]?Inf|NaN)(\s+-?\d+)?$"
)


def parse_exposition(text: str) -> tuple[dict[str, list[float]], list[str]]:
    """Metric name -> sample values, and the lines that do not parse."""
    samples: dict[str, list[float]] = {}
    bad: list[str] = []
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        match = _METRIC_LINE.match(line)
        if match is None:
            bad.append(line)
            continue
        samples.setdefault(match["name"], []).append(float(match["value"]))
    return samples, bad


def run_exposition(opts: dict[str, Any], ctx: RunContext) -> Outcome:
    resp = _request(opts, ctx, method="GET", body=None)
    if resp.status != 200:
        return Outcome(FAIL, f"GET {opts['url']}: status {resp.status}, expected 200")
    samples, bad = parse_exposition(resp.text())
    checks = Assertions()
    checks.expect(not bad, "exposition format", f"{len(bad)} lines do not parse, first: {bad[:1]}")
    checks.expect(bool(samples), "has samples", "no samples")
    missing = [name for name in opts.get("required") or [] if name not in samples]
    checks.expect(not missing, "required metrics present", f"missing metrics: {', '.join(missing)}")
    outcome = checks.outcome(f"{len(samples)} metrics parsed", value=len(samples))
    outcome.metrics["metrics"] = len(samples)
    return outcome
