"""postgres, docker, logs, redis, env, disk, memory, command and suite checks on real components."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO_ROOT, PgCluster, free_port, unique_name

from stagegate.catalog import CatalogError, load_catalog
from stagegate.engine import run_checks
from stagegate.plugins import Hooks, new_plugin_manager
from stagegate.results import CheckResult, Status

HOOKS = Hooks(new_plugin_manager(entry_points=False))
BUSYBOX = "stagegate/busybox:latest"
BASE = "stagegate/base:bookworm"


def run(*entries: dict[str, Any]) -> list[CheckResult]:
    specs = load_catalog(
        [{"name": f"c{i}", **e} for i, e in enumerate(entries)], HOOKS.check_types()
    )
    return run_checks(specs, hooks=HOOKS)


@pytest.fixture
def schema_db(pg_cluster: PgCluster, pg_database: str) -> str:
    pg_cluster.psql(
        "CREATE TABLE report_schedules (id int PRIMARY KEY, name text);"
        "CREATE INDEX report_schedules_name_idx ON report_schedules (name);"
        "CREATE VIEW active_schedules AS SELECT * FROM report_schedules;"
        "CREATE TABLE alembic_version (version_num text);"
        "INSERT INTO alembic_version VALUES ('0042_cohesion');"
        "INSERT INTO report_schedules VALUES (1, 'daily'), (2, 'weekly');",
        dbname=pg_database,
    )
    return pg_database


def test_postgres_schema_query_and_version(pg_cluster: PgCluster, schema_db: str) -> None:
    conn = {"host": "127.0.0.1", "port": pg_cluster.port, "user": "postgres", "dbname": schema_db}
    good, missing, query_error, slow = run(
        {
            "type": "postgres",
            "group": "data",
            **conn,
            "tables": ["report_schedules"],
            "indexes": ["report_schedules_name_idx"],
            "views": ["active_schedules"],
            "schema_version": "0042_cohesion",
            "query": "SELECT count(*) AS n FROM report_schedules",
            "json": ["[0].n == `2`"],
        },
        {
            "type": "postgres",
            **conn,
            "tables": ["nope", "active_schedules"],
            "indexes": ["no_such_idx"],
            "schema_version": "0043",
        },
        {"type": "postgres", **conn, "query": "SELECT * FROM no_such_table"},
        {"type": "postgres", **conn, "slow_statements": {"mean_ms": "<= 100ms"}},
    )
    assert good.status is Status.PASS, good.message
    assert "index report_schedules_name_idx" in good.message  # not "indexe"
    assert good.details["schema_version"] == "0042_cohesion"
    assert missing.status is Status.FAIL
    assert "table nope does not exist" in missing.message
    assert "table active_schedules does not exist" in missing.message  # a view is not a table
    assert "index no_such_idx does not exist" in missing.message
    assert "schema version 0042_cohesion, expected 0043" in missing.message
    assert query_error.status is Status.ERROR
    assert "no_such_table" in query_error.message
    assert slow.status is Status.SKIP
    assert "pg_stat_statements is not installed" in slow.message


def test_postgres_is_read_only_and_hides_the_password(
    pg_cluster: PgCluster, pg_database: str
) -> None:
    dsn = f"host=127.0.0.1 port={pg_cluster.port} user=postgres dbname={pg_database}"
    dsn += " password=s3cr3t-pw"
    (write,) = run({"type": "postgres", "dsn": dsn, "query": "CREATE TABLE sneaky (id int)"})
    assert write.status is Status.ERROR
    assert "read-only transaction" in write.message
    assert "s3cr3t-pw" not in json.dumps(write.to_dict())
    (down,) = run(
        {
            "type": "postgres",
            "dsn": f"host=127.0.0.1 port={free_port()} user=postgres password=s3cr3t-pw",
            "query": "SELECT 1",
            "timeout": 3,
            "retries": 1,
            "delay": 0.1,
        }
    )
    assert down.status is Status.ERROR
    assert "cannot connect" in down.message
    assert "s3cr3t-pw" not in json.dumps(down.to_dict())
    assert down.attempts == 2  # a server that may be starting is asked again
    # the server's own refusal is the same on every attempt: not retried (a trial's wrong
    # password took preflight 15 s of retries to report)
    (refused,) = run(
        {
            "type": "postgres",
            "dsn": f"host=127.0.0.1 port={pg_cluster.port} user=postgres dbname=sgt_no_such_db",
            "query": "SELECT 1",
            "retries": 5,
            "delay": 1,
        }
    )
    assert refused.status is Status.ERROR
    assert 'database "sgt_no_such_db" does not exist' in refused.message
    assert (refused.attempts, refused.details["not_retried"]) == (
        1,
        "another attempt gets the same",
    )


@pytest.fixture
def containers(docker_client: Any) -> Iterator[tuple[str, Any]]:
    """A fake compose project: a healthy `web`, a `worker` that logs errors, an exited `job`."""
    project = unique_name("sgtck")
    made = []

    def start(service: str, command: str, **extra: Any) -> Any:
        container = docker_client.containers.run(
            BUSYBOX,
            ["sh", "-c", command],
            name=f"{project}-{service}",
            detach=True,
            labels={"com.docker.compose.project": project, "com.docker.compose.service": service},
            **extra,
        )
        made.append(container)
        return container

    try:
        start(
            "web",
            "sleep 300",
            mem_limit="64m",
            healthcheck={"test": ["CMD", "true"], "interval": 200_000_000, "start_period": 0},
        )
        start(
            "worker",
            "echo 'INFO ready'; echo 'ERROR db timeout'; echo 'ERROR known-flaky probe';"
            " echo 'CRITICAL disk'; sleep 300",
        )
        start("job", "exit 3")
        deadline = time.monotonic() + 60  # generous: the engine is shared and may be busy
        while time.monotonic() < deadline:
            web = docker_client.containers.get(f"{project}-web")
            if web.attrs["State"].get("Health", {}).get("Status") == "healthy":
                break
            time.sleep(0.2)
        yield project, docker_client
    finally:
        for container in made:
            container.remove(force=True)


@pytest.mark.docker
@pytest.mark.slow
def test_docker_services_health_stats_and_image_budget(containers: tuple[str, Any]) -> None:
    project, _ = containers
    healthy, with_exited, budget = run(
        {
            "type": "docker",
            "group": "infrastructure",
            "project": project,
            "timeout": 60,  # stats take two samples; a busy engine answers slowly
            "services": ["web", "worker"],
            "memory_percent": {"pass": "<= 90%"},
            "memory": "<= 64mb",
        },
        {"type": "docker", "project": project},
        {
            "type": "docker",
            "image_size": {BUSYBOX: "<= 10mb", BASE: {"pass": "<= 1mb", "warn": "<= 10gb"}},
        },
    )
    assert healthy.status is Status.PASS, healthy.message
    assert healthy.details["containers"]["web"]["health"] == "healthy"
    assert "web.memory_percent" in healthy.metrics
    assert with_exited.status is Status.FAIL
    assert "job is exited, expected running" in with_exited.message
    assert budget.status is Status.WARN
    assert budget.metrics[f"{BUSYBOX}.size_mb"] < 10


@pytest.mark.docker
@pytest.mark.slow
def test_logs_scan_with_allow_list(containers: tuple[str, Any]) -> None:
    project, _ = containers
    time.sleep(0.5)  # let the worker print
    strict, allowed = run(
        {"type": "logs", "project": project, "services": ["worker"], "since": "10m"},
        {
            "type": "logs",
            "project": project,
            "services": ["worker"],
            "since": "10m",
            "allow": ["known-flaky", "CRITICAL disk"],
            "max_matches": 1,
        },
    )
    assert strict.status is Status.FAIL
    assert strict.metrics["matches"] == 3
    assert any("ERROR db timeout" in line for line in strict.details["sample"])
    assert allowed.status is Status.PASS, allowed.message


@pytest.mark.docker
@pytest.mark.slow
def test_logs_required_lines_since_the_container_started(containers: tuple[str, Any]) -> None:
    """Seed 002's "startup complete": a line that must be logged, read since each container's
    last start (a restart's lines only), in any or each selected container."""
    project, docker_client = containers
    script = (
        "if [ -f /tmp/started ]; then echo 'ERROR second start'; "
        "else touch /tmp/started; echo 'INFO startup complete'; fi; sleep 300"
    )
    api = docker_client.containers.run(
        BUSYBOX,
        ["sh", "-c", script],
        name=f"{project}-api",
        detach=True,
        labels={"com.docker.compose.project": project, "com.docker.compose.service": "api"},
    )
    try:
        wait_for_log(api, b"startup complete")
        required = {"type": "logs", "project": project, "patterns": []}
        first, each, window = run(
            {**required, "services": ["api"], "since": "started", "required": ["startup complete"]},
            {
                **required,
                "services": ["api", "web"],
                "required": ["startup complete"],
                "required_in": "each",
            },
            {
                **required,
                "services": ["api", "worker"],
                "required": ["startup complete"],
                "since": "started",
            },
        )
        assert first.status is Status.PASS, first.message
        assert first.details["required"] == {"startup complete": ["api"]}
        assert each.status is Status.FAIL
        assert "required line 'startup complete' not logged by web" in each.message
        assert window.status is Status.PASS, window.message  # any: api has it, worker not
        time.sleep(1.1)  # the restart's lines start in a later second than the first start's
        api.kill()
        api.start()
        wait_for_log(api, b"second start")
        restarted, whole = run(
            {
                "type": "logs",
                "project": project,
                "services": ["api"],
                "since": "started",
                "required": ["startup complete"],
            },
            {
                "type": "logs",
                "project": project,
                "services": ["api"],
                "required": ["startup complete"],
                "max_matches": 1,
            },
        )
        assert restarted.status is Status.FAIL
        assert "required line 'startup complete' not logged by any of api" in restarted.message
        assert "1 log lines match" in restarted.message  # ERROR second start, since the restart
        assert whole.status is Status.PASS, whole.message  # the first start's line is older
    finally:
        api.remove(force=True)


def wait_for_log(container: Any, text: bytes) -> None:
    deadline = time.monotonic() + 60
    while text not in container.logs() and time.monotonic() < deadline:
        time.sleep(0.1)


def test_logs_options_are_validated_before_any_check_runs() -> None:
    with pytest.raises(CatalogError) as raised:
        load_catalog(
            [
                {
                    "name": "boot",
                    "type": "logs",
                    "project": "p",
                    "required": ["startup (complete"],
                    "required_in": "all",
                }
            ],
            HOOKS.check_types(),
        )
    text = str(raised.value)
    assert "option 'required' = ['startup (complete']" in text
    assert "item 0 = 'startup (complete'" in text
    assert "option 'required_in' = 'all': expected one of any, each" in text


def test_docker_down_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    (result,) = run({"type": "docker", "project": "anything", "timeout": 3})
    assert result.status is Status.ERROR
    assert "Docker engine not reachable" in result.message


@pytest.fixture
def redis_port(docker_client: Any) -> Iterator[int]:
    port = free_port()
    container = docker_client.containers.run(
        BASE,
        ["redis-server", "--port", "6379", "--protected-mode", "no", "--save", ""],
        name=unique_name("sgtredis"),
        detach=True,
        ports={"6379/tcp": ("127.0.0.1", port)},
    )
    try:
        deadline = time.monotonic() + 60
        while b"Ready to accept" not in container.logs() and time.monotonic() < deadline:
            time.sleep(0.1)
        container.exec_run(["redis-cli", "set", "k", "v"])
        for key in ("k", "k", "k", "missing"):
            container.exec_run(["redis-cli", "get", key])
        yield port
    finally:
        container.remove(force=True)


@pytest.mark.docker
@pytest.mark.slow
def test_redis_ping_and_hit_rate(redis_port: int) -> None:
    good, strict, down = run(
        {"type": "redis", "port": redis_port, "hit_rate": {"pass": ">= 50%"}},
        {"type": "redis", "port": redis_port, "hit_rate": {"pass": ">= 90%", "warn": ">= 10%"}},
        {"type": "redis", "port": free_port(), "timeout": 2},
    )
    assert good.status is Status.PASS, good.message
    assert good.metrics["hit_rate"] == 75.0
    assert strict.status is Status.WARN
    assert down.status is Status.ERROR


@pytest.fixture
def sandbox_redis(docker_client: Any) -> Iterator[tuple[int, Any]]:
    """The sandbox's own Redis image (sandbox/services/redis, as compose builds it), run as
    compose runs it: `--save ""`, no maxmemory."""
    tag = f"{unique_name('sgtredis')}:test"
    docker_client.images.build(
        path=str(REPO_ROOT / "sandbox" / "services" / "redis"),
        tag=tag,
        buildargs={"BASE_IMAGE": BASE},
        rm=True,
    )
    port = free_port()
    container = None
    try:
        container = docker_client.containers.run(
            tag, name=unique_name("sgtredis"), detach=True, ports={"6379/tcp": ("127.0.0.1", port)}
        )
        wait_for_log(container, b"Ready to accept")
        yield port, container
    finally:
        if container is not None:
            container.remove(force=True)
        docker_client.images.remove(tag, force=True)


@pytest.mark.docker
@pytest.mark.slow
def test_redis_config_values(sandbox_redis: tuple[int, Any]) -> None:
    """Seed 001's Redis table: persistence (`CONFIG GET save`), a memory limit and its
    eviction policy, on the sandbox's real Redis before and after it is configured."""
    port, container = sandbox_redis
    wanted = {
        "type": "redis",
        "port": port,
        "config": {"maxmemory-policy": "allkeys-lru|volatile-lru", "save": ".+"},
        "config_bands": {"maxmemory": {"pass": ">= 64mb", "warn": "> 0"}},
    }
    as_shipped, unknown = run(
        wanted, {"type": "redis", "port": port, "config": {"no-such-parameter": "x"}}
    )
    assert as_shipped.status is Status.FAIL
    assert "CONFIG maxmemory-policy is 'noeviction', expected 'allkeys-lru|volatile-lru'" in (
        as_shipped.message
    )
    assert "CONFIG save is '', expected '.+'" in as_shipped.message
    assert as_shipped.metrics["config.maxmemory"] == 0
    assert as_shipped.details["config"]["save"] == ""
    assert unknown.status is Status.FAIL
    assert "CONFIG no-such-parameter: no such parameter" in unknown.message
    for setting in (["maxmemory", "32mb"], ["maxmemory-policy", "allkeys-lru"], ["save", "60 1"]):
        container.exec_run(["redis-cli", "config", "set", *setting])
    (small,) = run(wanted)
    assert small.status is Status.WARN, small.message  # a limit, but below the PASS band
    assert small.metrics["config.maxmemory"] == 32 * 1024**2
    container.exec_run(["redis-cli", "config", "set", "maxmemory", "128mb"])
    (good,) = run(wanted)
    assert good.status is Status.PASS, good.message
    assert "maxmemory-policy 'allkeys-lru'" in good.message


def test_env_file_checks_never_print_values(tmp_path: Path) -> None:
    secret = "short-jwt-secret-value"
    env_file = tmp_path / ".env"
    env_file.write_text(
        f"JWT_SECRET={secret}\nexport CORS_ORIGINS='https://app.example.com,http://localhost:3000'\n"
        "APP_ENV=staging\n# REDIS_URL=commented\n"
    )
    bad, good = run(
        {
            "type": "env",
            "group": "security",
            "path": str(env_file),
            "required": ["JWT_SECRET", "REDIS_URL"],
            "min_length": {"JWT_SECRET": 32},
            "must_not_contain": {"CORS_ORIGINS": ["localhost", "*"]},
        },
        {
            "type": "env",
            "path": str(env_file),
            "required": ["APP_ENV"],
            "pattern": {"APP_ENV": "staging|production"},
        },
    )
    assert bad.status is Status.FAIL
    assert "REDIS_URL is missing" in bad.message
    assert "JWT_SECRET has 22 characters, expected at least 32" in bad.message
    assert "CORS_ORIGINS contains 'localhost'" in bad.message
    text = json.dumps(bad.to_dict())
    assert secret not in text
    assert "app.example.com" not in text
    assert good.status is Status.PASS


def test_env_numeric_range(tmp_path: Path) -> None:
    """aragora-production row 37: ARAGORA_JWT_EXPIRY_HOURS within 1..168 hours."""
    env_file = tmp_path / ".env"
    env_file.write_text("ARAGORA_JWT_EXPIRY_HOURS=720\nSHORT=24\nWORD=week\n")
    hours = [">= 1", "<= 168"]
    too_long, within, not_number = run(
        {"type": "env", "path": str(env_file), "numeric": {"ARAGORA_JWT_EXPIRY_HOURS": hours}},
        {"type": "env", "path": str(env_file), "numeric": {"SHORT": hours}},
        {"type": "env", "path": str(env_file), "numeric": {"WORD": "<= 168", "NONE": 1}},
    )
    assert too_long.status is Status.FAIL
    assert too_long.message == "ARAGORA_JWT_EXPIRY_HOURS is outside >= 1, <= 168"
    assert "720" not in json.dumps(too_long.to_dict())  # values are never shown
    assert within.status is Status.PASS, within.message
    assert not_number.status is Status.FAIL
    assert "WORD is missing or not a number, expected <= 168" in not_number.message
    assert "NONE is missing or not a number" in not_number.message
    # A band that cannot be parsed is refused with the catalog, naming the option.
    with pytest.raises(CatalogError, match=r"option 'numeric' X: .*cannot parse band 'about 5'"):
        run({"type": "env", "path": str(env_file), "numeric": {"X": "about 5"}})
    with pytest.raises(CatalogError, match=r"unit 'ms' is not a number unit"):
        run({"type": "env", "path": str(env_file), "numeric": {"X": "<= 5ms"}})


@pytest.mark.docker
def test_docker_check_requires_cpu_and_memory_limits(docker_client: Any) -> None:
    """aragora-production rows 42/43: containers run with CPU and memory limits."""
    limited = docker_client.containers.run(
        BUSYBOX,
        ["sleep", "300"],
        name=unique_name("sgtlim"),
        detach=True,
        nano_cpus=500_000_000,
        mem_limit="64m",
    )
    bare = docker_client.containers.run(
        BUSYBOX, ["sleep", "300"], name=unique_name("sgtnolim"), detach=True
    )
    try:
        ok, missing = run(
            {"type": "docker", "containers": [limited.name], "limits": ["cpu", "memory"]},
            {
                "type": "docker",
                "containers": [limited.name, bare.name],
                "limits": ["cpu", "memory"],
            },
        )
        with pytest.raises(CatalogError, match=r"option 'limits' = \['disk'\]: expected"):
            run({"type": "docker", "containers": [bare.name], "limits": ["disk"]})
        with pytest.raises(CatalogError, match=r"option 'limits' needs 'project' or 'containers'"):
            run({"type": "docker", "limits": ["cpu"]})
    finally:
        limited.remove(force=True)
        bare.remove(force=True)
    assert ok.status is Status.PASS, ok.message
    assert ok.details["limits"][limited.name] == {"cpus": 0.5, "memory_mb": 64.0}
    assert missing.status is Status.FAIL
    assert f"{bare.name} has no cpu limit" in missing.message
    assert f"{bare.name} has no memory limit" in missing.message
    assert limited.name not in missing.message


@pytest.mark.docker
def test_env_entries_that_must_be_absent_in_a_file_and_a_container(
    tmp_path: Path, docker_client: Any
) -> None:
    """Seed 001's "API keys not in .env": names only, the values never shown."""
    key = "sk-live-do-not-print-4242"
    env_file = tmp_path / ".env"
    env_file.write_text(f"APP_ENV=production\nOPENAI_API_KEY={key}\n")
    container = docker_client.containers.run(
        BUSYBOX,
        ["sleep", "300"],
        name=unique_name("sgtenv"),
        detach=True,
        environment={"APP_ENV": "production", "ANTHROPIC_API_KEY": key},
    )
    try:
        in_file, both, clean = run(
            {"type": "env", "path": str(env_file), "absent": ["*_API_KEY", "AWS_SECRET*"]},
            {
                "type": "env",
                "path": str(env_file),
                "container": container.name,
                "required": ["APP_ENV"],
                "absent": ["*_API_KEY"],
            },
            {"type": "env", "container": container.id, "absent": ["OPENAI_API_KEY"]},
        )
        (missing,) = run({"type": "env", "container": unique_name("nosuch"), "absent": ["X"]})
    finally:
        container.remove(force=True)
    assert in_file.status is Status.FAIL
    assert in_file.message == "OPENAI_API_KEY set, expected absent (*_API_KEY)"
    assert both.status is Status.FAIL
    assert f"OPENAI_API_KEY set in {env_file}, expected absent" in both.message
    assert f"ANTHROPIC_API_KEY set in container {container.name}, expected absent" in both.message
    assert clean.status is Status.PASS, clean.message
    assert key not in json.dumps([r.to_dict() for r in (in_file, both, clean)])
    assert missing.status is Status.ERROR
    assert "no such container" in missing.message


def test_process_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SGT_TOKEN", "abcdefghijklmnopqrstuvwxyz0123456789")
    (result,) = run({"type": "env", "required": ["SGT_TOKEN"], "min_length": {"SGT_TOKEN": 32}})
    assert result.status is Status.PASS


def test_disk_and_memory_bands(tmp_path: Path) -> None:
    not_made = tmp_path / "state" / "staging"
    disk, disk_huge, memory, disk_not_made = run(
        {"type": "disk", "path": "/", "free": ">= 1mb"},
        {"type": "disk", "path": "/", "free": {"pass": ">= 1000000gb", "warn": ">= 1mb"}},
        {"type": "memory", "available": ">= 1mb", "available_percent": ">= 0.1%"},
        {"type": "disk", "path": str(not_made), "free": ">= 1mb"},
    )
    assert disk.status is Status.PASS
    # A directory not made yet: the filesystem it will live on, its nearest existing parent's.
    assert disk_not_made.status is Status.PASS, disk_not_made.message
    assert f"(not made yet: measured on {tmp_path})" in disk_not_made.message
    assert disk_huge.status is Status.WARN
    assert memory.status is Status.PASS
    assert memory.metrics["available_mb"] > 1


def test_command_rc_and_json_stdout() -> None:
    code = "import json; print(json.dumps({'ok': True, 'count': 3}))"
    good, bad_rc, missing = run(
        {"type": "command", "cmd": [sys.executable, "-c", code], "json": ["ok", "count > `2`"]},
        {"type": "command", "cmd": "sh -c 'echo oops >&2; exit 2'"},
        {"type": "command", "cmd": ["no-such-binary-sgt"]},
    )
    assert good.status is Status.PASS, good.message
    assert bad_rc.status is Status.FAIL
    assert bad_rc.details["rc"] == 2
    assert "oops" in bad_rc.details["stderr"]
    assert bad_rc.message == "rc 2, expected 0 (oops)"  # why, from the command's stderr
    assert missing.status is Status.ERROR
    assert "command not found" in missing.message


@pytest.mark.slow
def test_suite_pytest_junit_pass_rate(tmp_path: Path) -> None:
    (tmp_path / "test_smoke.py").write_text(
        "import pytest\n"
        "def test_a(): pass\n"
        "def test_b(): pass\n"
        "def test_c(): pass\n"
        "def test_d(): assert False\n"
        "@pytest.mark.skip\n"
        "def test_e(): pass\n"
    )
    junit = tmp_path / "junit.xml"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--junitxml={junit}",
        "--rootdir",
        str(tmp_path),
        str(tmp_path),
    ]
    (warn,) = run(
        {
            "type": "suite",
            "group": "tests",
            "cmd": cmd,
            "junit": str(junit),
            "timeout": 60,
            "min_pass_rate": {"pass": ">= 95%", "warn": ">= 70%"},
        },
    )
    (strict,) = run(
        {"type": "suite", "junit": str(junit), "min_pass_rate": ">= 95%", "read_only": True}
    )
    assert warn.status is Status.WARN, warn.message
    assert warn.value == 75.0
    assert warn.metrics["failures"] == 1
    assert strict.status is Status.FAIL


def test_suite_k6_and_json_results(tmp_path: Path) -> None:
    k6 = tmp_path / "k6.json"
    k6.write_text(
        json.dumps(
            {
                "metrics": {
                    "checks": {"passes": 990, "fails": 10},
                    "http_req_duration": {"avg": 120.5, "p(95)": 480.0, "max": 900.0},
                    "http_req_failed": {"value": 0.004},
                    "http_reqs": {"count": 1000},
                }
            }
        )
    )
    results = tmp_path / "smoke.json"
    results.write_text(json.dumps({"summary": {"passed": 18, "total": 20}}))
    k6_result, json_result, missing = run(
        {
            "type": "suite",
            "k6": str(k6),
            "min_pass_rate": ">= 98%",
            "bands": {"http_req_duration_p95_ms": "<= 500ms", "http_req_failed_percent": "<= 1%"},
        },
        {
            "type": "suite",
            "json_file": str(results),
            "json_metrics": {"passed": "summary.passed", "tests": "summary.total"},
            "min_pass_rate": {"pass": ">= 95%", "warn": ">= 85%"},
        },
        {"type": "suite", "json_file": str(tmp_path / "nope.json"), "json_metrics": {"x": "a"}},
    )
    assert k6_result.status is Status.PASS, k6_result.message
    assert k6_result.metrics["http_req_duration_p95_ms"] == 480.0
    assert json_result.status is Status.WARN
    assert json_result.value == 90.0
    assert missing.status is Status.ERROR


def test_command_argv_secrets_are_masked_also_when_echoed() -> None:
    secret = "argv-pw-81c4e2"
    (result,) = run(
        {
            "type": "command",
            "cmd": ["sh", "-c", 'echo "connecting with $2"; exit 3', "sh", "--password", secret],
        }
    )
    assert result.status is Status.FAIL
    assert result.details["cmd"][-2:] == ["--password", "***"]
    assert "connecting with ***" in result.details["stdout"]
    assert secret not in json.dumps(result.to_dict())
