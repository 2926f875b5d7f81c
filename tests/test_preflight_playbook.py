"""The preflight role through real `ansible-playbook` runs: a bad inventory stops in preflight
naming the key before anything changes; a good one passes every step and takes the lock;
secrets are checked without ever being printed."""

from __future__ import annotations

import json
import re
import secrets

import pytest
from conftest import PgCluster, unique_name
from preflight_fixtures import DeployHost, tree

pytestmark = pytest.mark.slow

DB_PASSWORD = f"db-pw-{secrets.token_hex(8)}"
JWT_SECRET = f"jwt-{secrets.token_hex(24)}"
CONFIG_TASK = "Validate every stagegate_* variable against the contract"


@pytest.fixture
def host(deploy_host: DeployHost, pg_cluster: PgCluster) -> DeployHost:
    """A deploy host whose configuration passes every preflight step."""
    deploy_host.make_project()
    env_file = deploy_host.project_dir / ".env"
    env_file.write_text(f"JWT_SECRET={JWT_SECRET}\nCORS_ORIGINS=https://shop.example\n")
    deploy_host.vars.update(
        {
            "stagegate_release": "v2",
            "stagegate_source_repo": str(deploy_host.root / "repo.git"),
            "stagegate_compose_project": unique_name("sgpre"),
            "stagegate_tiers": [["app"]],
            "stagegate_app_services": ["app"],
            "stagegate_db": {
                "host": pg_cluster.host,
                "port": pg_cluster.port,
                "name": "postgres",
                "user": "postgres",
                "password": DB_PASSWORD,
            },
            "stagegate_required_secrets": [
                {"name": "JWT_SECRET", "file": str(env_file), "min_length": 32},
                {
                    "name": "CORS_ORIGINS",
                    "file": str(env_file),
                    "must_not_contain": ["localhost", "127.0.0.1"],
                },
            ],
            "stagegate_preflight_min_free_disk_mb": 1,
            "stagegate_preflight_min_free_memory_mb": 1,
        }
    )
    return deploy_host


def assert_no_secret(output: str) -> None:
    assert DB_PASSWORD not in output
    assert JWT_SECRET not in output


def test_good_configuration_passes_every_step_and_takes_the_lock(host: DeployHost) -> None:
    run = host.play("preflight_run.yml", "-vvv")
    assert run.rc == 0, run.output
    for step in (
        "configuration valid for phases: preflight, source, backup",
        "2 required secret(s) present and well formed",
        # free disk, available memory, the Docker engine and the database login, in one run
        "stagegate: [preflight] 4 checks: 4 PASS",
        "docker compose",
        "1 migration file(s)",
        "deploy lock acquired",
    ):
        assert step in run.output
    lock = json.loads((host.state_dir / "lock.json").read_text())
    assert lock["owner"].startswith("root@") or "@" in lock["owner"]
    assert lock["run_id"]
    assert lock["expires_at"] > lock["acquired_at"]
    assert_no_secret(run.output)


def test_check_mode_validates_everything_and_takes_no_lock(host: DeployHost) -> None:
    run = host.play("preflight_run.yml", "--check")
    assert run.rc == 0, run.output
    # every probe ran; the lock reports that it would be taken (changed) but is not
    assert "failed=0" in run.stdout
    assert run.changed == 1
    assert "TASK [stagegate.release.preflight : Take the deploy lock" in run.stdout
    assert not host.state_dir.exists()


def drop(key: str):  # type: ignore[no-untyped-def]
    def edit(values: dict[str, object]) -> None:
        del values[key]

    return edit


def put(key: str, value: object):  # type: ignore[no-untyped-def]
    def edit(values: dict[str, object]) -> None:
        values[key] = value

    return edit


def put_db(key: str, value: object):  # type: ignore[no-untyped-def]
    def edit(values: dict[str, object]) -> None:
        values["stagegate_db"] = {**values["stagegate_db"], key: value}  # type: ignore[dict-item]

    return edit


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        pytest.param(
            put("stagegate_relase", "v3"),
            "stagegate_relase: unknown stagegate_ variable (a typo?); "
            "did you mean stagegate_release?",
            id="unknown-key",
        ),
        pytest.param(
            put("stagegate_compose_files", "compose.yaml"),
            "stagegate_compose_files: got 'compose.yaml' (string), expected a list of strings",
            id="wrong-type",
        ),
        pytest.param(
            put_db("port", "fivefourthreetwo"),
            "stagegate_db.port: got 'fivefourthreetwo' (string), expected an integer in 1..65535",
            id="wrong-nested-type",
        ),
        pytest.param(
            drop("stagegate_compose_project"),
            "stagegate_compose_project: is required for phase(s) build, deploy but is not set",
            id="missing-required",
        ),
        pytest.param(
            put("stagegate_report_dir", "{{ no_such_variable }}/reports"),
            "stagegate_report_dir: cannot be templated",
            id="broken-template",
        ),
        pytest.param(
            put_db("password", [DB_PASSWORD]),
            "stagegate_db.password: got <secret, not shown> (list), expected a string",
            id="secret-wrong-type",
        ),
    ],
)
def test_bad_inventory_stops_in_preflight_naming_the_key(
    host: DeployHost,
    edit,  # type: ignore[no-untyped-def]
    expected: str,
) -> None:
    edit(host.vars)
    project_before = tree(host.project_dir)
    run = host.play("preflight_run.yml")
    assert run.rc != 0
    assert f"TASK [stagegate.release.preflight : {CONFIG_TASK}]" in run.stdout
    assert "failed=1" in run.stdout
    assert expected in run.output
    # stopped at the first step: nothing later ran, nothing changed on the host
    assert "Take the deploy lock" not in run.stdout
    assert not host.state_dir.exists()
    assert tree(host.project_dir) == project_before
    assert_no_secret(run.output)


def test_malformed_secrets_are_named_without_their_values(host: DeployHost) -> None:
    weak = "too-short-" + secrets.token_hex(4)
    cors = f"https://shop.example,http://localhost:{secrets.randbelow(9000) + 1000}"
    (host.project_dir / ".env").write_text(f"JWT_SECRET={weak}\nCORS_ORIGINS={cors}\n")
    run = host.play("preflight_run.yml", "-vvv")
    assert run.rc != 0
    env_file = host.project_dir / ".env"
    assert f"JWT_SECRET ({env_file}): is shorter than 32 characters" in run.output
    assert f"CORS_ORIGINS ({env_file}): must not contain 'localhost'" in run.output
    assert weak not in run.output
    assert cors not in run.output
    assert not host.state_dir.exists()


def test_too_little_disk_space_names_the_setting_before_the_lock(host: DeployHost) -> None:
    host.vars["stagegate_preflight_min_free_disk_mb"] = 1024**3  # a petabyte
    run = host.play("preflight_run.yml")
    assert run.rc != 0
    # the setting, the path, what is free and the band it was held against
    assert "checks graded FAIL/ERROR: stagegate_preflight_min_free_disk_mb (/" in run.output
    assert "GiB free" in run.output
    assert "expected free_mb: PASS >= 1.07374e+09 mb" in run.output
    assert "stagegate_preflight_min_free_memory_mb" not in run.output.split("graded FAIL")[1]
    assert not host.state_dir.exists()


def test_unreachable_database_is_reported_before_the_lock(host: DeployHost) -> None:
    host.vars["stagegate_db"]["port"] = 1  # type: ignore[index]
    host.vars["stagegate_preflight_connect_timeout"] = 1
    run = host.play("preflight_run.yml")
    assert run.rc != 0
    assert "checks graded FAIL/ERROR: stagegate_db (cannot connect to PostgreSQL" in run.output
    assert "port 1 failed: Connection refused" in run.output
    assert not host.state_dir.exists()


def identities(host: DeployHost, *args: str, **extra: object) -> list[dict[str, str]]:
    result_dir = host.root / "identity"
    result_dir.mkdir(exist_ok=True)
    run = host.play("preflight_identity.yml", *args, result_dir=str(result_dir), **extra)
    assert run.rc == 0, run.output
    return [json.loads((result_dir / f"{name}.json").read_text()) for name in host.hosts]


def test_every_host_of_one_run_shares_the_run_identity(deploy_host: DeployHost) -> None:
    deploy_host.hosts = ["localhost", "deploy-alias"]
    first, second = identities(deploy_host)
    assert first == second
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{6}", first["run_id"])
    assert "@" in first["owner"]
    (again,) = identities(DeployHost(deploy_host.root))
    assert again["run_id"] != first["run_id"]  # another ansible-playbook, another run


def test_awx_job_names_the_run_and_its_owner(deploy_host: DeployHost) -> None:
    (identity,) = identities(deploy_host, awx_job_id=4242, awx_user_name="release-bot")
    assert identity["run_id"] == "awx-4242"
    assert identity["owner"].startswith("release-bot@")
    assert identity["owner"].endswith("(AWX job 4242)")


def test_a_run_limited_by_tags_demands_only_its_phases_keys(host: DeployHost) -> None:
    del host.vars["stagegate_compose_project"]  # needed by build/deploy, not by backup
    run = host.play("preflight_run.yml", "--tags", "preflight_config,backup")
    assert run.rc == 0, run.output
    run = host.play("preflight_run.yml", "--tags", "preflight_config,deploy")
    assert run.rc != 0
    assert "stagegate_compose_project: is required for phase(s) deploy" in run.output
