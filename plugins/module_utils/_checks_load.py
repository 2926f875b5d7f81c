# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Load and throughput: the `load` check type (a bounded built-in load run against a local
target) and `load_result` (the figures of a k6, `ab` or locust run read from its output).

Both report the same figures, graded against bands by the controller: `requests`,
`errors`, `error_rate` (%), `rps` (requests answered per second), `avg_ms`, `min_ms`,
`p50_ms`, `p90_ms`, `p95_ms`, `p99_ms`, `max_ms` (each when the source has it).
Standard library only.
"""

from __future__ import annotations

import csv
import ipaddress
import json
import re
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ansible_collections.stagegate.release.plugins.module_utils._checks_common import (
    PASS,
    CheckError,
    CheckType,
    Outcome,
    RunContext,
)
from ansible_collections.stagegate.release.plugins.module_utils._checks_http import (
    _REQUEST_OPTIONS,
    Response,
    _request,
    _statuses,
    percentile,
)

# Hard caps: a load check is a probe of a staging target, never a soak or a stress test.
MAX_DURATION_S = 300.0
MAX_CONCURRENCY = 64
MAX_REQUESTS = 100_000
DEFAULT_ERROR_RATE = "< 1%"  # seed 002's k6 gate; a band the user sets replaces it

FIGURES: dict[str, str] = {
    "requests": "",
    "errors": "",
    "error_rate": "%",
    "rps": "",
    "avg_ms": "ms",
    "min_ms": "ms",
    "p50_ms": "ms",
    "p90_ms": "ms",
    "p95_ms": "ms",
    "p99_ms": "ms",
    "max_ms": "ms",
}
_BANDS_OPTION: dict[str, Any] = {
    "type": "dict",
    "default": {},
    "description": "figure -> bands, figures: " + ", ".join(FIGURES) + "; e.g. "
    "{p95_ms: {pass: '<= 200ms', warn: '<= 500ms'}, rps: '>= 50', error_rate: '< 1%'}; "
    f"error_rate is graded '{DEFAULT_ERROR_RATE}' unless given",
    "options": {figure: {"type": "bands"} for figure in FIGURES},
}


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def target_refusal(opts: dict[str, Any]) -> str | None:
    """Why the `load` check may not send load to its URL's host, or None when it may: the
    host must be a loopback address (127.0.0.0/8, ::1), `localhost`, or named in
    `allow_hosts` (e.g. the inventory's hosts). Names are compared as written, never resolved."""
    host = urlsplit(str(opts.get("url") or "")).hostname or ""
    allowed = [str(name).lower() for name in opts.get("allow_hosts") or []]
    if _loopback(host) or host.lower() in allowed:
        return None
    return (
        f"url host {host!r} is not a loopback address or localhost and not in allow_hosts "
        f"{allowed}: a load check only loads local targets unless a host is allowed by name"
    )


def _validate_load(opts: dict[str, Any]) -> list[str]:
    refusal = target_refusal(opts)
    return [f"option 'url' = {opts.get('url')!r}: {refusal}"] if refusal else []


class _Run:
    """One bounded load run: `concurrency` workers send requests until `duration` seconds
    have passed, `requests` were sent, or the check is cancelled; it stops by itself."""

    def __init__(self, opts: dict[str, Any], ctx: RunContext) -> None:
        self.opts, self.ctx = opts, ctx
        self.expected = _statuses(opts.get("status") or 200)
        self.budget = opts.get("requests")
        self.lock = threading.Lock()
        self.sent = 0
        self.times: list[float] = []  # every answered request (any status), as ab counts them
        self.errors: list[str] = []  # unanswered requests and unexpected statuses
        self.unanswered = 0
        self.deadline = 0.0

    def _take(self) -> bool:
        with self.lock:
            if self.budget is not None and self.sent >= self.budget:
                return False
            self.sent += 1
            return True

    def stopped_by(self) -> str:
        """What ended the run: `requests` (the budget was sent), `cancelled`, or `duration`."""
        if self.budget is not None and self.sent >= self.budget:
            return "requests"
        return "cancelled" if self.ctx.cancelled.is_set() else "duration"

    def _worker(self) -> None:
        while not self.ctx.cancelled.is_set() and time.monotonic() < self.deadline:
            if not self._take():
                return
            try:
                response: Response | str = _request(self.opts, self.ctx, keep_body=False)
            except CheckError as exc:
                response = str(exc)
            except Exception as exc:  # a worker never dies silently: the error is counted
                response = f"request failed: {type(exc).__name__}: {exc}"
            with self.lock:
                if isinstance(response, str):
                    self.errors.append(response)
                    self.unanswered += 1
                    continue
                self.times.append(response.elapsed_ms)
                if response.status not in self.expected:
                    self.errors.append(f"status {response.status}")

    def go(self) -> float:
        """Run; the seconds it took."""
        started = time.monotonic()
        self.deadline = started + float(self.opts["duration"])
        workers = [
            threading.Thread(target=self._worker, daemon=True)
            for _ in range(int(self.opts["concurrency"]))
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return time.monotonic() - started


def latency_figures(times: list[float]) -> dict[str, float]:
    """avg/min/p50/p90/p95/p99/max of some request times in ms."""
    if not times:
        return {}
    shares = {"p50_ms": 0.5, "p90_ms": 0.9, "p95_ms": 0.95, "p99_ms": 0.99}
    return {
        "avg_ms": sum(times) / len(times),
        "min_ms": min(times),
        **{name: percentile(times, share) for name, share in shares.items()},
        "max_ms": max(times),
    }


def _graded_outcome(figures: dict[str, float], opts: dict[str, Any], source: str) -> Outcome:
    """The figures measured, each with its band; the check's value is `rps`."""
    bands = {name: band for name, band in (opts.get("bands") or {}).items() if band is not None}
    bands.setdefault("error_rate", DEFAULT_ERROR_RATE)
    missing = sorted(name for name in bands if name not in figures)
    if missing:
        raise CheckError(
            f"{source}: bands name figures it does not have: {', '.join(missing)} "
            f"(it has {', '.join(figures)})"
        )
    outcome = Outcome(PASS, "")
    for name, value in figures.items():
        outcome.measure(name, value, FIGURES.get(name, ""), bands.get(name))
    outcome.value = outcome.metrics.get("rps")  # as recorded (rounded) in metrics
    outcome.details["value_is"] = "rps"
    shown = [
        f"{figures['requests']:g} requests" if "requests" in figures else "",
        f"{figures['rps']:.1f} req/s" if "rps" in figures else "",
        *(
            f"{name[:-3]} {figures[name]:.1f} ms"
            for name in ("p50_ms", "p95_ms", "p99_ms")
            if name in figures
        ),
        f"error rate {figures['error_rate']:.2f}%" if "error_rate" in figures else "",
    ]
    outcome.message = f"{source}: " + ", ".join(part for part in shown if part)
    return outcome


def run_load(opts: dict[str, Any], ctx: RunContext) -> Outcome:
    refusal = target_refusal(opts)
    if refusal:
        raise CheckError(refusal)
    load = _Run(opts, ctx)
    seconds = load.go()
    answered, failed = len(load.times), len(load.errors)
    total = answered + load.unanswered
    if not answered:
        reason = load.errors[0] if load.errors else "none was sent"
        raise CheckError(f"load: no request was answered ({reason})")
    figures = {
        "requests": float(total),
        "errors": float(failed),
        "error_rate": 100.0 * failed / total,
        "rps": answered / seconds,
        **latency_figures(load.times),
    }
    source = f"load {opts['url']} at concurrency {opts['concurrency']} for {seconds:.1f}s"
    outcome = _graded_outcome(figures, opts, source)
    stopped_by = load.stopped_by()
    outcome.details.update(
        url=opts["url"],
        concurrency=opts["concurrency"],
        seconds=round(seconds, 3),
        stopped_by=stopped_by,
        first_errors=sorted(set(load.errors))[:5],
    )
    if failed:
        outcome.message += f" ({failed} errors, e.g. {load.errors[0]})"
    if opts.get("requests") and stopped_by != "requests":
        outcome.message += (
            f"; stopped by its {opts['duration']:g}s duration after {total} of "
            f"{opts['requests']} requests"
        )
    return outcome


def _load_seconds(opts: dict[str, Any], timeout: float) -> float:
    """The run's duration; the last requests started may take one more `timeout`."""
    return float(opts.get("duration") or 0)


LOAD = CheckType(
    name="load",
    description="a bounded load run against a local target: requests per second, latency "
    "percentiles and error rate at a given concurrency for a given duration, graded against "
    "bands; it stops by itself",
    options={
        **_REQUEST_OPTIONS,
        "status": {
            "type": "intlist",
            "default": 200,
            "description": "expected status, or a list; any other answer counts as an error",
        },
        "duration": {
            "type": "float",
            "default": 10.0,
            "minimum": 0.1,
            "maximum": MAX_DURATION_S,
            "description": f"seconds the run sends requests (at most {MAX_DURATION_S:g})",
        },
        "concurrency": {
            "type": "int",
            "default": 4,
            "minimum": 1,
            "maximum": MAX_CONCURRENCY,
            "description": f"requests in flight at once (at most {MAX_CONCURRENCY})",
        },
        "requests": {
            "type": "int",
            "minimum": 1,
            "maximum": MAX_REQUESTS,
            "description": "stop after this many requests (at most "
            f"{MAX_REQUESTS}), if that comes before `duration`",
        },
        "allow_hosts": {
            "type": "list",
            "elements": "str",
            "default": [],
            "description": "host names or addresses besides loopback the run may load",
        },
        "bands": _BANDS_OPTION,
    },
    run=run_load,
    read_only=False,  # load changes what a service holds (caches, rate limits, logs)
    extra_seconds=_load_seconds,
    validate=_validate_load,
    runs_alone=True,
)


# --- result parsers -------------------------------------------------------------------------


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise CheckError(f"{what} {path}: cannot read: {exc}") from None


def k6_values(metrics: dict[str, Any], name: str) -> dict[str, Any]:
    """A metric's figures in either k6 JSON shape: `--summary-export` keeps them on the
    metric, handleSummary's `data` under `values`."""
    metric = metrics.get(name)
    if not isinstance(metric, dict):
        return {}
    values = metric.get("values", metric)
    return values if isinstance(values, dict) else {}


_K6_TREND = {
    "avg": "avg_ms",
    "min": "min_ms",
    "med": "p50_ms",
    "p(50)": "p50_ms",
    "p(90)": "p90_ms",
    "p(95)": "p95_ms",
    "p(99)": "p99_ms",
    "max": "max_ms",
}


def k6_figures(path: str) -> dict[str, float]:
    """From `k6 run --summary-export FILE` or a handleSummary `JSON.stringify(data)`.

    k6's `http_req_failed` is a Rate of failed requests: its `passes` count failed requests
    and its `value` (export) or `rate` (handleSummary) is their share.
    """
    try:
        document = json.loads(_read(path, "k6 summary"))
    except ValueError as exc:
        raise CheckError(f"k6 summary {path}: not JSON: {exc}") from None
    metrics = document.get("metrics") if isinstance(document, dict) else None
    if not isinstance(metrics, dict) or "http_reqs" not in metrics:
        raise CheckError(f"k6 summary {path}: no metrics.http_reqs; expected k6 summary JSON")
    figures: dict[str, float] = {}
    reqs = k6_values(metrics, "http_reqs")
    figures["requests"] = float(reqs.get("count", 0))
    if "rate" in reqs:
        figures["rps"] = float(reqs["rate"])
    failed = k6_values(metrics, "http_req_failed")
    if failed:
        figures["errors"] = float(failed.get("passes", 0))
        share = failed.get("rate", failed.get("value"))
        if isinstance(share, (int, float)):
            figures["error_rate"] = 100.0 * float(share)
    for key, name in _K6_TREND.items():
        value = k6_values(metrics, "http_req_duration").get(key)
        if isinstance(value, (int, float)):
            figures[name] = float(value)
    return figures


_AB_NUMBERS = {
    "requests": r"^Complete requests:\s+(\d+)",
    "rps": r"^Requests per second:\s+([\d.]+)",
    "avg_ms": r"^Time per request:\s+([\d.]+) \[ms\] \(mean\)$",
    "non_2xx": r"^Non-2xx responses:\s+(\d+)",
}
_AB_FAILED = re.compile(
    r"^Failed requests:\s+(\d+)(?:\s*\n\s*\(Connect: (\d+), Receive: (\d+), Length: (\d+), "
    r"Exceptions: (\d+)\))?",
    re.MULTILINE,
)
_AB_PERCENT = re.compile(r"^\s+(\d+)%\s+(\d+)", re.MULTILINE)
_AB_TOTAL = re.compile(r"^Total:\s+(\d+)\s", re.MULTILINE)


def ab_figures(path: str) -> dict[str, float]:
    """From the text `ab` (apache2-utils) prints. Errors are failed connects, receives and
    exceptions plus non-2xx responses; `Length` failures are left out (ab counts a body of
    another length than the first one as failed, which any dynamic page is)."""
    text = _read(path, "ab output")
    found = {name: re.search(pattern, text, re.MULTILINE) for name, pattern in _AB_NUMBERS.items()}
    if found["requests"] is None or found["rps"] is None:
        raise CheckError(f"ab output {path}: no 'Complete requests' / 'Requests per second'")
    figures = {name: float(match[1]) for name, match in found.items() if match is not None}
    failed = _AB_FAILED.search(text)
    errors = figures.pop("non_2xx", 0.0)
    if failed is not None:
        connect, receive, _length, exceptions = (float(n or 0) for n in failed.groups()[1:])
        errors += connect + receive + exceptions
    figures["errors"] = errors
    figures["error_rate"] = 100.0 * errors / figures["requests"] if figures["requests"] else 0.0
    total = _AB_TOTAL.search(text)
    if total is not None:
        figures["min_ms"] = float(total[1])
    table = {int(share): float(ms) for share, ms in _AB_PERCENT.findall(text)}
    for share, name in ((50, "p50_ms"), (90, "p90_ms"), (95, "p95_ms"), (99, "p99_ms")):
        if share in table:
            figures[name] = table[share]
    if 100 in table:
        figures["max_ms"] = table[100]
    return figures


_LOCUST_COLUMNS = {
    "Request Count": "requests",
    "Failure Count": "errors",
    "Requests/s": "rps",
    "Average Response Time": "avg_ms",
    "Min Response Time": "min_ms",
    "50%": "p50_ms",
    "90%": "p90_ms",
    "95%": "p95_ms",
    "99%": "p99_ms",
    "Max Response Time": "max_ms",
}


def locust_figures(path: str, row: str = "Aggregated") -> dict[str, float]:
    """From locust's `--csv PREFIX` `PREFIX_stats.csv`: the row whose Name is `row`
    (default the `Aggregated` total). Percentiles a run did not reach read `N/A`: left out."""
    rows = list(csv.DictReader(_read(path, "locust stats").splitlines()))
    if not rows or "Request Count" not in rows[0]:
        raise CheckError(f"locust stats {path}: no 'Request Count' column; expected *_stats.csv")
    chosen = next((r for r in rows if r.get("Name") == row), None)
    if chosen is None:
        names = ", ".join(repr(r.get("Name")) for r in rows)
        raise CheckError(f"locust stats {path}: no row named {row!r} (rows: {names})")
    figures: dict[str, float] = {}
    for column, name in _LOCUST_COLUMNS.items():
        try:
            figures[name] = float(chosen.get(column) or "")
        except ValueError:
            continue
    requests = figures.get("requests", 0.0)
    figures["error_rate"] = 100.0 * figures.get("errors", 0.0) / requests if requests else 0.0
    return figures


PARSERS = {"k6": k6_figures, "ab": ab_figures, "locust": locust_figures}


def run_load_result(opts: dict[str, Any], ctx: RunContext) -> Outcome:
    path, kind = opts["path"], opts["format"]
    figures = locust_figures(path, opts["row"]) if kind == "locust" else PARSERS[kind](path)
    if not figures.get("requests"):
        raise CheckError(f"{kind} results {path}: no request was made")
    outcome = _graded_outcome(figures, opts, f"{kind} {path}")
    outcome.details.update(path=path, format=kind)
    return outcome


LOAD_RESULT = CheckType(
    name="load_result",
    description="the figures of a load run read from its output (k6 summary JSON, ab output, "
    "locust stats CSV), graded against bands",
    options={
        "format": {
            "type": "str",
            "required": True,
            "choices": sorted(PARSERS),
            "description": "k6 (--summary-export or handleSummary JSON), ab (its printed "
            "output) or locust (--csv PREFIX: PREFIX_stats.csv)",
        },
        "path": {"type": "str", "required": True, "description": "the results file"},
        "row": {
            "type": "str",
            "default": "Aggregated",
            "description": "locust: the stats row by Name",
        },
        "bands": _BANDS_OPTION,
    },
    run=run_load_result,
)
