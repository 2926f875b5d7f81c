"""Fixtures for the sandbox application: its release repository, isolated stacks (own compose
project, image prefix, state dir and ports; always `down -v` and image removal afterwards),
and `ansible-playbook` runs against `inventory/sandbox` pointed at such a stack."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO_ROOT, free_port, unique_name

INVENTORY = REPO_ROOT / "inventory" / "sandbox"
SECRETS_FILE = INVENTORY / "group_vars" / "all" / "secrets.yml"
VENV_BIN = Path(sys.executable).parent


def sandbox_secrets() -> dict[str, str]:
    """The inventory's dummy credentials, read once from the inventory itself."""
    data = yaml.safe_load(SECRETS_FILE.read_text())
    return {key: str(value) for key, value in data.items()}


def make_sandbox_repo(dest: Path, root: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(root / "scripts" / "sandbox-repo.sh"), str(dest)],
        capture_output=True,
        text=True,
        check=True,
    )


@dataclass
class HttpReply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http_request(
    url: str, method: str = "GET", body: dict[str, Any] | None = None, token: str | None = None
) -> HttpReply:
    """One request to the sandbox API at `url` (always http://127.0.0.1:<port>): JSON body, an
    optional bearer token; an HTTP error status is a reply, not an exception."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data, headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            return HttpReply(resp.status, dict(resp.headers), resp.read())
    except urllib.error.HTTPError as err:
        return HttpReply(err.code, dict(err.headers), err.read())


def task_output(output: str, task: str) -> str:
    """What one task printed, from its header to the next task's."""
    start = output.index(f"{task}]")
    end = output.find("TASK [", start)
    return output[start : end if end >= 0 else None]


@dataclass
class PlaybookRun:
    rc: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class SandboxStack:
    """One isolated sandbox: nothing it creates collides with the demo stack or other tests."""

    repo: Path
    state_dir: Path
    project: str = field(default_factory=lambda: unique_name("sgtsb"))
    api_port: int = field(default_factory=free_port)
    pg_port: int = field(default_factory=free_port)
    redis_port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def image_prefix(self) -> str:
        return self.project

    @property
    def project_dir(self) -> Path:
        return self.state_dir / "checkout"

    @property
    def report_dir(self) -> Path:
        return self.state_dir / "reports"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def env(self) -> dict[str, str]:
        """What the inventory's stagegate_compose_env gives `docker compose` for this stack."""
        secrets = sandbox_secrets()
        return {
            "SANDBOX_API_PORT": str(self.api_port),
            "SANDBOX_PG_PORT": str(self.pg_port),
            "SANDBOX_REDIS_PORT": str(self.redis_port),
            "SANDBOX_IMAGE_PREFIX": self.image_prefix,
            "SANDBOX_ADMIN_USER": secrets["sandbox_admin_user"],
            "SANDBOX_ADMIN_PASSWORD": secrets["sandbox_admin_password"],
            "SANDBOX_JWT_SECRET": secrets["sandbox_jwt_secret"],
            "POSTGRES_PASSWORD": secrets["sandbox_db_password"],
            **self.extra_env,
        }

    def extra_vars(self, **overrides: Any) -> dict[str, Any]:
        """`-e` overrides that point inventory/sandbox at this stack."""
        return {
            "stagegate_source_repo": str(self.repo),
            "stagegate_state_dir": str(self.state_dir),
            "stagegate_report_dir": str(self.report_dir),
            "stagegate_compose_project": self.project,
            "sandbox_image_prefix": self.image_prefix,
            "sandbox_api_port": self.api_port,
            "sandbox_pg_port": self.pg_port,
            "sandbox_redis_port": self.redis_port,
            **overrides,
        }

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["docker", "compose", "--project-name", self.project, *args],
            cwd=self.project_dir,
            env={**os.environ, **self.env()},
            capture_output=True,
            text=True,
            check=False,
        )
        if check and proc.returncode != 0:
            states = subprocess.run(
                ["docker", "compose", "--project-name", self.project, "ps", "--all"],
                cwd=self.project_dir, capture_output=True, text=True, check=False,
            ).stdout  # fmt: skip
            pytest.fail(
                f"docker compose {' '.join(args)}: exit {proc.returncode}\n"
                f"{proc.stderr[-3000:]}\n{states}"
            )
        return proc

    def containers(self) -> list[dict[str, Any]]:
        """`docker compose ps --all` as rows. A container removed between compose's listing
        and its inspect (a run recreating the stack while a test watches) fails the whole
        command with "No such container": list again."""
        for _ in range(5):
            proc = self.compose("ps", "--all", "--format", "json", check=False)
            if "No such container" not in proc.stderr:
                break
        if proc.returncode != 0:
            pytest.fail(f"docker compose ps: exit {proc.returncode}\n{proc.stderr[-3000:]}")
        return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]

    def checkout(self, release: str) -> None:
        if not self.project_dir.exists():
            subprocess.run(
                ["git", "clone", "--quiet", str(self.repo), str(self.project_dir)], check=True
            )
        subprocess.run(
            ["git", "-C", str(self.project_dir), "checkout", "--quiet", "--force", release],
            check=True,
        )

    def up(self, release: str, *services: str, wait: bool = True) -> None:
        """Check out `release` and start it (waiting for health unless `wait` is false)."""
        self.checkout(release)
        self.compose("build", *services)
        self.compose("up", "--detach", *(["--wait"] if wait else []), *services)

    def migrate(self) -> None:
        """Apply the checked-out release's migrations with psql (what staging.yml does)."""
        for path in sorted((self.project_dir / "migrations").glob("*.sql")):
            self.compose(
                "exec", "-T", "postgres", "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1",
                "-U", "app", "-d", "app", "--single-transaction", "-f", f"/migrations/{path.name}",
            )  # fmt: skip

    def logs(self, service: str) -> str:
        return self.compose("logs", "--no-color", "--no-log-prefix", service).stdout

    def request(
        self,
        path: str,
        method: str = "GET",
        body: dict[str, Any] | None = None,
        token: str | None = None,
    ) -> HttpReply:
        return http_request(self.base_url + path, method, body, token)

    def wait_for(self, path: str, timeout: float = 60) -> HttpReply:
        """The first answer from `path` once the API accepts connections."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.request(path)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def teardown(self) -> None:
        if self.project_dir.joinpath("compose.yaml").exists():
            self.compose("down", "--volumes", "--remove-orphans", "--timeout", "5", check=False)
        else:  # never checked out: remove by project name alone
            subprocess.run(
                ["docker", "compose", "--project-name", self.project, "down", "--volumes"],
                cwd=tempfile.gettempdir(),
                capture_output=True,
                check=False,
            )
        remove_images(f"{self.image_prefix}/*")
        shutil.rmtree(self.state_dir, ignore_errors=True)


def remove_images(reference: str) -> None:
    """Every image tag matching the `docker image ls --filter reference=` pattern: the ones
    a test's compose project built (`<prefix>/*` for the sandbox, `<prefix>-*` for a
    runbook target)."""
    tags = subprocess.run(
        ["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}",
         "--filter", f"reference={reference}"],
        capture_output=True, text=True, check=False,
    ).stdout.split()  # fmt: skip
    if tags:
        subprocess.run(["docker", "image", "rm", *tags], capture_output=True, check=False)


def playbook_env() -> dict[str, str]:
    """The environment a user's `ansible-playbook` runs in: the venv on PATH, the project's
    ansible.cfg, no colour codes in the output the tests read."""
    return {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    }


def local_inventory(directory: Path) -> Path:
    """An inventory of one host, `deploy`, on the local connection with this Python."""
    inventory = directory / "hosts"
    inventory.write_text(
        f"deploy ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    return inventory


def run_playbook(
    playbook: str,
    extra_vars: dict[str, Any],
    inventory: Path = INVENTORY,
    options: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> PlaybookRun:
    """`ansible-playbook` as a user runs it: venv on PATH, the project's ansible.cfg; `options`
    are more of its command-line options (`--check`), `env` more environment variables."""
    env = {**playbook_env(), **(env or {})}
    proc = subprocess.run(
        [
            str(VENV_BIN / "ansible-playbook"),
            str(REPO_ROOT / "playbooks" / playbook),
            "-i",
            str(inventory),
            "-e",
            json.dumps(extra_vars),
            *options,
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return PlaybookRun(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="session")
def sandbox_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sandbox's release repository (tags v1, v2, v2-broken-migration, ...) for this session."""
    dest = tmp_path_factory.mktemp("sandbox-repo") / "sandbox.git"
    make_sandbox_repo(dest)
    return dest


@contextmanager
def isolated_stack(repo: Path, name: str = "sandbox") -> Iterator[SandboxStack]:
    """A sandbox stack with a state directory of its own, torn down (containers, volumes,
    images, state) at the end, also when the code using it fails."""
    state_dir = Path(tempfile.mkdtemp(prefix=f"sgt-{name}-", dir="/var/tmp"))
    stack = SandboxStack(repo=repo, state_dir=state_dir)
    try:
        yield stack
    finally:
        stack.teardown()


@pytest.fixture
def sandbox_stack(sandbox_repo: Path, docker_client: Any) -> Iterator[SandboxStack]:
    """An isolated sandbox stack for one test."""
    with isolated_stack(sandbox_repo) as stack:
        yield stack


def left_in(tmp: Path) -> list[str]:
    """What runs left in their TMPDIR: the callback's run record (`stagegate-run-*.json`) and
    Ansible's module payloads (`ansible_stagegate.release.<module>_payload_*`)."""
    return sorted(p.name for p in tmp.iterdir() if p.name.startswith(("stagegate-", "ansible_")))
