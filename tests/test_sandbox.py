"""The sandbox application on the real Docker engine: releases, endpoints and fault switches."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import REPO_ROOT, PgCluster
from sandbox_fixtures import SandboxStack, make_sandbox_repo, sandbox_secrets

SECURITY_HEADERS = (
    "X-Frame-Options",
    "X-Content-Type-Options",
    "Content-Security-Policy",
    "Strict-Transport-Security",
    "Referrer-Policy",
)
LOG_LINE = re.compile(r"^ts=\S+ level=(INFO|WARNING|ERROR|CRITICAL) service=(api|worker) msg=")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout


def test_release_repo_is_idempotent_and_follows_the_tree(tmp_path: Path) -> None:
    # A private copy of the script and sandbox/, so the test can change a release.
    root = tmp_path / "root"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "scripts" / "sandbox-repo.sh", root / "scripts")
    shutil.copytree(REPO_ROOT / "sandbox", root / "sandbox")
    repo = tmp_path / "sandbox.git"

    first = make_sandbox_repo(repo, root)
    refs = git(repo, "show-ref")
    assert "tag v1 ->" in first.stdout
    assert "tag v2-crashloop ->" in first.stdout

    second = make_sandbox_repo(repo, root)
    assert second.stdout == ""
    assert git(repo, "show-ref") == refs

    v1_files = git(repo, "ls-tree", "-r", "--name-only", "v1").split()
    v2_files = git(repo, "ls-tree", "-r", "--name-only", "v2").split()
    assert "compose.yaml" in v1_files
    assert "migrations/005_seed_data.sql" in v1_files
    assert "migrations/006_composite_indexes.sql" not in v1_files
    assert {"migrations/007_reporting_views.sql", "app/sandbox_app/reporting.py"} <= set(v2_files)
    assert not any(name.startswith("releases/") for name in v2_files)
    assert "SANDBOX_RELEASE=v2-crashloop" in git(repo, "show", "v2-crashloop:.env")
    assert "SANDBOX_RELEASE_FAULTS=api:crash_on_start" in git(repo, "show", "v2-crashloop:.env")
    assert git(repo, "rev-parse", "v2^{commit}^") == git(repo, "rev-parse", "v1^{commit}")

    # Changing v2's overlay rewrites v2 and the releases built on it, and nothing else.
    (root / "sandbox/releases/v2/migrations/006_composite_indexes.sql").write_text("SELECT 1;\n")
    third = make_sandbox_repo(repo, root)
    changed = sorted(re.findall(r"tag (\S+) ->", third.stdout))
    assert changed == ["v2", "v2-broken-migration", "v2-crashloop"]
    assert f"{git(repo, 'rev-parse', 'v1').strip()} refs/tags/v1" in refs


def test_release_migrations_apply_in_order_and_the_broken_one_fails_whole(
    sandbox_repo: Path, pg_cluster: PgCluster, pg_database: str, tmp_path: Path
) -> None:
    tree = tmp_path / "v2-broken-migration"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "--git-dir", str(sandbox_repo), "archive", "v2-broken-migration", "migrations"],
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    files = sorted((tree / "migrations").glob("*.sql"))
    assert [f.name[:3] for f in files] == ["001", "002", "003", "004", "005", "006", "007", "008"]

    def apply(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction",
             "-d", pg_cluster.dsn(pg_database), "-f", str(path)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip

    for path in files[:-1]:
        assert apply(path).returncode == 0, path.name
    assert pg_cluster.psql("SELECT count(*) FROM v_item_status_summary", pg_database) == "2"

    broken = apply(files[-1])
    assert broken.returncode != 0
    assert 'relation "owners" does not exist' in broken.stderr
    # Its first statement succeeded but the transaction took it back.
    columns = pg_cluster.psql(
        "SELECT count(*) FROM information_schema.columns WHERE column_name = 'owner_id'",
        pg_database,
    )
    assert columns == "0"


def wait_for_item_status(stack: SandboxStack, item_id: int, timeout: float = 30) -> str:
    """The item's status once it is no longer `queued` (the list is cached for 5 s)."""
    deadline = time.monotonic() + timeout
    status = "missing"
    while time.monotonic() < deadline:
        items = stack.request("/api/v1/items").json().get("items", [])
        status = next((item["status"] for item in items if item["id"] == item_id), "missing")
        if status not in ("queued", "missing"):
            break
        time.sleep(1)
    return status


@pytest.mark.docker
@pytest.mark.slow
def test_v1_answers_its_endpoints(sandbox_stack: SandboxStack) -> None:
    sandbox_stack.extra_env["SANDBOX_RATE_LIMIT_RPS"] = "10"
    sandbox_stack.up("v1")

    ready = sandbox_stack.request("/health/ready")
    assert ready.status == 200
    body = ready.json()
    assert body["status"] == "healthy"
    assert body["checks"]["database"]["status"] == "healthy"
    assert body["checks"]["database"]["latency_ms"] >= 0
    assert body["checks"]["redis"]["status"] == "healthy"
    assert all(ready.headers.get(name) for name in SECURITY_HEADERS)
    assert sandbox_stack.request("/health/live").status == 200
    assert sandbox_stack.request("/version").json()["version"] == "v1"
    assert sandbox_stack.request("/api/v1/reports/summary").status == 404  # a v2 endpoint

    # Data endpoints need the release's tables: 503 before the migrations, data after.
    assert sandbox_stack.request("/api/v1/items").status == 503
    sandbox_stack.migrate()
    items = sandbox_stack.request("/api/v1/items")
    assert items.status == 200
    assert {item["name"] for item in items.json()["items"]} >= {"welcome", "pending-import"}
    time.sleep(1)  # a new rate-limit window for the authentication steps

    secrets = sandbox_secrets()
    assert sandbox_stack.request("/api/v1/me").status == 401
    refused = sandbox_stack.request(
        "/api/v1/auth/login", "POST", {"username": "admin", "password": "wrong"}
    )
    assert refused.status == 401
    login = sandbox_stack.request(
        "/api/v1/auth/login",
        "POST",
        {"username": secrets["sandbox_admin_user"], "password": secrets["sandbox_admin_password"]},
    )
    token = login.json()["access_token"]
    assert sandbox_stack.request("/api/v1/me", token=token).json()["username"] == "admin"
    assert sandbox_stack.request("/api/v1/me", token=token + "x").status == 401

    # The worker takes a queued item from Redis and marks it processed in PostgreSQL.
    created = sandbox_stack.request("/api/v1/items", "POST", {"name": "from-test"}, token=token)
    assert created.status == 201
    assert wait_for_item_status(sandbox_stack, created.json()["id"]) == "processed"

    # 60 requests, 30 at a time, against a limit of 10 per second: some must be refused.
    with ThreadPoolExecutor(max_workers=30) as pool:
        statuses = list(pool.map(lambda _: sandbox_stack.request("/api/v1/me").status, range(60)))
    assert 429 in statuses, statuses
    assert 401 in statuses, statuses

    metrics = sandbox_stack.request("/metrics")
    text = metrics.body.decode()
    assert metrics.headers["Content-Type"].startswith("text/plain")
    assert 'app_info{service="api",version="v1"} 1' in text
    assert re.search(
        r'http_requests_total\{method="GET",route="/api/v1/me",status="429"\} \d+', text
    )
    assert "# TYPE http_request_duration_seconds histogram" in text
    assert 'http_request_duration_seconds_bucket{route="/health/ready",le="+Inf"}' in text

    api_log = sandbox_stack.logs("api").splitlines()
    assert api_log
    assert all(LOG_LINE.match(line) for line in api_log)
    assert any("level=ERROR" in line and "schema not migrated" in line for line in api_log)
    assert secrets["sandbox_admin_password"] not in "\n".join(api_log)


@pytest.mark.docker
@pytest.mark.slow
def test_fault_switches_change_what_the_api_does(sandbox_stack: SandboxStack) -> None:
    sandbox_stack.extra_env.update(
        SANDBOX_FAULTS="api:no_security_headers,api:http_500,api:error_logs,api:slow_start",
        SANDBOX_SLOW_START_SECONDS="600",
    )
    sandbox_stack.up("v1", "postgres", "redis")
    sandbox_stack.up("v1", "api", wait=False)  # slow_start: not healthy for ten minutes

    assert sandbox_stack.wait_for("/health/live").status == 200
    ready = sandbox_stack.request("/health/ready")
    assert ready.status == 503
    assert ready.json()["status"] == "starting"

    # no_security_headers: the clickjacking and CSP headers are gone, the others stay.
    assert "X-Frame-Options" not in ready.headers
    assert "Content-Security-Policy" not in ready.headers
    assert ready.headers["X-Content-Type-Options"] == "nosniff"

    # http_500: the data endpoint fails and says so in the log.
    assert sandbox_stack.request("/api/v1/items").status == 500
    api_log = sandbox_stack.logs("api")
    assert re.search(r"level=ERROR .*unhandled exception in data endpoint", api_log)
    # error_logs: ERROR and CRITICAL lines without any request.
    assert "level=CRITICAL" in api_log
    assert 'level=WARNING service=api msg="fault switches on"' in api_log
