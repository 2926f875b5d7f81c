"""Baseline metrics read from a ledger record (found with runbook 002's example, whose
compose service `auth` names a metric the redaction masks)."""

from __future__ import annotations

from stagegate.ledger import baseline_metrics
from stagegate.redact import redact


def test_a_masked_metric_has_no_baseline_instead_of_crashing_the_gate() -> None:
    record = redact({"metrics": {"resource_usage": {"auth": 12.5, "web-ui": 3.0}}})
    assert record["metrics"]["resource_usage"]["auth"] == "***"
    assert baseline_metrics(record) == {"resource_usage": {"web-ui": 3.0}}
    assert baseline_metrics({"metrics": {"x": {"ok": True, "n": 2}}}) == {"x": {"n": 2.0}}
    assert baseline_metrics(None) == {}
