"""The AWX data path on real components: the execution environment image (`make ee`), a deploy
host container reached over real SSH, and runs through `ansible-runner transmit | worker
(inside the EE container) | process`, the protocol AWX and Receptor carry.

The deploy host (tests/deployhost/) shares this machine's network namespace and Docker engine
(the socket is mounted), so the sandbox stack it deploys is the same kind as the other tests'
stacks, and its state dir and the sandbox repository are mounted at the same paths: Compose
resolves bind mounts on the deploy host and the engine opens them on this machine. The EE
container shares the network namespace too, so it reaches sshd and the sandbox's published
ports on 127.0.0.1, exactly like a controller next to the deploy host.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from conftest import REPO_ROOT, free_port, unique_name
from sandbox_fixtures import INVENTORY, VENV_BIN, SandboxStack, sandbox_secrets

DEPLOYHOST_DIR = REPO_ROOT / "tests" / "deployhost"
# Check types that read this machine's Docker engine: on the deploy host, where the engine is
# (an AWX execution node has no Docker socket).
HOST_CHECK_TYPES = {"docker", "logs"}
VAULT_PROMPT = r"^Vault password:\s*?$"
PROJECT_CFG = """[defaults]
callbacks_enabled = stagegate.release.progress
retry_files_enabled = false
host_key_checking = false
forks = 10

[connection]
pipelining = true
"""


def build_ee() -> str:
    """`scripts/ee.sh` (what `make ee` runs): reuses the image built from the same inputs."""
    proc = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "ee.sh")],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "STAGEGATE_VENV": str(VENV_BIN.parent)},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/ee.sh failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    found = re.search(r"(stagegate/ee:[0-9a-f]{16})", proc.stdout)
    if not found:
        raise RuntimeError(f"scripts/ee.sh printed no image name:\n{proc.stdout}")
    return found.group(1)


def build_deployhost() -> str:
    proc = subprocess.run(
        ["bash", str(DEPLOYHOST_DIR / "build.sh")], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"tests/deployhost/build.sh failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout.strip().splitlines()[-1]


@dataclass
class DeployHost:
    """A running deploy host container: sshd on 127.0.0.1:`port`, root with `key` only."""

    name: str
    port: int
    key: Path

    def ssh(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ssh", "-i", str(self.key), "-p", str(self.port), "-o", "BatchMode=yes",
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "LogLevel=ERROR", "root@127.0.0.1", command],
            capture_output=True, text=True, check=False, timeout=60,
        )  # fmt: skip


@contextmanager
def deploy_host(image: str, workdir: Path, shared: list[Path]) -> Iterator[DeployHost]:
    """Starts the deploy host with a throwaway key; `shared` paths are mounted at the same path.
    The container is removed at the end, also on failure."""
    key = workdir / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "stagegate-test", "-f", str(key)],
        check=True,
    )
    host = DeployHost(name=unique_name("sgt-deployhost"), port=free_port(), key=key)
    mounts = ["-v", "/var/run/docker.sock:/var/run/docker.sock",
              "-v", f"{key}.pub:/root/.ssh/authorized_keys:ro"]  # fmt: skip
    for path in shared:
        mounts += ["-v", f"{path}:{path}"]
    try:
        subprocess.run(
            ["docker", "run", "--detach", "--rm", "--name", host.name, "--network", "host",
             "--label", "stagegate.test=deployhost", *mounts, image, "-p", str(host.port)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while host.ssh("true").returncode != 0:
            if time.monotonic() > deadline:
                logs = subprocess.run(
                    ["docker", "logs", host.name], capture_output=True, text=True, check=False
                )
                raise RuntimeError(f"sshd on the deploy host did not answer: {logs.stderr}")
            time.sleep(0.3)
        yield host
    finally:
        subprocess.run(["docker", "rm", "--force", host.name], capture_output=True, check=False)


@dataclass
class RunnerJob:
    """What `ansible-runner process` left in the private data dir for one job."""

    rc: int
    status: str
    artifact_dir: Path
    events: list[dict[str, Any]]
    stdout: str
    seconds: float
    worker_stderr: str = ""
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def set_stats(self) -> dict[str, Any]:
        """The job's set_stats artifacts (what AWX shows and workflows branch on)."""
        for event in self.events:
            if event.get("event") == "playbook_on_stats":
                return dict(event["event_data"].get("artifact_data") or {})
        return {}

    def raw_text(self) -> str:
        """Everything that came back: events, stdout and every artifact file's text."""
        parts = [self.stdout]
        for path in self.artifact_dir.rglob("*"):
            if path.is_file():
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)


def private_data_dir(
    dest: Path, host: DeployHost, playbook: str, *, vault_password: str, extravars: dict[str, Any]
) -> Path:
    """An AWX job's private data dir: the project (one playbook importing the installed
    collection's), the inventory (the sandbox's group_vars, its secrets vault-encrypted, the
    deploy host reached over SSH), env/extravars, env/ssh_key (the machine credential), and the
    vault password answered at its prompt through env/passwords (the vault credential)."""
    project = dest / "project"
    group_vars = dest / "inventory" / "group_vars" / "all"
    env = dest / "env"
    for path in (project, group_vars, env):
        path.mkdir(parents=True, exist_ok=True)
    (project / playbook).write_text(
        f"---\n- name: stagegate.release.{Path(playbook).stem} from the installed collection\n"
        f"  ansible.builtin.import_playbook: stagegate.release.{Path(playbook).stem}\n"
    )
    # the project's ansible.cfg, as a repository used as an AWX project carries one
    (project / "ansible.cfg").write_text(PROJECT_CFG)
    hosts = {"staging": {"hosts": {"deployhost": {
        "ansible_host": "127.0.0.1",
        "ansible_port": host.port,
        "ansible_user": "root",
        "ansible_python_interpreter": "/usr/bin/python3",
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
    }}}}  # fmt: skip
    (dest / "inventory" / "hosts.yml").write_text(yaml.safe_dump(hosts))
    for source in (INVENTORY / "group_vars" / "all").glob("*.yml"):
        if source.name == "secrets.yml":
            continue
        text = source.read_text()
        if source.name == "checks.yml":
            data = yaml.safe_load(text)
            for check in data["sandbox_checks"]:
                if check["type"] in HOST_CHECK_TYPES:
                    check["run_on"] = "host"
            text = yaml.safe_dump(data, sort_keys=False)
        (group_vars / source.name).write_text(text)
    secrets = group_vars / "secrets.yml"
    shutil.copy(INVENTORY / "group_vars" / "all" / "secrets.yml", secrets)
    password_file = dest / "vault-pass"
    password_file.write_text(vault_password)
    subprocess.run(
        [str(VENV_BIN / "ansible-vault"), "encrypt", "--vault-password-file", str(password_file),
         str(secrets)],
        check=True, capture_output=True,
    )  # fmt: skip
    password_file.unlink()
    (env / "extravars").write_text(json.dumps(extravars))
    (env / "ssh_key").write_text(host.key.read_text())
    (env / "passwords").write_text(json.dumps({VAULT_PROMPT: vault_password}))
    (env / "cmdline").write_text("--ask-vault-pass")
    return dest


def awx_extravars(stack: SandboxStack, **overrides: Any) -> dict[str, Any]:
    """The `-e` variables of a job against `stack`; no secret value among them (the database
    password stays a reference to the vaulted inventory variable)."""
    variables = stack.extra_vars(
        stagegate_db={
            "host": "127.0.0.1",
            "port": stack.pg_port,
            "name": "app",
            "user": "app",
            "password": "{{ sandbox_db_password }}",
            "container": f"{stack.project}-postgres-1",
        },
        # the job's artifact dir in the worker: it travels back to `process` at the end
        stagegate_report_dir="{{ lookup('ansible.builtin.env', 'AWX_ISOLATED_DATA_DIR') }}/reports",
    )
    variables.update(overrides)
    return variables


def run_job(pdd: Path, playbook: str, ee_image: str, ident: str | None = None) -> RunnerJob:
    """transmit | `docker run -i --rm <ee> ansible-runner worker` | process, as AWX does."""
    ident = ident or unique_name("job")
    worker_name = unique_name("sgt-ee-worker")
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    runner = str(VENV_BIN / "ansible-runner")
    stderr_file = pdd.parent / f"{pdd.name}.worker-stderr"
    pipeline = (
        f"{runner} transmit {pdd} -p {playbook} --ident {ident}"
        f" | docker run --interactive --rm --name {worker_name} --network host"
        f" --label stagegate.test=ee-worker {ee_image} ansible-runner worker 2>{stderr_file}"
        f" | {runner} process {pdd} --ident {ident}"
    )
    start = time.perf_counter()
    try:
        process = subprocess.run(
            ["bash", "-o", "pipefail", "-c", pipeline],
            capture_output=True, text=True, env=env, check=False, timeout=900,
        )  # fmt: skip
    finally:
        subprocess.run(["docker", "rm", "--force", worker_name], capture_output=True, check=False)
    seconds = time.perf_counter() - start
    artifact_dir = pdd / "artifacts" / ident
    events = [
        json.loads(path.read_text())
        for path in sorted(
            (artifact_dir / "job_events").glob("*.json"),
            key=lambda p: int(p.name.split("-", 1)[0]),
        )
    ]
    rc_file, status_file = artifact_dir / "rc", artifact_dir / "status"
    return RunnerJob(
        rc=int(rc_file.read_text()) if rc_file.exists() else process.returncode,
        status=status_file.read_text().strip() if status_file.exists() else "unknown",
        artifact_dir=artifact_dir,
        events=events,
        stdout=process.stdout + process.stderr[-3000:],
        seconds=seconds,
        worker_stderr=stderr_file.read_text() if stderr_file.exists() else "",
    )


def secret_values(vault_password: str) -> list[str]:
    return [vault_password, *(v for k, v in sandbox_secrets().items() if k != "sandbox_admin_user")]
