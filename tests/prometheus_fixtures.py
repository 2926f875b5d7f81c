"""A real Prometheus (Debian's `prometheus` package, installed by scripts/setup.sh) scraping a
target the test serves, with one alert rule (`ContainerRestarted`, critical, when a container
restarted), and a real Alertmanager (`prometheus-alertmanager`): each with its own config, free
port and data dir, stopped after the test module."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port

SCRAPE_INTERVAL = "1s"
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0)


@dataclass
class Target:
    """What the scraped service exposes; tests change it between scrapes.

    `requests` counts requests by status; `latencies` are request durations in seconds
    (a histogram, the sandbox API's `http_request_duration_seconds`), `restarts` and
    `memory_bytes` are gauges per container.
    """

    requests: dict[int, int] = field(default_factory=lambda: {200: 0, 500: 0})
    latencies: list[float] = field(default_factory=list)
    restarts: dict[str, int] = field(default_factory=lambda: {"api": 0, "worker": 0})
    memory_bytes: int = 50 * 1024 * 1024
    lock: threading.Lock = field(default_factory=threading.Lock)

    def render(self) -> str:
        with self.lock:
            lines = ["# TYPE http_requests_total counter"]
            lines += [
                f'http_requests_total{{status="{status}"}} {count}'
                for status, count in sorted(self.requests.items())
            ]
            lines.append("# TYPE http_request_duration_seconds histogram")
            for bound in LATENCY_BUCKETS:
                count = sum(1 for s in self.latencies if s <= bound)
                lines.append(f'http_request_duration_seconds_bucket{{le="{bound}"}} {count}')
            lines += [
                f'http_request_duration_seconds_bucket{{le="+Inf"}} {len(self.latencies)}',
                f"http_request_duration_seconds_sum {sum(self.latencies):.6f}",
                f"http_request_duration_seconds_count {len(self.latencies)}",
                "# TYPE container_restarts gauge",
            ]
            lines += [
                f'container_restarts{{container="{name}"}} {count}'
                for name, count in sorted(self.restarts.items())
            ]
            lines += ["# TYPE app_memory_bytes gauge", f"app_memory_bytes {self.memory_bytes}"]
        return "\n".join(lines) + "\n"


@dataclass
class Prometheus:
    url: str
    target: Target
    scrapes: list[float]

    def query(self, promql: str) -> Any:
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - local http URL
            return json.loads(resp.read())["data"]["result"]

    def wait_scraped(self, count: int = 2, timeout: float = 30.0) -> None:
        """Wait until Prometheus has scraped the target `count` more times (what the test
        changed is then in its data)."""
        wanted = len(self.scrapes) + count
        deadline = time.monotonic() + timeout
        while len(self.scrapes) < wanted:
            if time.monotonic() > deadline:
                raise AssertionError(f"Prometheus did not scrape the target within {timeout}s")
            time.sleep(0.1)


def _serve(target: Target, scrapes: list[float]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            body = target.render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            scrapes.append(time.monotonic())

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{url} exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2):  # noqa: S310
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} not ready within 60s: {log.read_text()[-2000:]}")


@contextmanager
def _running(name: str, args: list[str], work: Path) -> Iterator[str]:
    """Start the Debian binary `name` with `args` on a free port; yield its URL; stop it."""
    binary = shutil.which(name)
    if binary is None:
        pytest.fail(f"{name} is not installed; run `make setup` (scripts/setup.sh)")
    port = free_port()
    log = work / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [binary, f"--web.listen-address=127.0.0.1:{port}", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


RULES = """groups:
  - name: stagegate-test
    rules:
      - alert: ContainerRestarted
        expr: container_restarts > 0
        labels: {severity: critical}
"""


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    work = tmp_path_factory.mktemp("prometheus")
    target, scrapes = Target(), []
    server = _serve(target, scrapes)
    (work / "rules.yml").write_text(RULES)
    config = work / "prometheus.yml"
    config.write_text(
        f"global: {{scrape_interval: {SCRAPE_INTERVAL}, evaluation_interval: {SCRAPE_INTERVAL}}}\n"
        f"rule_files: ['{work / 'rules.yml'}']\n"
        "scrape_configs:\n"
        "  - job_name: app\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{server.server_address[1]}']}}]\n"
    )
    args = [
        f"--config.file={config}",
        f"--storage.tsdb.path={work / 'data'}",
        "--storage.tsdb.retention.time=1h",
    ]
    try:
        with _running("prometheus", args, work) as url:
            found = Prometheus(url, target, scrapes)
            found.wait_scraped(2)
            yield found
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Alertmanager (no cluster), its URL."""
    work = tmp_path_factory.mktemp("alertmanager")
    config = work / "alertmanager.yml"
    config.write_text("route: {receiver: default}\nreceivers: [{name: default}]\n")
    args = [
        f"--config.file={config}",
        f"--storage.path={work / 'data'}",
        "--cluster.listen-address=",
    ]
    with _running("prometheus-alertmanager", args, work) as url:
        yield url
