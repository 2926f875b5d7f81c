# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The `prometheus` check type, in two modes. Standard library only.

- Without `query`: a metrics endpoint (`url`) parses as exposition format and has the
  `required` metrics (`_checks_http.run_exposition`).
- With `query`: a PromQL instant query against a Prometheus server's HTTP API
  (`<url>/api/v1/query`, https://prometheus.io/docs/prometheus/latest/querying/api/), whose
  value is measured under `metric` and graded against the `value` bands by the controller's
  one grader (error rate, p95 from `histogram_quantile`, restarts, memory). A query that
  returns no series, several series, NaN, or an error is a result that says so.
"""

from __future__ import annotations

import math
import urllib.parse
from typing import Any

from ansible_collections.stagegate.release.plugins.module_utils._bands import UNITS
from ansible_collections.stagegate.release.plugins.module_utils._checks_common import (
    ERROR,
    FAIL,
    PASS,
    WARN,
    CheckError,
    CheckType,
    Outcome,
    RunContext,
)
from ansible_collections.stagegate.release.plugins.module_utils._checks_http import (
    _REQUEST_OPTIONS,
    _request,
    run_exposition,
)

API_PATH = "/api/v1/query"
NO_DATA = {"fail": FAIL, "warn": WARN, "pass": PASS, "error": ERROR}
_MAX_SERIES_SHOWN = 5


def query_url(base: str, query: str, at: str | None = None) -> str:
    """`<base>/api/v1/query?query=...` (a base that already ends with the API path is kept)."""
    base = base.rstrip("/")
    if not base.endswith(API_PATH):
        base += API_PATH
    params = {"query": query, **({"time": at} if at else {})}
    return f"{base}?{urllib.parse.urlencode(params)}"


def labels_text(labels: dict[str, Any]) -> str:
    """`{job="api",route="/health"}`: how Prometheus itself names a series."""
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return f"{labels.get('__name__', '')}{{{inner}}}"


def parse_result(data: Any) -> list[tuple[str, float]]:
    """[(series name, value)] of an instant query's `data`: a vector (one per series) or a
    scalar (one unnamed value). A range vector or a string is refused with the reason."""
    if not isinstance(data, dict) or "resultType" not in data:
        raise CheckError(f"the answer has no data.resultType: {str(data)[:120]!r}")
    kind, result = data["resultType"], data.get("result")
    if kind == "scalar":
        return [("scalar", float(result[1]))]
    if kind == "vector":
        return [(labels_text(item.get("metric") or {}), float(item["value"][1])) for item in result]
    raise CheckError(
        f"the query returned a {kind}, expected an instant vector or a scalar "
        "(drop the range selector [5m], or wrap it in rate()/max_over_time())"
    )


def _query(opts: dict[str, Any], ctx: RunContext) -> list[tuple[str, float]]:
    url = query_url(opts["url"], opts["query"], opts.get("time"))
    resp = _request(opts, ctx, url=url, method="GET", body=None)
    try:
        answer = resp.json()
    except CheckError as exc:
        raise CheckError(f"{opts['url']}{API_PATH}: status {resp.status}, {exc}") from None
    if not isinstance(answer, dict) or answer.get("status") != "success":
        answer = answer if isinstance(answer, dict) else {"error": answer}
        raise CheckError(
            f"Prometheus refused the query ({answer.get('errorType', '?')}): "
            f"{answer.get('error', answer)}"
        )
    return parse_result(answer.get("data"))


def _no_data(opts: dict[str, Any], reason: str) -> Outcome | None:
    """The outcome when the query gave nothing to grade; None when `no_data: zero`."""
    if opts["no_data"] == "zero":
        return None
    status = NO_DATA[opts["no_data"]]
    return Outcome(
        status,
        f"{opts['query']}: {reason} (no_data: {opts['no_data']})",
        details={"query": opts["query"], "series": 0},
    )


def _graded(opts: dict[str, Any], series: list[tuple[str, float]]) -> Outcome:
    name, unit, bands = opts["metric"], opts["unit"], opts.get("value")
    if len(series) > 1 and opts["series"] == "one":
        shown = ", ".join(f"{label} {value:g}" for label, value in series[:_MAX_SERIES_SHOWN])
        more = (
            f" and {len(series) - _MAX_SERIES_SHOWN} more"
            if len(series) > _MAX_SERIES_SHOWN
            else ""
        )
        return Outcome(
            FAIL,
            f"{opts['query']}: {len(series)} series, expected one ({shown}{more}); aggregate "
            "in the query (sum, max, avg by ...) or set series: each",
            details={"query": opts["query"], "series": len(series)},
        )
    values = [value for _, value in series]
    worst_value = max(values)
    outcome = Outcome(
        PASS,
        f"{opts['query']} = "
        + ", ".join(f"{label} {value:g}{unit}" for label, value in series[:_MAX_SERIES_SHOWN]),
        value=round(worst_value, 6),
        threshold=None,
        details={"query": opts["query"], "series": len(series), "value_is": name},
    )
    outcome.metrics[name] = round(worst_value, 6)
    if len(series) == 1:
        outcome.measure(name, values[0], unit, bands)
        return outcome
    outcome.details["values"] = dict(series)
    if bands is not None:
        outcome.measurements += [
            {"name": f"{name}[{label}]", "value": value, "unit": unit, "bands": bands}
            for label, value in series
        ]
    return outcome


def run_query(opts: dict[str, Any], ctx: RunContext) -> Outcome:
    series = _query(opts, ctx)
    if not series:
        empty = _no_data(opts, "the query returned no series")
        if empty is not None:
            return empty
        series = [("none (no_data: zero)", 0.0)]
    not_numbers = [label for label, value in series if math.isnan(value)]
    if not_numbers:
        empty = _no_data(
            opts, f"NaN for {', '.join(not_numbers)} (0/0: nothing counted in the window?)"
        )
        if empty is not None:
            return empty
        series = [(label, 0.0 if math.isnan(value) else value) for label, value in series]
    endless = [f"{label} {value:+g}" for label, value in series if math.isinf(value)]
    if endless:  # no number to grade or keep (JSON has no Inf)
        return Outcome(
            FAIL,
            f"{opts['query']}: {', '.join(endless)} (a histogram_quantile above the highest "
            "finite bucket, or a division by 0)",
            details={"query": opts["query"], "series": len(series)},
        )
    return _graded(opts, series)


def run_prometheus(opts: dict[str, Any], ctx: RunContext) -> Outcome:
    if opts.get("query"):
        return run_query(opts, ctx)
    return run_exposition(opts, ctx)


def validate_prometheus(opts: dict[str, Any]) -> list[str]:
    """What the option schema cannot say: which options belong to which mode."""
    if opts.get("query"):
        return (
            [
                "option 'required' names metrics of a scraped endpoint; with 'query' grade the "
                "query's value with 'value' instead"
            ]
            if opts.get("required")
            else []
        )
    query_only = [key for key in ("value", "time") if opts.get(key) is not None]
    return [
        f"option '{key}' needs 'query' (a PromQL query against a Prometheus server at url)"
        for key in query_only
    ]


PROMETHEUS = CheckType(
    name="prometheus",
    description="a PromQL instant query against a Prometheus server, its value graded against "
    "bands (with `query`); or a metrics endpoint parsed as exposition format with required "
    "metrics (without)",
    options={
        **{k: v for k, v in _REQUEST_OPTIONS.items() if k not in ("method", "body")},
        "required": {
            "type": "list",
            "elements": "str",
            "default": [],
            "description": "without query: metric names the endpoint must expose",
        },
        "query": {
            "type": "str",
            "description": "a PromQL expression; url is then the Prometheus server "
            "(e.g. http://127.0.0.1:9090), queried at /api/v1/query",
        },
        "value": {
            "type": "bands",
            "description": "PASS/WARN bands for the query's value, e.g. "
            "{pass: '<= 1%', warn: '<= 5%'}; without it the value is only recorded",
        },
        "unit": {
            "type": "str",
            "default": "",
            "choices": sorted(UNITS),
            "description": "the unit of the query's value, so bands in other units of the "
            "same kind compare (s for histogram_quantile seconds against '<= 300ms')",
        },
        "metric": {
            "type": "str",
            "default": "value",
            "description": "the name the value is recorded under (result metrics, ledger, "
            "baseline and trend gates)",
        },
        "series": {
            "type": "str",
            "default": "one",
            "choices": ["one", "each"],
            "description": "one: several series are a FAIL that lists them; each: every "
            "series is graded, the worst wins, the value is the highest",
        },
        "no_data": {
            "type": "str",
            "default": "fail",
            "choices": ["fail", "warn", "pass", "error", "zero"],
            "description": "the result when the query returns no series or NaN; zero grades "
            "0 instead (a counter that never incremented)",
        },
        "time": {
            "type": "str",
            "description": "evaluation time (RFC 3339 or Unix seconds); default now",
        },
    },
    run=run_prometheus,
    validate=validate_prometheus,
)
