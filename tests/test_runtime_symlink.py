"""The symlink deploy strategy under a real supervisord, through real ansible-playbook runs.

Each release is a directory unpacked from a git tag; supervisord (Debian's `supervisor`, a
private instance with its own config and socket in the test's temp dir) runs the program with
`directory=<current>`. The deploy role switches the link and restarts the program from the new
directory; a release whose process exits fails the deploy with its log; playbooks/rollback.yml
switches back and proves the release healthy with an HTTP check.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO_ROOT, free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("supervisord") is None, reason="supervisord missing (make setup installs it)"
    ),
]

APP = """\
import http.server, os, pathlib, sys
RELEASE = pathlib.Path("RELEASE").read_text().strip()
if RELEASE == "v3":
    print("boom: settings module not found", file=sys.stderr)
    sys.exit(3)
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ('{"release": "%s", "cwd": "%s"}' % (RELEASE, os.getcwd())).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
print("listening", flush=True)
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@dataclass
class Site:
    root: Path
    port: int
    supervisord: subprocess.Popen[bytes]

    @property
    def config(self) -> Path:
        return self.root / "supervisord.conf"

    @property
    def current(self) -> Path:
        return self.root / "current"

    def strategy_vars(self) -> dict[str, Any]:
        return {
            "stagegate_deploy_strategy": "symlink",
            "stagegate_deploy_strategy_options": {
                "releases_dir": str(self.root / "releases"),
                "current": str(self.current),
                "supervisor_config": str(self.config),
                "stable_seconds": 1,
            },
            "stagegate_state_dir": str(self.root / "state"),
            "stagegate_project_dir": str(self.root / "checkout"),
            "stagegate_source_repo": str(self.root / "src"),
            "stagegate_report_dir": str(self.root / "reports"),
            "stagegate_compose_project": "symlink-test",
            "stagegate_tiers": [["api"]],
            "stagegate_app_services": ["api"],
            "stagegate_deploy_migrate": False,
            "stagegate_deploy_tier_timeout": 60,
            "stagegate_deploy_readiness": {"api": {"http": self.url, "status": 200}},
            # Required by the rollback phase; stagegate_rollback_database: none leaves it alone.
            "stagegate_db": {"host": "127.0.0.1", "port": 5432, "name": "app", "user": "app"},
        }

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def get(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url, timeout=5) as resp:  # noqa: S310 - http://127.0.0.1
            data: dict[str, Any] = json.loads(resp.read())
        return data

    def ctl(self, *args: str) -> str:
        return subprocess.run(
            ["supervisorctl", "-c", str(self.config), *args],
            capture_output=True,
            text=True,
            check=False,
        ).stdout

    def playbook(
        self, playbook: str, **extra: Any
    ) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
        result_file = self.root / f"result-{time.monotonic_ns()}.json"
        vars_file = result_file.with_suffix(".vars.json")
        vars_file.write_text(
            json.dumps({**self.strategy_vars(), "result_file": str(result_file), **extra})
        )
        inventory = self.root / "inventory.yml"
        inventory.write_text(
            "staging:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
            f"      ansible_python_interpreter: {sys.executable}\n"
        )
        proc = subprocess.run(
            [
                str(Path(sys.executable).parent / "ansible-playbook"),
                "-i",
                str(inventory),
                playbook,
                "-e",
                f"@{vars_file}",
            ],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            env={
                **os.environ,
                "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
                "ANSIBLE_NOCOLOR": "1",
            },
            check=False,
        )
        results = json.loads(result_file.read_text()) if result_file.exists() else {}
        return proc, results

    def deploy(self, release: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
        # What the source role leaves: the checkout at the release's tag, with its marker.
        checkout = self.root / "checkout"
        _git(checkout, "checkout", "-q", release)
        (checkout / ".stagegate-release").write_text(release + "\n")
        return self.playbook("tests/playbooks/symlink_deploy.yml", stagegate_release=release)


def _write_supervisor_config(root: Path, port: int) -> None:
    (root / "supervisord.conf").write_text(
        f"""\
[unix_http_server]
file={root}/supervisor.sock
[supervisord]
logfile={root}/supervisord.log
pidfile={root}/supervisord.pid
childlogdir={root}/logs
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://{root}/supervisor.sock
[program:api]
command=/usr/bin/python3 app.py
directory={root}/current
environment=PORT="{port}"
autostart=false
startsecs=1
startretries=2
stopasgroup=true
"""
    )


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    src = tmp_path / "src"
    src.mkdir()
    _git(src, "init", "-q", "-b", "main")
    (src / "app.py").write_text(APP)
    for release in ("v1", "v2", "v3"):
        (src / "RELEASE").write_text(release + "\n")
        _git(src, "add", "-A")
        _git(src, "commit", "-q", "-m", release)
        _git(src, "tag", release)
        target = tmp_path / "releases" / release
        target.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "archive", release], cwd=src, check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    _git(tmp_path, "clone", "-q", str(src), "checkout")
    (tmp_path / "logs").mkdir()
    port = free_port()
    _write_supervisor_config(tmp_path, port)
    proc = subprocess.Popen(
        ["supervisord", "-n", "-c", str(tmp_path / "supervisord.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    site = Site(tmp_path, port, proc)
    try:
        deadline = time.monotonic() + 30
        while "api" not in site.ctl("status"):
            assert proc.poll() is None, "supervisord exited"
            assert time.monotonic() < deadline, "supervisord did not answer within 30 s"
            time.sleep(0.2)
        yield site
    finally:
        proc.terminate()  # supervisord stops its programs before it exits
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_switch_crash_and_rollback_under_supervisord(site: Site) -> None:
    # The strategy's options are validated with the configuration, before anything changes.
    refused, _ = site.playbook(
        "playbooks/rollback.yml",
        stagegate_deploy_strategy_options={"releases_dir": "/x", "stable_seconds": "soon"},
    )
    assert refused.returncode != 0
    assert "option 'current' is required" in refused.stdout, refused.stdout[-3000:]
    assert "option 'stable_seconds' = 'soon': expected" in refused.stdout
    assert "Compute the rollback plan" not in refused.stdout

    first, results = site.deploy("v1")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    assert site.get() == {"release": "v1", "cwd": str(site.root / "releases" / "v1")}
    assert results["startup"]["programs"]["api"]["release"] == "v1"
    v1_pid = results["startup"]["programs"]["api"]["pid"]

    # v1 -> v2: the link is switched and the program restarted from the new directory.
    second, results = site.deploy("v2")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-2000:]
    assert results["plan_startup"]["changed_services"] == ["api"]
    assert results["stop_app"] is True
    assert os.readlink(site.current) == str(site.root / "releases" / "v2")
    assert site.get() == {"release": "v2", "cwd": str(site.root / "releases" / "v2")}
    assert results["startup"]["programs"]["api"]["pid"] != v1_pid
    manifest = json.loads((site.root / "state" / "releases" / "v2" / "manifest.json").read_text())
    assert manifest["extra"]["strategy"] == "symlink"
    assert manifest["extra"]["link"]["release"] == "v2"
    assert "compose" not in manifest or not manifest["compose"]

    # Again: nothing to change, nothing stopped.
    again, results = site.deploy("v2")
    assert again.returncode == 0, again.stdout[-3000:]
    assert results["stop_app"] is False
    assert "changed=0" in again.stdout

    # v3's process exits at once: the deploy fails naming the program and showing its log.
    crashed, _ = site.deploy("v3")
    assert crashed.returncode != 0
    assert "api did not start from release v3" in crashed.stdout
    assert "boom: settings module not found" in crashed.stdout
    assert "RUNNING" not in site.ctl("status", "api")

    # playbooks/rollback.yml: back to v1 for real, verified by an HTTP check and graded.
    rollback, _ = site.playbook(
        "playbooks/rollback.yml",
        stagegate_rollback_to="v1",
        stagegate_rollback_database="none",
        stagegate_checks=[
            {
                "name": "api-release",
                "type": "http",
                "url": site.url,
                "json": ["release == 'v1'"],
            }
        ],
    )
    assert rollback.returncode == 0, rollback.stdout[-4000:] + rollback.stderr[-2000:]
    assert os.readlink(site.current) == str(site.root / "releases" / "v1")
    assert "RUNNING" in site.ctl("status", "api")
    assert site.get() == {"release": "v1", "cwd": str(site.root / "releases" / "v1")}
    ledger = [
        json.loads(line) for line in (site.root / "state" / "ledger.jsonl").read_text().splitlines()
    ]
    assert ledger[-1]["release"] == "v1"
    assert ledger[-1]["verdict"] == "GO"
