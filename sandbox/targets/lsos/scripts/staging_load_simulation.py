"""Runbook 003's backend/scripts/staging_load_simulation.py for the simulated target.

Same command line as the runbook's; writes the runbook's sections ("Performance Metrics",
"Queue Metrics", "Failure Metrics", "System Stability") to --out. Latency is measured for real
(GET /dashboard during the load phase); the queue figures are read from GET /health/metrics,
polled every half second through the load and drain phases.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

POLL_SECONDS = 0.5


def call(url: str, body: dict[str, Any] | None = None, token: str = "") -> Any:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data, headers, method="POST" if data else "GET")  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 - staging host only
        return json.loads(resp.read())


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)] if ordered else 0.0


def main() -> int:
    parser = argparse.ArgumentParser()
    for name in ("--base-url", "--email", "--password", "--out"):
        parser.add_argument(name, required=True)
    for name in ("--crawl-jobs", "--entity-jobs", "--scheduled-report-runs"):
        parser.add_argument(name, type=int, required=True)
    parser.add_argument("--load-phase-seconds", type=float, default=300)
    parser.add_argument("--drain-phase-seconds", type=float, default=300)
    args = parser.parse_args()
    host = urllib.parse.urlsplit(args.base_url).hostname or ""
    if host.startswith(("prod", "www.")) or ".prod." in host:
        sys.exit(f"refusing a production-like host: {host}")
    base = args.base_url.rstrip("/")
    token = call(f"{base}/auth/login", {"email": args.email, "password": args.password})["data"][
        "access_token"
    ]
    jobs = {
        "crawl": args.crawl_jobs,
        "entity": args.entity_jobs,
        "scheduled_report": args.scheduled_report_runs,
    }
    call(
        f"{base}/simulation/start",
        {"load_phase_seconds": args.load_phase_seconds, "jobs_per_second": sum(jobs.values())},
        token,
    )
    started = time.monotonic()
    latencies: list[float] = []
    depths: list[dict[str, float]] = []
    states: list[tuple[float, str]] = []
    polls = failed_polls = 0
    rates: dict[str, float] = {}
    end = args.load_phase_seconds + args.drain_phase_seconds
    while (elapsed := time.monotonic() - started) < end:
        if elapsed < args.load_phase_seconds:
            begin = time.monotonic()
            call(f"{base}/dashboard?campaign_id=c-1", token=token)
            latencies.append((time.monotonic() - begin) * 1000)
        polls += 1
        try:
            data = call(f"{base}/health/metrics", token=token)["data"]
        except (OSError, ValueError, KeyError):
            failed_polls += 1
        else:
            depths.append({"t": round(elapsed, 2), "depth": data["metrics"]["queue_depth"]})
            states.append((elapsed, data["platform_state"]))
            rates = data["metrics"]["failure_rates"]
        time.sleep(POLL_SECONDS)
    # The backlog grows during the load phase and drains after it: rates from the samples.
    load_depths = [d for d in depths if 0 < d["t"] <= args.load_phase_seconds] or [
        {"t": POLL_SECONDS, "depth": 0.0}
    ]
    grown = max(load_depths, key=lambda d: d["depth"])
    peak = max(depths, key=lambda d: d["depth"], default={"t": 0.0, "depth": 0.0})
    tail = [d for d in depths if d["t"] > peak["t"]]
    emptied = next((d for d in tail if d["depth"] == 0), None)
    last = emptied or (tail[-1] if tail else peak)
    span = last["t"] - peak["t"]
    drain_rate = round((peak["depth"] - last["depth"]) / span, 3) if span else 0.0
    transitions = sum(1 for a, b in itertools.pairwise(states) if a[1] != b[1])
    degraded = sum(POLL_SECONDS for _, state in states if state == "degraded")
    result = {
        "Performance Metrics": {
            "requests": len(latencies),
            "P50_latency_ms": round(sorted(latencies)[len(latencies) // 2], 1) if latencies else 0,
            "P95_latency_ms": round(p95(latencies), 1),
        },
        "Queue Metrics": {
            "drain_rate_after_load": drain_rate,
            "backlog_growth_rate": round(grown["depth"] / grown["t"], 3),
            "max_queue_depth": peak["depth"],
            "queue_depth_over_time": depths,
        },
        "Failure Metrics": {
            "failure_rate_by_task_type": rates,
            "tasks_exceeded_retry_cap": [],
            "health_metrics_polling_failures": failed_polls,
        },
        "System Stability": {
            "time_in_degraded_state_seconds": degraded,
            "platform_state_transitions": transitions,
        },
    }
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump(result, out, indent=2)
    print(f"{polls} polls, {failed_polls} failed; results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
