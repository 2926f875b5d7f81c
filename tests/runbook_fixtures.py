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

from conftest import REPO_ROOT, unique_name
from sandbox_fixtures import run_playbook

from stagegate import ledger

sys.path.insert(0, str(REPO_ROOT / "sandbox" / "targets"))
from make_repo import make_repo  # the targets' repository maker is a script

__all__ = ["TargetService", "make_repo", "remove_images", "target_service"]


def remove_images(prefix: str) -> None:
    """Every image tagged `<prefix>-<service>:<release>` by a target's compose file."""
    tags = subprocess.run(
        ["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}",
         "--filter", f"reference={prefix}-*"],
        capture_output=True, text=True, check=False,
    ).stdout.split()  # fmt: skip
    if tags:
        subprocess.run(["docker", "image", "rm", *tags], capture_output=True, check=False)


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
        remove_images(self.project)
        shutil.rmtree(self.state_dir, ignore_errors=True)


@contextmanager
def target_service(
    target: str, tmp_path: Path, env: dict[str, str], db_user: str, db_name: str
) -> Iterator[TargetService]:
    """The target's only release checked out, built, started with `env` and its schema
    applied; removed afterwards, also when the test fails."""
    repo = tmp_path / f"{target}.git"
    (release,) = make_repo(target, repo)
    checkout = tmp_path / "checkout"
    subprocess.run(["git", "clone", "--quiet", str(repo), str(checkout)], check=True)
    subprocess.run(["git", "-C", str(checkout), "checkout", "--quiet", release], check=True)
    state_dir = Path(tempfile.mkdtemp(prefix=f"sgt-{target}-", dir="/var/tmp"))
    service = TargetService(checkout, state_dir, env, db_user, db_name)
    service.env[env.pop("IMAGE_PREFIX_VAR")] = service.project
    try:
        service.start()
        yield service
    finally:
        service.teardown()
