"""The execution environment and the AWX data path (#15.2, #15.3), on real components.

`scripts/ee.sh` builds the EE offline (or reuses the image built from the same inputs); its
content is checked from inside the image. Then the jobs AWX would run go through
`ansible-runner transmit | worker (inside the EE container) | process` against one isolated
sandbox stack on a deploy host container reached over SSH, in the order of a release day:
v1 is deployed first (plain ansible-playbook, set-up only), then through the AWX path v2 is
promoted (GO), rollback.yml brings v1 back, and v2-crashloop ends NO_GO and rolls itself back.
Each job's processed artifacts carry the set_stats and the reports, and no secret value.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ee_fixtures import (
    DeployHost,
    RunnerJob,
    awx_extravars,
    build_deployhost,
    build_ee,
    deploy_host,
    private_data_dir,
    run_job,
    secret_values,
)
from sandbox_fixtures import SandboxStack, isolated_stack, run_playbook

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.timeout(900)]

VAULT_PASSWORD = "ee-test-vault-password-not-a-secret-4d1f"
# Under load the latency checks may warn: both verdicts are a promotion that went through.
GOOD = ("GO", "GO_WITH_WARNINGS")

INSIDE = r"""
import importlib.metadata, json, shutil, subprocess
def run(*cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True)
    return {"rc": proc.returncode, "out": proc.stdout + proc.stderr}
import stagegate.engine, stagegate.gatekeeper
from ansible_collections.stagegate.release.plugins.module_utils import _checks_common
print(json.dumps({
    "dists": {d: importlib.metadata.version(d) for d in
              ("ansible-core", "ansible-runner", "stagegate-release", "psycopg", "docker")},
    "stagegate": stagegate.engine.__file__,
    "module_utils": _checks_common.__file__,
    "collections": run("ansible-galaxy", "collection", "list", "stagegate.release"),
    "doc": run("ansible-doc", "-t", "module", "stagegate.release.pg_backup"),
    "tools": {t: shutil.which(t) for t in ("ssh", "ssh-agent", "pg_dump", "docker")},
    "pip_conf": run("pip", "config", "list"),
}))
"""


@pytest.fixture(scope="module")
def ee_image() -> str:
    return build_ee()


def test_ee_image_has_runner_ansible_and_stagegate(ee_image: str) -> None:
    proc = subprocess.run(
        ["docker", "run", "--rm", ee_image, "python3", "-c", INSIDE],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    inside = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(inside["dists"]) == {
        "ansible-core", "ansible-runner", "stagegate-release", "psycopg", "docker",
    }  # fmt: skip
    # the distribution imports with plain Python (no Ansible collection loader, no .pth)
    assert inside["stagegate"].startswith("/usr/local/lib/python3")
    assert inside["collections"]["rc"] == 0
    assert "stagegate.release" in inside["collections"]["out"]
    assert "/usr/share/ansible/collections" in inside["collections"]["out"]
    assert inside["doc"]["rc"] == 0, inside["doc"]["out"]
    assert "pg_dump" in inside["doc"]["out"]
    # the machine credential works the AWX way (ssh-agent) and no build-only pip config is left
    assert inside["tools"]["ssh"]
    assert inside["tools"]["ssh-agent"]
    assert "no-index" not in inside["pip_conf"]["out"]
    for tool in bindep_tools():
        assert inside["tools"].get(tool), f"bindep.txt asks for {tool}: not in the image"


def bindep_tools() -> list[str]:
    """The commands bindep.txt's packages provide, when it lists them for Debian."""
    bindep = Path(__file__).resolve().parent.parent / "bindep.txt"
    if not bindep.exists():
        return []
    text = bindep.read_text()
    tools = {"postgresql-client": "pg_dump", "docker": "docker"}
    return [tool for package, tool in tools.items() if package in text and "dpkg" in text]


@dataclass
class AwxSite:
    ee_image: str
    stack: SandboxStack
    host: DeployHost
    workdir: Path

    def job(self, playbook: str, name: str, **extra: Any) -> RunnerJob:
        pdd = private_data_dir(
            self.workdir / name,
            self.host,
            playbook,
            vault_password=VAULT_PASSWORD,
            extravars=awx_extravars(self.stack, **extra),
        )
        return run_job(pdd, playbook, self.ee_image)

    def running_release(self) -> str:
        return (self.stack.project_dir / ".stagegate-release").read_text().strip()


@pytest.fixture(scope="module")
def site(ee_image: str, sandbox_repo: Path) -> Iterator[AwxSite]:
    image = build_deployhost()
    with (
        tempfile.TemporaryDirectory(prefix="sgt-awx-", dir="/var/tmp") as tmp,
        isolated_stack(sandbox_repo, "awx") as stack,
    ):
        stack.state_dir.mkdir(parents=True, exist_ok=True)
        with deploy_host(image, Path(tmp), [stack.state_dir, sandbox_repo.parent]) as host:
            site = AwxSite(ee_image, stack, host, Path(tmp))
            # set-up, not under test: v1 deployed the plain way (the deploy host's engine is
            # this machine's, so the stack is the same either way)
            setup = run_playbook(
                "staging.yml",
                awx_extravars(stack, stagegate_release="v1", stagegate_report_dir=tmp + "/v1"),
            )
            assert setup.rc == 0, setup.output[-4000:]
            yield site


def assert_clean(job: RunnerJob) -> None:
    """No secret value anywhere in what came back (events, stdout, artifacts, reports)."""
    text = job.raw_text()
    leaked = [i for i, value in enumerate(secret_values(VAULT_PASSWORD)) if value in text]
    assert not leaked, f"secret values #{leaked} appear in the job's events or artifacts"


def report_of(job: RunnerJob) -> dict[str, Any]:
    stats = job.set_stats
    path = Path(stats["stagegate_report"])
    # the path is the worker's; the same file came back under the processed artifact dir
    local = job.artifact_dir / path.relative_to(path.parents[1])
    return json.loads(local.read_text())


def test_promotion_go_through_transmit_worker_process(site: AwxSite) -> None:
    job = site.job("staging.yml", "promote-v2", stagegate_release="v2")
    assert job.rc == 0, job.stdout[-4000:] + job.worker_stderr[-2000:]
    assert job.status == "successful"
    stats = job.set_stats
    assert stats["stagegate_verdict"] in GOOD
    assert stats["stagegate_failed_checks"] == []
    report = report_of(job)
    assert report["verdict"] == stats["stagegate_verdict"]
    assert report["release"]["version"] == "v2"
    assert {"report.md", "report.html", "junit.xml"} <= {
        p.name for p in (job.artifact_dir / "reports").iterdir()
    }
    # the deploy host ran the modules over SSH: the host checks name it
    hosts = {c.get("host") for c in report["checks"] if c["name"] == "services_healthy"}
    assert hosts <= {"deployhost", None}
    assert site.running_release() == "v2"
    assert_clean(job)


def test_rollback_through_transmit_worker_process(site: AwxSite) -> None:
    job = site.job("rollback.yml", "rollback")
    assert job.rc == 0, job.stdout[-4000:] + job.worker_stderr[-2000:]
    assert job.status == "successful"
    # its report came back with the job
    report = json.loads((job.artifact_dir / "reports" / "rollback" / "report.json").read_text())
    assert report["verdict"] in GOOD
    assert report["release"]["version"] == "v1"
    assert report["release"]["previous"] == "v2"
    assert site.running_release() == "v1"
    assert site.stack.request("/api/v1/items").status == 200
    assert_clean(job)


def test_no_go_rolls_back_through_transmit_worker_process(site: AwxSite) -> None:
    job = site.job(
        "staging.yml", "promote-crashloop", stagegate_release="v2-crashloop",
        stagegate_auto_rollback=True,
    )  # fmt: skip
    assert job.rc != 0
    assert job.status == "failed"
    stats = job.set_stats
    assert stats["stagegate_verdict"] == "NO_GO"
    assert report_of(job)["verdict"] == "NO_GO"
    assert site.running_release() == "v1"
    ledger = [
        json.loads(line)
        for line in (site.stack.state_dir / "ledger.jsonl").read_text().splitlines()
        if line.strip()
    ]
    assert ledger[-1]["kind"] == "rollback"
    assert_clean(job)
