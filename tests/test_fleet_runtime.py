"""The sandbox application laid out on a runtime fleet over real SSH, as a fleet promotion lays
it out (docs/fleet.md, "How a fleet runs the application"): the images are built once and every
app host's engine holds the same image IDs (one manifest); the deploy role runs with each
group's tiers, so the database host runs PostgreSQL and Redis and applies the migrations once,
and each of the three app hosts runs api and worker in its own compose project against it.
validate.yml then grades the fleet: one GO, results by host, the schema checked once.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fleet_fixtures import SANDBOX_HOST_CHECKS, SANDBOX_UP, FleetHost, SandboxFleet, fleet
from sandbox_fixtures import sandbox_secrets

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

# Four hosts' checkouts, a build, two deploys and a validation: as long as test_staging's runs.
pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)]

# The database schema once, as a fleet check (each app host: SANDBOX_HOST_CHECKS).
FLEET_CHECKS = [
    {"name": "base_schema", "type": "postgres", "group": "data", "severity": "critical",
     "options": {"host": "{{ stagegate_db.host }}", "port": "{{ stagegate_db.port }}",
                 "dbname": "app", "user": "app", "password": "{{ stagegate_db.password }}",
                 "tables": ["items", "job_runs", "api_users"]}},
]  # fmt: skip


@pytest.fixture(scope="module")
def sandbox_fleet(
    tmp_path_factory: pytest.TempPathFactory, sandbox_repo: Path
) -> Iterator[SandboxFleet]:
    with fleet(
        tmp_path_factory.mktemp("fleet"), apps=3, runtime=True, shared=[sandbox_repo]
    ) as made:
        laid_out = SandboxFleet(made, sandbox_repo)
        try:
            yield laid_out
        finally:
            made.remove_projects()
            laid_out.remove_images()


def ansible_playbook(playbook: Path, inventory: Path, **extra: Any) -> tuple[int, str]:
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), str(playbook), "-i", str(inventory),
         "-e", json.dumps(extra)],
        capture_output=True, text=True, check=False, cwd=REPO,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
             "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
    )  # fmt: skip
    return proc.returncode, proc.stdout + proc.stderr


def assert_no_secret(output: str) -> None:
    for name, value in sandbox_secrets().items():
        if "password" in name or "secret" in name:
            assert value not in output, f"{name} printed"


def test_v1_runs_on_three_app_hosts_against_one_database_host(
    sandbox_fleet: SandboxFleet, tmp_path: Path
) -> None:
    made = sandbox_fleet.fleet
    inventory = sandbox_fleet.inventory(
        tmp_path / "hosts.yml",
        stagegate_release="v1",
        stagegate_checks=SANDBOX_HOST_CHECKS,
        stagegate_fleet_checks=FLEET_CHECKS,
        stagegate_gates={"key_checks": ["api_ready"]},
        stagegate_report_dir=str(tmp_path / "reports"),
    )
    rc, out = ansible_playbook(SANDBOX_UP, inventory)
    assert rc == 0, out[-4000:]
    assert_no_secret(out)
    made.seed_ledger("v1")  # the release markers and the ledger's GO record of a promotion

    # Built once (first app host), one manifest; every app host's engine holds those IDs.
    printed = re.search(r"FLEET_IMAGES (\{.*\})", out.replace('\\"', '"'))
    assert printed, out[-4000:]
    manifest = json.loads(printed.group(1))
    assert sorted(manifest) == ["api", "postgres", "redis", "worker"]
    for entry in manifest.values():
        local = subprocess.run(
            ["docker", "image", "inspect", "--format", "{{.Id}}", entry["image"]],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        assert entry["id"] == local, entry
    assert manifest["api"]["image"] == f"{sandbox_fleet.image_prefix}/api:v1"

    # The migrations once: the database host's deploy applied them, no app host's did.
    def applied(host: FleetHost) -> list[str]:
        manifest = host.state_dir / "releases" / "v1" / "manifest.json"
        return list(json.loads(manifest.read_text())["migrations_applied"])

    migrations = sorted(p.name for p in (made.db.root / "checkout" / "migrations").glob("*.sql"))
    assert applied(made.db) == migrations
    assert all(applied(host) == [] for host in made.apps)

    # Each app host runs only the app tier, in its own project; the data tier runs once.
    for host in made.hosts:
        services = subprocess.run(
            ["docker", "ps", "--format", '{{.Label "com.docker.compose.service"}}', "--filter",
             f"label=com.docker.compose.project={host.compose_project}"],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        expected = ["postgres", "redis"] if host is made.db else ["api", "worker"]
        assert sorted(services) == expected, (host.name, services)

    # One database: every app host answers from it.
    for host in made.apps:
        status, body = sandbox_fleet.request(host, "/version")
        assert (status, body["version"]) == (200, "v1"), (host.name, body)
        status, body = sandbox_fleet.request(host, "/api/v1/items")
        assert status == 200, (host.name, body)
        assert body["items"], (host.name, body)

    # validate.yml grades the fleet: one GO, results by host, the schema checked once.
    rc, out = ansible_playbook(REPO / "playbooks" / "validate.yml", inventory)
    assert rc == 0, out[-4000:]
    assert_no_secret(out)
    report = json.loads((tmp_path / "reports" / "report.json").read_text())
    assert report["verdict"] == "GO", report["blockers"]
    assert set(report["hosts"]) == {"app1", "app2", "app3"}
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["base_schema"]["status"] == "PASS"
    assert checks["fleet_release"]["message"] == "all 3 app hosts run v1"
