"""validate.yml over a fleet on real SSH hosts: three app hosts and a database host
(tests/fleet_fixtures.py), each app host answering the catalog on its own port (staging.yml
promotes a fleet and rollback.yml rolls one back: tests/test_fleet_promote_rollback.py).

One run, one result: the catalog runs on every app host and the fleet checks once, one gate
step folds the results into one verdict and one score (set_stats, read back through
`ansible_runner.run` as AWX reads it), one report dir listing the results by host, one ledger
record on the state host (the database host). A failing host is named; a `hosts` gate lets
"at least N%" of the hosts fail; an unreachable host is named with why, and the rest still
gets its verdict.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ansible_runner
import pytest
import yaml
from conftest import PgCluster, free_port
from fleet_fixtures import CATALOG, Fleet, fleet

from stagegate.config import PHASES, Schema
from stagegate.fleet import fleet_shape
from stagegate.gates import validate_gates

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


def fleet_checks(pg: PgCluster) -> list[dict[str, Any]]:
    return [
        {"name": "database_up", "type": "postgres", "group": "infrastructure",
         "options": {"host": pg.host, "port": pg.port, "dbname": "postgres", "user": pg.user,
                     "query": "select 1 as one", "min_rows": 1}},
    ]  # fmt: skip


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    with fleet(tmp_path_factory.mktemp("fleet"), apps=3, runtime=True) as made:
        made.seed_ledger("v2", previous="v1")
        yield made


def run(
    hosts: Fleet,
    tmp: Path,
    pg: PgCluster,
    gates: dict[str, Any] | None = None,
    *,
    single: bool = False,
    playbook: str = "validate.yml",
) -> tuple[int, str, dict[str, Any]]:
    """A playbook (validate.yml) through ansible_runner, as AWX runs it: (rc, stdout,
    set_stats)."""
    (tmp / "runner").mkdir(parents=True)
    inventory = hosts.write_inventory(
        tmp / "hosts.yml",
        single=single,
        stagegate_release="v2",
        stagegate_checks=CATALOG,
        stagegate_fleet_checks=fleet_checks(pg),
        stagegate_gates=gates or {"key_checks": ["api_ready"]},
        stagegate_report_dir=str(tmp / "reports"),
    )
    job = ansible_runner.run(
        private_data_dir=str(tmp / "runner"),
        playbook=str(REPO / "playbooks" / playbook),
        inventory=str(inventory),
        envvars={
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        },
        quiet=True,
    )
    stats: dict[str, Any] = {}
    for event in job.events:
        if event.get("event") == "playbook_on_stats":
            stats = dict(event["event_data"].get("artifact_data") or {})
    return job.rc, job.stdout.read(), stats


def report(tmp: Path) -> dict[str, Any]:
    reports = tmp / "reports"
    assert sorted(p.name for p in reports.iterdir() if p.is_file()) == [
        "junit.xml", "report.html", "report.json", "report.md"
    ]  # fmt: skip
    return dict(json.loads((reports / "report.json").read_text()))


def test_a_healthy_fleet_is_one_go_with_one_score_and_results_by_host(
    hosts: Fleet, tmp_path: Path, pg_cluster: PgCluster
) -> None:
    before = len(hosts.ledger())
    rc, out, stats = run(hosts, tmp_path, pg_cluster)
    assert rc == 0, out[-3000:]
    # one verdict and one score for the fleet (three hosts once gave "GOGOGO" and 300.0)
    assert stats["stagegate_verdict"] == "GO", stats
    assert float(stats["stagegate_score"]) == 100.0
    data = report(tmp_path)
    assert data["verdict"] == "GO"
    assert set(data["hosts"]) == {"app1", "app2", "app3"}
    assert all(h["status"] == "PASS" for h in data["hosts"].values())
    checks = {c["name"]: c for c in data["checks"]}
    assert {e["host"] for e in checks["api_ready"]["details"]["hosts"]} == {"app1", "app2", "app3"}
    assert checks["database_up"]["status"] == "PASS"  # the fleet check, once
    assert "hosts" not in checks["database_up"]["details"]
    assert checks["fleet_release"]["message"] == "all 3 app hosts run v2"
    md = (tmp_path / "reports" / "report.md").read_text()
    assert "### Results by Host" in md
    assert "| app2 | api_ready |" in md
    junit = (tmp_path / "reports" / "junit.xml").read_text()
    assert 'testsuite name="host app3"' in junit
    # one ledger record, on the state host (the database host), none on the app hosts
    records = hosts.ledger()[before:]
    assert [r["kind"] for r in records] == ["revalidation"]
    assert records[0]["verdict"] == "GO"
    assert not any((h.state_dir / "ledger.jsonl").exists() for h in hosts.apps)
    assert (hosts.db.state_dir / "runs" / records[0]["run_id"] / "report.json").exists()


def test_a_failing_host_is_named_and_a_hosts_gate_can_allow_it(
    hosts: Fleet, tmp_path: Path, pg_cluster: PgCluster
) -> None:
    hosts.apps[1].fault("unhealthy")
    try:
        rc, out, stats = run(hosts, tmp_path / "all", pg_cluster)
        assert rc != 0  # NO_GO exits non-zero
        assert stats["stagegate_verdict"] == "NO_GO"
        assert stats["stagegate_failed_checks"] == ["api_ready"]
        data = report(tmp_path / "all")
        assert next(iter(data["hosts"])) == "app2"  # failing hosts first
        assert data["hosts"]["app2"]["failed"] == ["api_ready"]
        api = next(c for c in data["checks"] if c["name"] == "api_ready")
        assert api["status"] == "FAIL"
        assert "FAIL on app2" in api["message"]
        assert "2/3 hosts ok (needs all hosts)" in api["message"]
        assert any("app2" in b for b in data["blockers"])

        # "at least 60% of the hosts": the same fleet is GO_WITH_WARNINGS, app2 still named
        gates = {"rules": [{"name": "api on most hosts", "type": "hosts",
                            "checks": ["api_ready"], "min": "60%"}]}  # fmt: skip
        rc, out, stats = run(hosts, tmp_path / "most", pg_cluster, gates)
        assert rc == 0, out[-3000:]
        assert stats["stagegate_verdict"] == "GO_WITH_WARNINGS"
        data = report(tmp_path / "most")
        gate = next(g for g in data["gates"] if g["name"] == "api on most hosts")
        assert gate["status"] == "PASS"
        assert "2/3 hosts pass" in gate["message"]
        assert "app2: api_ready FAIL" in gate["message"]
    finally:
        hosts.apps[1].fault("")


WEB_COMPOSE = """
services:
  web:
    image: stagegate/base:bookworm
    command: [python3, -m, http.server, "8000", --directory, /site]
    ports: ["127.0.0.1:${WEB_PORT:?}:8000"]
    volumes: ["./site:/site:ro"]
"""

WEB_PLAYBOOK = """
- name: Each app host starts its own compose project
  hosts: stagegate_app
  gather_facts: false
  tasks:
    - name: Start the web tier
      stagegate.release.compose_up_tiers:
        project_src: "{{ web_dir }}"
        project_name: "{{ web_project }}"
        env: {WEB_PORT: "{{ web_port }}"}
        tiers: [[web]]
        timeout: 120
"""


def test_each_app_host_runs_its_own_compose_project_over_ssh(hosts: Fleet, tmp_path: Path) -> None:
    """How a fleet's app hosts run the app (docs/fleet.md): this machine's engine through each
    host's socket, each host with its own compose project, ports and files; a compose file's
    bind mount names the host's own directory."""
    data = hosts.inventory()
    app_hosts = data["staging"]["children"]["stagegate_app"]["hosts"]
    ports = {}
    for host in hosts.apps:
        web = host.root / "web"
        (web / "site").mkdir(parents=True, exist_ok=True)
        (web / "compose.yaml").write_text(WEB_COMPOSE)
        (web / "site" / "index.html").write_text(f"served by {host.name}\n")
        ports[host.name] = free_port()
        app_hosts[host.name].update(
            web_dir=str(web), web_project=host.compose_project, web_port=ports[host.name]
        )
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(data))
    (tmp_path / "web.yml").write_text(WEB_PLAYBOOK)
    try:
        run = subprocess.run(
            [str(BIN / "ansible-playbook"), str(tmp_path / "web.yml"),
             "-i", str(tmp_path / "hosts.yml")],
            capture_output=True, text=True, check=False,
            env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
                 "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
        )  # fmt: skip
        assert run.returncode == 0, run.stdout[-3000:]
        for host in hosts.apps:
            assert _get(ports[host.name]) == f"served by {host.name}\n"
            listed = subprocess.run(
                ["docker", "ps", "--quiet", "--filter",
                 f"label=com.docker.compose.project={host.compose_project}"],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            assert len(listed.stdout.split()) == 1
    finally:
        hosts.remove_projects()


def _get(port: int) -> str:
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=5) as reply:
                return str(reply.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_an_unreachable_host_is_named_and_the_rest_is_graded(
    tmp_path: Path, pg_cluster: PgCluster
) -> None:
    with fleet(tmp_path / "own", apps=3) as own:
        own.seed_ledger("v2")
        own.stop(own.apps[2])
        rc, _, stats = run(own, tmp_path, pg_cluster)
    assert rc != 0
    assert stats["stagegate_verdict"] == "NO_GO"
    data = report(tmp_path)
    assert next(iter(data["hosts"])) == "app3"
    assert data["hosts"]["app3"]["status"] == "ERROR"
    api = next(c for c in data["checks"] if c["name"] == "api_ready")
    assert "host app3 did not report: unreachable" in api["message"]
    assert data["hosts"]["app1"]["status"] == "PASS"


def test_a_single_host_inventory_works_unchanged(tmp_path: Path, pg_cluster: PgCluster) -> None:
    """No stagegate_* groups: the one host runs the catalog and holds the ledger; the report
    has no host section, as before fleets."""
    with fleet(tmp_path / "own", apps=1) as own:
        app = own.apps[0]
        own.seed_ledger("v2", state_host=app)
        rc, out, stats = run(own, tmp_path, pg_cluster, single=True)
        records = own.ledger(app)
    assert rc == 0, out[-3000:]
    assert (stats["stagegate_verdict"], float(stats["stagegate_score"])) == ("GO", 100.0)
    data = report(tmp_path)
    assert "hosts" not in data
    assert "fleet_release" not in {c["name"] for c in data["checks"]}
    assert [r.get("kind") for r in records] == [None, "revalidation"]
    assert not (own.db.state_dir / "ledger.jsonl").exists()


def test_the_example_fleet_inventory_has_the_documented_shape() -> None:
    """inventory/examples/fleet: the groups, the state host, gates valid for its catalog."""
    example = REPO / "inventory" / "examples" / "fleet"
    listed = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(example), "--list"],
        capture_output=True, text=True, check=True,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
    )  # fmt: skip
    data = json.loads(listed.stdout)
    groups = {name: value.get("hosts", []) for name, value in data.items() if name != "_meta"}
    groups["all"] = sorted(data["_meta"]["hostvars"])
    shape = fleet_shape(groups, [])
    assert shape.app == [f"app{i}.staging.example.com" for i in (1, 2, 3)]
    assert shape.state_host == "db1.staging.example.com"
    assert shape.proxy == ["proxy1.staging.example.com"]
    # the deploy role's tiers per group: the data tier and the migrations on the database host
    hostvars = data["_meta"]["hostvars"]
    db = hostvars["db1.staging.example.com"]
    assert (db["stagegate_tiers"], db["stagegate_app_services"]) == ([["postgres", "redis"]], [])
    for host in shape.app:
        assert hostvars[host]["stagegate_tiers"] == [["api", "worker"]]
        assert hostvars[host]["stagegate_deploy_migrate"] is False
    # complete: every host's variables pass the contract for what that host does (a proxy
    # deploys nothing, staging.yml validates it for preflight alone)
    schema = Schema.load(REPO / "roles")
    for host, own in hostvars.items():
        doing = ["preflight"] if host in shape.proxy else PHASES
        assert schema.validate(own, doing) == ([], []), host
    variables = yaml.safe_load((example / "group_vars" / "all" / "stagegate.yml").read_text())
    names = [c["name"] for c in variables["stagegate_checks"] + variables["stagegate_fleet_checks"]]
    config = validate_gates(variables["stagegate_gates"], names)
    assert [r.type for r in config.rules] == ["hosts", "hosts"]
