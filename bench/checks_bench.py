"""100 HTTP checks against a local endpoint, three ways, in one process run.

    .venv/bin/python bench/checks_bench.py [--checks 100]

1. a raw curl loop (one `curl` process per check, as the seeds' runbooks do);
2. one `ansible.builtin.uri` task per check in a real `ansible-playbook` run;
3. one `stagegate.release.checks` task running the same checks as a catalog.

For the two playbooks, the time of an empty playbook (same inventory, same Ansible start-up)
is subtracted before dividing by the number of checks, so the figure is the per-check cost
within a run. Prints seconds per check, the ratio uri/stagegate (bar: >= 20) and the ratio
stagegate/curl (bar: <= 2).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
BODY = json.dumps({"status": "ok", "checks": {"database": {"status": "healthy"}}}).encode()


class Health(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args: Any) -> None:
        """Quiet."""


def timed(func: Any) -> float:
    started = time.perf_counter()
    func()
    return time.perf_counter() - started


def curl_loop(url: str, count: int) -> None:
    for _ in range(count):
        subprocess.run(["curl", "-sf", "-o", "/dev/null", url], check=True)


def playbook(workdir: Path, name: str, tasks: list[dict[str, Any]]) -> Path:
    path = workdir / f"{name}.yml"
    play = [{"name": name, "hosts": "localhost", "gather_facts": False, "tasks": tasks}]
    path.write_text(json.dumps(play))  # JSON is YAML
    return path


def run_playbook(workdir: Path, path: Path) -> None:
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
    }
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(workdir / "hosts.yml"), str(path)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        sys.exit(f"{path.name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checks", type=int, default=100)
    count = parser.parse_args().checks

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/health"

    with tempfile.TemporaryDirectory(prefix="sgbench-") as tmp:
        workdir = Path(tmp)
        (workdir / "hosts.yml").write_text(
            "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
            f"      ansible_python_interpreter: {sys.executable}\n"
        )
        empty = playbook(workdir, "empty", [])
        uri = playbook(
            workdir,
            "uri",
            [
                {"name": f"check {i}", "ansible.builtin.uri": {"url": url, "status_code": 200}}
                for i in range(count)
            ],
        )
        checks = [
            {
                "name": f"check-{i}",
                "type": "http",
                "options": {
                    "url": url,
                    "status": 200,
                    "json": ["checks.database.status == 'healthy'"],
                },
            }
            for i in range(count)
        ]
        stagegate = playbook(
            workdir,
            "stagegate",
            [
                {
                    "name": "checks",
                    "stagegate.release.checks": {"checks": checks, "fail_on": ["FAIL", "ERROR"]},
                }
            ],
        )

        curl_s = timed(lambda: curl_loop(url, count))
        empty_s = timed(lambda: run_playbook(workdir, empty))
        uri_s = timed(lambda: run_playbook(workdir, uri))
        stagegate_s = timed(lambda: run_playbook(workdir, stagegate))
    server.shutdown()

    per = {
        "curl loop": curl_s / count,
        "ansible.builtin.uri": max(uri_s - empty_s, 0.0) / count,
        "stagegate.release.checks": max(stagegate_s - empty_s, 1e-9) / count,
    }
    print(f"{count} HTTP checks against {url}")
    print(f"empty playbook (subtracted): {empty_s:.2f} s")
    print(
        f"raw wall time: curl {curl_s:.2f} s, uri playbook {uri_s:.2f} s, "
        f"stagegate playbook {stagegate_s:.2f} s"
    )
    for name, seconds in per.items():
        print(f"{name:26s} {seconds * 1000:8.2f} ms/check")
    uri_ratio = per["ansible.builtin.uri"] / per["stagegate.release.checks"]
    curl_ratio = per["stagegate.release.checks"] / per["curl loop"]
    print(
        f"ratio uri/stagegate: {uri_ratio:.1f}x (bar >= 20x) "
        f"{'OK' if uri_ratio >= 20 else 'MISSED'}"
    )
    print(
        f"ratio stagegate/curl: {curl_ratio:.2f}x (bar <= 2x) "
        f"{'OK' if curl_ratio <= 2 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
