"""Runbook targets (sandbox/targets/<runbook>) for the example tests: the target's release
repository, and a service stagegate only validates, started and removed by the test (own
compose project, image prefix, ports and state dir; `down -v` and image removal afterwards)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from checks_fixtures import App
from conftest import REPO_ROOT, free_port, unique_name
from sandbox_fixtures import VENV_BIN, remove_images, run_playbook

from stagegate import ledger

sys.path.insert(0, str(REPO_ROOT / "sandbox" / "targets"))
from make_repo import make_repo  # the targets' repository maker is a script

__all__ = ["TargetService", "aragora_service", "make_repo", "remove_images", "target_service"]


@dataclass
class TargetService:
    """A target deployed by "someone else" (the test), validated by playbooks/validate.yml."""

    checkout: Path
    state_dir: Path
    env: dict[str, str]
    db_user: str
    db_name: str
    project: str = field(default_factory=lambda: unique_name("sgtrb"))

    def compose(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["docker", "compose", "--project-name", self.project, *args],
            cwd=self.checkout,
            env={**os.environ, **self.env, **env},
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, f"docker compose {args}: {proc.stderr[-3000:]}"
        return proc

    def start(self) -> None:
        """What the service's own deployment does: build, start, apply the schema."""
        self.compose("up", "--build", "--detach", "--wait")
        for path in sorted((self.checkout / "migrations").glob("*.sql")):
            self.compose(
                "exec", "-T", "postgres", "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1",
                "-U", self.db_user, "-d", self.db_name, "-f", f"/migrations/{path.name}",
            )  # fmt: skip

    def validate(self, inventory: Path, release: str, **more: Any) -> dict[str, Any]:
        """playbooks/validate.yml with the example inventory; the run's report.json."""
        run = run_playbook(
            "validate.yml",
            {
                "stagegate_release": release,
                "stagegate_state_dir": str(self.state_dir),
                "stagegate_report_root": str(self.state_dir / "reports"),
                **more,
            },
            inventory=inventory,
        )
        assert run.rc == 0, run.output[-6000:]
        record = ledger.read(self.state_dir / "ledger.jsonl")[-1]
        assert (record["kind"], record["release"]) == ("validation", release)
        report: dict[str, Any] = json.loads(Path(record["reports"]["report.json"]).read_text())
        return report

    def teardown(self) -> None:
        subprocess.run(
            ["docker", "compose", "--project-name", self.project, "down", "--volumes",
             "--remove-orphans", "--timeout", "5"],
            cwd=self.checkout, env={**os.environ, **self.env}, capture_output=True, check=False,
        )  # fmt: skip
        remove_images(f"{self.project}-*")
        shutil.rmtree(self.state_dir, ignore_errors=True)


@contextmanager
def target_service(
    target: str,
    tmp_path: Path,
    *,
    prefix: str,
    ports: tuple[str, ...],
    env: dict[str, str],
    db: tuple[str, str],
) -> Iterator[TargetService]:
    """The target's only release checked out, built, started and its schema applied (as the
    database user and name `db`); removed afterwards, also when the test fails. Its compose
    file reads `<prefix>_IMAGE_PREFIX` (the service's own compose project) and a free port for
    each `<prefix>_<name>_PORT` of `ports`, besides `env`."""
    repo = tmp_path / f"{target}.git"
    (release,) = make_repo(target, repo)
    checkout = tmp_path / "checkout"
    subprocess.run(["git", "clone", "--quiet", str(repo), str(checkout)], check=True)
    subprocess.run(["git", "-C", str(checkout), "checkout", "--quiet", release], check=True)
    state_dir = Path(tempfile.mkdtemp(prefix=f"sgt-{target}-", dir="/var/tmp"))
    env = {**{f"{prefix}_{name}_PORT": str(free_port()) for name in ports}, **env}
    service = TargetService(checkout, state_dir, env, *db)
    service.env[f"{prefix}_IMAGE_PREFIX"] = service.project
    try:
        service.start()
        yield service
    finally:
        service.teardown()


@contextmanager
def aragora_service(
    tmp_path: Path, inventory_vars: dict[str, Any], db_password: str
) -> Iterator[TargetService]:
    """sandbox/targets/aragora-staging (runbooks 000 and 001) with the example inventory's
    test password and API key (`inventory_vars`, its group_vars)."""
    secrets = {
        "SANDBOX_ADMIN_PASSWORD": inventory_vars["vault_aragora_test_password"],
        "SANDBOX_JWT_SECRET": "aragora-jwt-signing-key-for-the-simulated-target",
        "ARAGORA_API_KEY": inventory_vars["vault_aragora_staging_api_key"],
        "POSTGRES_PASSWORD": db_password,
    }
    with target_service(
        "aragora-staging",
        tmp_path,
        prefix="ARAGORA",
        ports=("API", "PG", "REDIS"),
        env=secrets,
        db=("aragora", "aragora_staging"),
    ) as service:
        yield service


# A validation-only target (stagegate_validate_only) of one test app (checks_fixtures.App).
def inventory(tmp_path: Path, app: App, **more: Any) -> Path:
    """A validation-only inventory: the checks, the gates, where to write; nothing else."""
    group_vars = tmp_path / "inventory" / "group_vars" / "all"
    group_vars.mkdir(parents=True)
    (tmp_path / "inventory" / "hosts.yml").write_text(
        "staging:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
        f"      ansible_python_interpreter: {sys.executable}\n"
    )
    config = {
        "stagegate_validate_only": True,
        "stagegate_state_dir": str(tmp_path / "state"),
        "stagegate_report_root": str(tmp_path / "reports"),
        "stagegate_checks": [
            {
                "name": "api_health",
                "type": "http",
                "group": "infrastructure",
                "options": {
                    "url": f"{app.url}/health",
                    "json": ["checks.database.status == 'healthy'"],
                },
            },
            {
                "name": "security_headers",
                "type": "http",
                "group": "security",
                "severity": "warning",
                "options": {"url": f"{app.url}/health", "headers_present": ["X-Frame-Options"]},
            },
        ],
        "stagegate_gates": {"key_checks": ["api_health"]},
        **more,
    }
    (group_vars / "stagegate.yml").write_text(json.dumps(config))
    return tmp_path / "inventory"


def run_validate(inv: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """playbooks/validate.yml with the inventory `inv`, as a user runs it from the checkout."""
    return subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(inv), "playbooks/validate.yml", *extra],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg")},
        check=False,
    )


def last_report(tmp_path: Path) -> dict[str, Any]:
    """report.json of the newest run in the ledger of `inventory`'s state dir."""
    record = ledger.read(tmp_path / "state" / "ledger.jsonl")[-1]
    return json.loads(Path(record["reports"]["report.json"]).read_text())
