"""The symlink deploy strategy under a real supervisord, through real ansible-playbook runs.

Each release is a directory unpacked from a git tag; supervisord (Debian's `supervisor`, a
private instance with its own config and socket in the test's temp dir) runs the program with
`directory=<current>`. The deploy role switches the link and restarts the program from the new
directory; a release whose process exits fails the deploy with its log; playbooks/rollback.yml
switches back and proves the release healthy with an HTTP check. playbooks/staging.yml runs the
whole promotion with the strategy against a real PostgreSQL (backup, dry-run, migrations; the
build phase and the compose checks skipped, saying so): a crash-looping release is NO_GO and
rolled back automatically (database restored), --check changes nothing, a good release is GO.
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
from conftest import REPO_ROOT, PgCluster, free_port

from stagegate import ledger

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


# Each release adds one migration (releases are tags of one history: v3 holds v2's too).
MIGRATIONS = {
    "v1": (
        "001_items.sql",
        "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL);\n"
        "INSERT INTO items (name) SELECT 'item' || g FROM generate_series(1, 50) g;\n",
    ),
    "v2": ("002_items_sku.sql", "ALTER TABLE items ADD COLUMN sku text;\n"),
    "v3": ("003_orders.sql", "CREATE TABLE orders (id serial PRIMARY KEY, item_id int);\n"),
}


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
            "stagegate_report_root": str(self.root / "reports"),
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
        self, playbook: str, *args: str, **extra: Any
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
                *args,
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
        name, sql = MIGRATIONS[release]
        (src / "migrations").mkdir(exist_ok=True)
        (src / "migrations" / name).write_text(sql)
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
    # the plan speaks of the link, not of images and a compose file, its estimate included
    assert f"4. switch {site.current} to {site.root / 'releases' / 'v1'}" in rollback.stdout
    assert "Images:" not in rollback.stdout
    assert "Estimated time:" in rollback.stdout
    assert "image rebuild" not in rollback.stdout
    assert _ledger(site)[-1]["release"] == "v1"
    assert _ledger(site)[-1]["verdict"] == "GO"


def _report(site: Site, release: str) -> dict[str, Any]:
    """The newest report.json of a promotion of `release`."""
    reports = sorted(
        (site.root / "reports").glob(f"{release}-*/report.json"), key=lambda p: p.stat().st_mtime
    )
    assert reports, f"no report for {release} under {site.root / 'reports'}"
    data: dict[str, Any] = json.loads(reports[-1].read_text())
    return data


def _schema(cluster: PgCluster, db: str) -> dict[str, Any]:
    return {
        "tables": cluster.psql(
            "SELECT string_agg(table_name, ',' ORDER BY table_name) FROM information_schema.tables"
            " WHERE table_schema = 'public'",
            db,
        ),
        "items_columns": cluster.psql(
            "SELECT string_agg(column_name, ',' ORDER BY column_name)"
            " FROM information_schema.columns WHERE table_name = 'items'",
            db,
        ),
        "items": cluster.psql("SELECT count(*) FROM items", db),
    }


def _promote(site: Site, db: dict[str, Any], release: str, *args: str) -> str:
    """playbooks/staging.yml with the symlink strategy; its output, after asserting nothing."""
    proc, _ = site.playbook(
        "playbooks/staging.yml",
        *args,
        stagegate_release=release,
        stagegate_db=db,
        stagegate_deploy_migrate=True,
        stagegate_auto_rollback=True,
        stagegate_checks=[{"name": "api-up", "type": "http", "url": site.url, "status": 200}],
    )
    return f"rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"


def _ledger(site: Site) -> list[dict[str, Any]]:
    return ledger.read(ledger.ledger_path(site.root / "state"))


V1_SCHEMA = {
    "tables": "items,stagegate_schema_migrations",
    "items_columns": "id,name",
    "items": "50",
}


def _first_deploy(site: Site, cluster: PgCluster, db: dict[str, Any]) -> None:
    """v1 onto nothing (an empty database): migrated, linked, started, GO; the Compose steps
    that do not apply skipped, and said to be."""
    first = _promote(site, db, "v1")
    assert first.startswith("rc=0\n"), first[-5000:]
    assert site.get() == {"release": "v1", "cwd": str(site.root / "releases" / "v1")}
    assert _schema(cluster, db["name"]) == V1_SCHEMA
    assert "stagegate: build phase skipped on localhost: the deploy strategy symlink" in first
    assert "docker compose config skipped: the deploy strategy symlink" in first
    phases = {p["name"]: p for p in _report(site, "v1")["phases"]}
    assert phases["build"]["status"] == "skipped"
    assert "runs releases that are not container images" in phases["build"]["note"]
    assert _ledger(site)[-1]["verdict"] == "GO"


@pytest.mark.timeout(900)  # three playbook runs, as tests/test_staging.py
def test_staging_playbook_rolls_a_crash_looping_release_back_with_symlink(
    site: Site, pg_cluster: PgCluster, pg_database: str
) -> None:
    db = {"host": pg_cluster.host, "port": pg_cluster.port, "name": pg_database, "user": "postgres"}
    _first_deploy(site, pg_cluster, db)

    # v3 crash-loops: backup, dry-run and migrations run, the start fails, the run is NO_GO and
    # rolls back by itself: database restored from the backup, link and program back on v1.
    crashed = _promote(site, db, "v3")
    assert not crashed.startswith("rc=0\n")
    assert "api did not start from release v3" in crashed, crashed[-5000:]
    assert "boom: settings module not found" in crashed
    report = _report(site, "v3")
    assert (report["verdict"], report["stopped"]["phase"]) == ("NO_GO", "deploy")
    phases = {p["name"]: p["status"] for p in report["phases"]}
    assert (phases["backup"], phases["migration_dryrun"], phases["build"]) == (
        "ok",
        "ok",
        "skipped",
    )
    assert site.get() == {"release": "v1", "cwd": str(site.root / "releases" / "v1")}
    assert _schema(pg_cluster, pg_database) == V1_SCHEMA
    kinds = [(r.get("kind"), r["release"], r["verdict"]) for r in _ledger(site)]
    assert kinds[-2][1:] == ("v3", "NO_GO")
    assert kinds[-1] == ("rollback", "v1", "GO"), kinds


@pytest.mark.timeout(900)  # three playbook runs, as tests/test_staging.py
def test_staging_playbook_checks_then_promotes_with_symlink(
    site: Site, pg_cluster: PgCluster, pg_database: str
) -> None:
    db = {"host": pg_cluster.host, "port": pg_cluster.port, "name": pg_database, "user": "postgres"}
    _first_deploy(site, pg_cluster, db)

    # --check of v2: the plan (its pending migration, dry-run on a copy), nothing changes.
    v1_pid = site.ctl("pid", "api").strip()
    records = len(_ledger(site))
    planned = _promote(site, db, "v2", "--check")
    assert planned.startswith("rc=0\n"), planned[-5000:]
    assert "002_items_sku.sql" in planned
    assert "Check mode: every phase reported its plan and nothing changed" in planned
    assert os.readlink(site.current) == str(site.root / "releases" / "v1")
    assert site.ctl("pid", "api").strip() == v1_pid
    assert _schema(pg_cluster, pg_database) == V1_SCHEMA
    assert len(_ledger(site)) == records  # a check run writes no ledger record
    # The plan names what the strategy uses, the release directory and its link: no compose
    # files, no images (a new user's trial saw compose_files printed for a symlink release).
    v2_dir = site.root / "releases" / "v2"
    assert f'"release_dir": "{v2_dir}"' in planned, planned[-5000:]
    assert f'"link": "{site.current} -> {v2_dir}"' in planned
    assert "compose_files" not in planned
    assert "images_built" not in planned
    assert _report(site, "v2")["check_mode"] is True  # the reports say it was check mode

    # v2 for real: GO, migrated after a backup and a dry-run, running from its directory.
    second = _promote(site, db, "v2")
    assert second.startswith("rc=0\n"), second[-5000:]
    assert site.get() == {"release": "v2", "cwd": str(site.root / "releases" / "v2")}
    assert _schema(pg_cluster, pg_database)["items_columns"] == "id,name,sku"
    report = _report(site, "v2")
    phases = {p["name"]: p["status"] for p in report["phases"]}
    assert (report["verdict"], phases["backup"], phases["migration_dryrun"]) == ("GO", "ok", "ok")
    manifest = json.loads((site.root / "state" / "releases" / "v2" / "manifest.json").read_text())
    assert manifest["backup"], manifest
    assert manifest["extra"]["link"]["release"] == "v2"
    assert (_ledger(site)[-1]["release"], _ledger(site)[-1]["verdict"]) == ("v2", "GO")

    # playbooks/validate.yml re-validates what runs, named by its marker: the inventory names
    # no release (a new user's trial found validate.yml refused such an inventory).
    assert "stagegate_release" not in site.strategy_vars()
    revalidated, _ = site.playbook(
        "playbooks/validate.yml",
        stagegate_db=db,
        stagegate_checks=[{"name": "api-up", "type": "http", "url": site.url, "status": 200}],
    )
    assert revalidated.returncode == 0, revalidated.stdout[-4000:]
    assert (_ledger(site)[-1]["kind"], _ledger(site)[-1]["release"]) == ("revalidation", "v2")
