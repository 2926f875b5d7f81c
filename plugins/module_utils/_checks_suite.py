# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The `suite` check type: run a test command and/or read its results (JUnit XML, a k6
`--summary-export` JSON, any JSON with JMESPath metrics), report the pass rate and
metrics graded against bands. Standard library only (jmespath for JSON metrics)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from ansible_collections.stagegate.release.plugins.module_utils._checks_common import (
    FAIL,
    PASS,
    CheckError,
    CheckType,
    Outcome,
    RunContext,
)
from ansible_collections.stagegate.release.plugins.module_utils._checks_host import (
    process_details,
    run_process,
)
from ansible_collections.stagegate.release.plugins.module_utils._checks_http import search
from ansible_collections.stagegate.release.plugins.module_utils._checks_load import k6_values


def junit_counts(path: str) -> dict[str, float]:
    """tests/failures/errors/skipped/passed summed over every <testsuite> of a JUnit file."""
    try:
        root = ET.parse(path).getroot()  # noqa: S314 - a results file the user points at
    except (OSError, ET.ParseError) as exc:
        raise CheckError(f"junit {path}: cannot read JUnit XML: {exc}") from None
    suites = [root] if root.tag == "testsuite" else root.iter("testsuite")
    counts = {"tests": 0.0, "failures": 0.0, "errors": 0.0, "skipped": 0.0}
    for suite in suites:
        for key in counts:
            counts[key] += float(suite.get(key, 0) or 0)
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return counts


def _load_json(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckError(f"{path}: cannot read JSON: {exc}") from None


def k6_metrics(path: str) -> dict[str, float]:
    """Figures from `k6 run --summary-export` or handleSummary JSON: checks,
    http_req_duration, http_req_failed (the `load_result` check reads the same files)."""
    metrics = _load_json(path).get("metrics", {})
    found: dict[str, float] = {}
    checks = k6_values(metrics, "checks")
    if "passes" in checks:
        found["passed"], found["failed"] = float(checks["passes"]), float(checks.get("fails", 0))
        found["tests"] = found["passed"] + found["failed"]
    for key, value in k6_values(metrics, "http_req_duration").items():
        if isinstance(value, (int, float)) and key != "count":
            found[f"http_req_duration_{key.replace('(', '').replace(')', '')}_ms"] = float(value)
    failed = k6_values(metrics, "http_req_failed")
    if "value" in failed or "rate" in failed:
        found["http_req_failed_percent"] = 100.0 * float(failed.get("value", failed.get("rate")))
    if "http_reqs" in metrics:
        found["http_reqs"] = float(k6_values(metrics, "http_reqs").get("count", 0))
    return found


def json_metrics(path: str, expressions: dict[str, str]) -> dict[str, float]:
    document = _load_json(path)
    found: dict[str, float] = {}
    for name, expression in expressions.items():
        value = search(expression, document)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise CheckError(f"json metric {name!r} ({expression}) is {value!r}, expected a number")
        found[name] = float(value)
    return found


def _collect(opts: dict[str, Any]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    if opts.get("junit"):
        metrics.update(junit_counts(opts["junit"]))
    if opts.get("k6"):
        metrics.update(k6_metrics(opts["k6"]))
    if opts.get("json_file"):
        metrics.update(json_metrics(opts["json_file"], opts.get("json_metrics") or {}))
    return metrics


def run_suite(opts: dict[str, Any], ctx: RunContext) -> Outcome:
    details: dict[str, Any] = {}
    if opts.get("cmd"):
        proc = run_process(opts, ctx)
        details.update(process_details(proc))
        if not (opts.get("junit") or opts.get("k6") or opts.get("json_file")):
            status = PASS if proc.returncode == 0 else FAIL
            return Outcome(status, f"rc {proc.returncode}", value=proc.returncode, details=details)
    metrics = _collect(opts)
    outcome = Outcome(PASS, "", details=details)
    bands = dict(opts.get("bands") or {})
    if opts.get("min_pass_rate") is not None:
        bands["pass_rate"] = opts["min_pass_rate"]
    counted = metrics.get("tests", 0) - metrics.get("skipped", 0)
    if counted > 0:
        metrics["pass_rate"] = 100.0 * metrics.get("passed", 0) / counted
    elif "pass_rate" in bands:
        return Outcome(FAIL, "no test ran, a pass rate was required", details=details)
    for name, value in metrics.items():
        unit = "%" if name.endswith(("rate", "percent")) else ("ms" if name.endswith("_ms") else "")
        outcome.measure(name, value, unit, bands.get(name))
    missing = sorted(set(bands) - set(metrics))
    if missing:
        raise CheckError(f"bands name metrics the results do not have: {', '.join(missing)}")
    rate = metrics.get("pass_rate")
    outcome.value = round(rate, 2) if rate is not None else None
    outcome.message = (
        f"{metrics.get('passed', 0):g}/{counted:g} passed ({rate:.1f}%)"
        if rate is not None
        else f"{len(metrics)} metrics read"
    )
    if "rc" in details and details["rc"] != 0 and not opts.get("allow_failed_rc", True):
        outcome.status, outcome.message = FAIL, f"rc {details['rc']}; " + outcome.message
    return outcome


SUITE = CheckType(
    name="suite",
    description="run a test command and/or read results (JUnit XML, k6 summary JSON, JSON with "
    "JMESPath metrics): pass rate and metrics graded against bands",
    options={
        "cmd": {"type": "raw", "description": "command to run first (list or string, no shell)"},
        "chdir": {"type": "str"},
        "env": {"type": "dict", "default": {}},
        "junit": {"type": "str", "description": "JUnit XML results file"},
        "k6": {"type": "str", "description": "k6 --summary-export JSON file"},
        "json_file": {"type": "str", "description": "any JSON results file"},
        "json_metrics": {"type": "dict", "default": {}, "description": "metric -> JMESPath"},
        "min_pass_rate": {"type": "bands", "description": "e.g. {pass: '>= 95%', warn: '>= 90%'}"},
        "bands": {"type": "dict", "default": {}, "description": "metric -> bands"},
        "allow_failed_rc": {
            "type": "bool",
            "default": True,
            "description": "a non-zero rc is fine when results are graded "
            "(pytest exits 1 on any failed test)",
        },
    },
    run=run_suite,
    read_only=lambda opts: not opts.get("cmd"),  # reading a results file only observes
)
