"""The `prometheus` check's PromQL mode against a real Prometheus scraping a served target:
error rate, p95 from a histogram, restarts per container, no data, several series, errors,
the preflight validation of its options and the redaction of its auth header."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from prometheus_fixtures import Prometheus

from stagegate.catalog import CatalogError, load_catalog
from stagegate.engine import run_checks
from stagegate.plugins import Hooks, new_plugin_manager
from stagegate.results import CheckResult, Status

HOOKS = Hooks(new_plugin_manager(entry_points=False))
TOKEN = "prom-bearer-7f3a9c2e1d"

ERROR_RATE = 'sum(http_requests_total{status=~"5.."}) / sum(http_requests_total) * 100'
P95 = "histogram_quantile(0.95, sum by (le) (http_request_duration_seconds_bucket))"


def run(prometheus: Prometheus, *entries: dict[str, Any]) -> list[CheckResult]:
    for entry in entries:
        entry.setdefault("type", "prometheus")
        entry.setdefault("url", prometheus.url)
    specs = load_catalog(list(entries), HOOKS.check_types())
    return run_checks(specs, hooks=HOOKS)


@pytest.fixture(scope="module")
def scraped(prometheus: Prometheus) -> Prometheus:
    """3 of 100 requests failed; 90 took 30 ms and 10 took 400 ms; the api restarted twice."""
    target = prometheus.target
    with target.lock:
        target.requests.update({200: 97, 500: 3})
        target.latencies[:] = [0.03] * 90 + [0.4] * 10
        target.restarts["api"] = 2
    prometheus.wait_scraped(2)
    return prometheus


def test_error_rate_and_p95_are_graded_against_bands(scraped: Prometheus) -> None:
    error_rate, p95, p95_tight = run(
        scraped,
        {
            "name": "error_rate",
            "query": ERROR_RATE,
            "unit": "%",
            "value": {"pass": "<= 1%", "warn": "<= 5%"},
            "metric": "error_rate_pct",
        },
        # p95 interpolated in the (0.25, 0.5] bucket: 0.25 + 0.25 * 5/10 = 0.375 s
        {"name": "p95", "query": P95, "unit": "s", "value": {"pass": "<= 500ms"}},
        {"name": "p95_tight", "query": P95, "unit": "s", "value": {"pass": "<= 300ms"}},
    )
    assert error_rate.status is Status.WARN, error_rate.message
    assert error_rate.metrics["error_rate_pct"] == pytest.approx(3.0)
    assert "error_rate_pct 3% outside PASS <= 1 %" in error_rate.message
    assert p95.status is Status.PASS, p95.message
    assert p95.value == pytest.approx(0.375)
    assert p95.metrics["value"] == pytest.approx(0.375)
    assert p95_tight.status is Status.FAIL
    assert "outside PASS <= 300 ms" in p95_tight.message


def test_several_series_are_named_or_each_graded(scraped: Prometheus) -> None:
    one, each = run(
        scraped,
        {"name": "restarts_one", "query": "container_restarts", "value": "<= 0"},
        {"name": "restarts_each", "query": "container_restarts", "value": "<= 0", "series": "each"},
    )
    assert one.status is Status.FAIL
    assert "2 series, expected one" in one.message
    assert 'container="api"' in one.message
    assert 'container="worker"' in one.message
    assert each.status is Status.FAIL, each.message
    assert 'value[container_restarts{container="api",' in each.message
    assert 'value[container_restarts{container="worker",' not in each.message
    assert each.value == 2
    assert each.metrics["value"] == 2


def test_no_series_nan_errors_and_range_vectors_are_clear(scraped: Prometheus) -> None:
    results = run(
        scraped,
        {"name": "none", "query": "no_such_metric_total"},
        {"name": "none_zero", "query": "no_such_metric_total", "no_data": "zero", "value": "<= 0"},
        {"name": "none_warn", "query": "no_such_metric_total", "no_data": "warn"},
        {"name": "nan", "query": "sum(no_such_metric_total) / 0 or vector(0) / 0"},
        {"name": "inf", "query": "vector(1) / 0", "no_data": "zero"},
        {"name": "bad", "query": "sum(http_requests_total"},
        {"name": "range", "query": "http_requests_total[1m]"},
        {"name": "scalar", "query": "scalar(sum(http_requests_total))", "value": "== 100"},
        # evaluated in 2001, long before this Prometheus scraped anything
        {"name": "past", "query": "sum(http_requests_total)", "time": "1000000000"},
    )
    by = {r.name: r for r in results}
    assert by["none"].status is Status.FAIL
    assert "returned no series" in by["none"].message
    assert by["none_zero"].status is Status.PASS, by["none_zero"].message
    assert by["none_zero"].value == 0
    assert by["none_warn"].status is Status.WARN
    assert by["nan"].status is Status.FAIL
    assert "NaN" in by["nan"].message
    assert by["inf"].status is Status.FAIL
    assert "+inf" in by["inf"].message
    assert by["inf"].value is None
    assert by["bad"].status is Status.ERROR
    assert "bad_data" in by["bad"].message
    assert by["range"].status is Status.ERROR
    assert "matrix" in by["range"].message
    assert by["scalar"].status is Status.PASS, by["scalar"].message
    assert by["scalar"].value == 100
    assert by["past"].status is Status.FAIL
    assert "returned no series" in by["past"].message


def test_auth_header_is_never_shown_and_unreachable_is_an_error(scraped: Prometheus) -> None:
    down_url = scraped.url.rsplit(":", 1)[0] + ":1"
    (ok, down) = run(
        scraped,
        {
            "name": "with_auth",
            "query": ERROR_RATE,
            "headers": {"Authorization": f"Bearer {TOKEN}"},
        },
        {"name": "down", "url": down_url, "query": "up"},
    )
    assert ok.status is Status.PASS, ok.message
    assert down.status is Status.ERROR
    assert "cannot connect" in down.message
    assert TOKEN not in json.dumps([ok.to_dict(), down.to_dict()])


def test_the_exposition_mode_still_reads_the_target(scraped: Prometheus) -> None:
    target_url = scraped.query("up")[0]["metric"]["instance"]
    (result,) = run(
        scraped,
        {"name": "scrape", "url": f"http://{target_url}/metrics", "required": ["app_memory_bytes"]},
    )
    assert result.status is Status.PASS, result.message


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"query": "up", "required": ["x"]}, "option 'required' names metrics of a scraped"),
        ({"value": "<= 1"}, "option 'value' needs 'query'"),
        ({"query": "up", "value": "about 3"}, "option 'value' = 'about 3'"),
        ({"query": "up", "series": "all"}, "option 'series' = 'all': expected one of one, each"),
        ({"query": "up", "no_data": "ignore"}, "option 'no_data' = 'ignore'"),
        ({"query": "up", "unit": "parsecs"}, "option 'unit' = 'parsecs'"),
    ],
)
def test_options_are_validated_before_anything_runs(entry: dict[str, Any], expected: str) -> None:
    with pytest.raises(CatalogError) as raised:
        load_catalog(
            [{"name": "q", "type": "prometheus", "url": "http://127.0.0.1:9", **entry}],
            HOOKS.check_types(),
        )
    assert expected in str(raised.value)
    assert "check 'q' (type prometheus)" in str(raised.value)


def test_monitoring_health_as_docs_checks_md_shows(scraped: Prometheus, alertmanager: str) -> None:
    """docs/checks.md "Alertmanager, Grafana and Prometheus health": plain `http` checks on a
    real Prometheus's and Alertmanager's own endpoints, and the firing alerts by PromQL (the
    fixture's rule fires: the api restarted)."""
    deadline = time.monotonic() + 30
    while not scraped.query('ALERTS{alertstate="firing"}') and time.monotonic() < deadline:
        time.sleep(0.2)  # the rule is evaluated every second, after the scrape
    results = run(
        scraped,
        {"name": "prometheus_ready", "type": "http", "url": f"{scraped.url}/-/ready"},
        {"name": "prometheus_healthy", "type": "http", "url": f"{scraped.url}/-/healthy"},
        {
            "name": "alert_rules_loaded",
            "type": "http",
            "url": f"{scraped.url}/api/v1/rules?type=alert",
            "json": ["length(data.groups[].rules[]) > `0`"],
        },
        {"name": "alertmanager_ready", "type": "http", "url": f"{alertmanager}/-/ready"},
        {
            "name": "alertmanager_config",
            "type": "http",
            "url": f"{alertmanager}/api/v2/status",
            "json": ["config.original != null", "uptime != null"],
        },
        {
            "name": "no_firing_alerts",
            "query": 'count(ALERTS{alertstate="firing", severity="critical"})',
            "no_data": "zero",
            "value": "<= 0",
        },
    )
    by = {r.name: r for r in results}
    for name in (
        "prometheus_ready",
        "prometheus_healthy",
        "alert_rules_loaded",
        "alertmanager_ready",
        "alertmanager_config",
    ):
        assert by[name].status is Status.PASS, by[name].message
    firing = scraped.query('ALERTS{alertstate="firing"}')
    assert [a["metric"]["container"] for a in firing] == ["api"]
    assert by["no_firing_alerts"].status is Status.FAIL, by["no_firing_alerts"].message
    assert by["no_firing_alerts"].value == 1
