"""Fleet hosts for tests and benches: N app hosts and a database host, each a container with
sshd reached over real SSH with a throwaway key, each app host serving the catalog endpoints
(tests/fleet/app.py) on its own port.

The containers use the deploy host image (tests/deployhost/, built offline) and share this
machine's network namespace, so every sshd and every app listens on its own 127.0.0.1 port,
while each host has its own file system: its /srv/stagegate is a directory of the test's
(`FleetHost.root`), holding the checkout with its `.stagegate-release` marker, the state dir
and the fault switch the app reads (`FleetHost.fault`). With `runtime=True` the hosts also get
a container runtime: this machine's engine through its mounted socket (Docker-in-Docker is not
possible here: the engine refuses `--privileged` containers), each host with its own compose
project (`FleetHost.compose_project`, removed at the end) and its root mounted a second time at
its own path, so that a compose file's bind mounts name the same directory inside the host and
on this machine. With `own_engine=["app3"]` that host talks to an engine of its own instead (a
second dockerd on this machine, `second_engine`), holding none of this machine's images, as an
app host with its own Docker would. The database host's state dir holds
the fleet's ledger (stagegate_state_host). Every container is removed at the end, also when
the test fails or a container did not start.

    with fleet(tmp_path, apps=3) as hosts:
        inventory = hosts.write_inventory(tmp_path / "hosts.yml")
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner
import pytest
import yaml
from conftest import REPO_ROOT, free_port, unique_name
from ee_fixtures import build_deployhost
from sandbox_fixtures import (
    VENV_BIN,
    PlaybookRun,
    SandboxStack,
    http_request,
    remove_images,
    sandbox_secrets,
)

FLEET_APP = REPO_ROOT / "tests" / "fleet" / "app.py"
SSH_OPTIONS = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
# In each container (its own mount of FleetHost.root).
HOST_ROOT = "/srv/stagegate"
# The check catalog each app host answers (tests/fleet/app.py), per host at its own port.
CATALOG = [
    {"name": "api_ready", "type": "http", "group": "infrastructure", "severity": "critical",
     "options": {"url": "http://127.0.0.1:{{ fleet_app_port }}/health/ready",
                 "json": ["status == 'healthy'"]}},
    {"name": "security_headers", "type": "http", "group": "security", "severity": "critical",
     "options": {"url": "http://127.0.0.1:{{ fleet_app_port }}/health/live",
                 "headers_present": ["X-Frame-Options", "Content-Security-Policy"]}},
    {"name": "items_listed", "type": "http", "group": "functionality", "severity": "critical",
     "options": {"url": "http://127.0.0.1:{{ fleet_app_port }}/api/v1/items",
                 "json": ["length(items) > `0`"]}},
    {"name": "host_disk", "type": "disk", "group": "infrastructure", "severity": "warning",
     "run_on": "host", "options": {"path": "/srv/stagegate", "free": {"pass": ">= 1mb"}}},
]  # fmt: skip


@dataclass
class Engine:
    """A Docker engine of its own on this machine: a second dockerd with its own socket, data
    root, exec root and pid file, no bridge and no iptables rules (it holds images; containers
    of its own would have no network but the host's). Started by `second_engine`."""

    name: str
    socket: Path
    data_root: Path
    exec_root: Path
    pidfile: Path

    def docker(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """`docker --host <this engine> ARGS`."""
        return subprocess.run(
            ["docker", "--host", f"unix://{self.socket}", *args],
            capture_output=True, text=True, check=False, **kwargs,
        )  # fmt: skip

    def load_from_this_machine(self, reference: str) -> None:
        """Copies `reference` from this machine's engine into this one."""
        saved = subprocess.run(["docker", "save", reference], capture_output=True, check=True)
        subprocess.run(
            ["docker", "--host", f"unix://{self.socket}", "load"],
            input=saved.stdout, capture_output=True, check=True,
        )  # fmt: skip

    def image_id(self, reference: str) -> str:
        """The ID of `reference` in this engine, "" when it holds none."""
        found = self.docker("image", "inspect", "--format", "{{.Id}}", reference)
        return found.stdout.strip() if found.returncode == 0 else ""


def _mounts_under(*roots: Path) -> list[str]:
    """Mount points at or under `roots`, deepest first (what a dockerd left mounted)."""
    points = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    return sorted(
        (p for p in points if any(p == str(r) or p.startswith(f"{r}/") for r in roots)),
        key=len,
        reverse=True,
    )


@contextmanager
def second_engine(workdir: Path) -> Iterator[Engine]:
    """Starts a dockerd of its own beside this machine's, and at the end (also on failure)
    stops it and removes its data root, exec root, socket and pid file. Its log is
    `workdir/<name>.log`. Names are short: the exec root holds containerd's socket, whose path
    must fit a unix socket's 108 bytes."""
    name = unique_name("sgtd")
    engine = Engine(
        name, Path(f"/run/{name}.sock"), Path(f"/var/lib/{name}"), Path(f"/run/{name}"),
        Path(f"/run/{name}.pid"),
    )  # fmt: skip
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        # In a network namespace of its own: a dockerd started with --bridge none deletes the
        # docker0 interface it finds (seen here: this machine's engine lost its default bridge
        # and every `docker run` after it failed with "could not find bridge docker0").
        daemon = subprocess.Popen(
            ["unshare", "--net", "--",
             "dockerd", "--host", f"unix://{engine.socket}", "--data-root", str(engine.data_root),
             "--exec-root", str(engine.exec_root), "--pidfile", str(engine.pidfile),
             "--bridge", "none", "--iptables=false", "--ip-masq=false",
             "--containerd-namespace", name, "--containerd-plugins-namespace", f"{name}p"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while engine.docker("info", "--format", "{{.ID}}").returncode != 0:
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"second dockerd {name} did not start (exit {daemon.poll()}): "
                    f"{log_path.read_text()[-3000:]}"
                )
            time.sleep(0.5)
        yield engine
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        for point in _mounts_under(engine.data_root, engine.exec_root):
            subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)
        for path in (engine.data_root, engine.exec_root):
            shutil.rmtree(path, ignore_errors=True)
        for path in (engine.socket, engine.pidfile):
            path.unlink(missing_ok=True)


@dataclass
class FleetHost:
    """One host of the fleet: inventory name, container, sshd port, app port (0: no app)."""

    name: str
    container: str
    ssh_port: int
    http_port: int
    root: Path
    # An engine of its own (fleet(own_engine=...)), else this machine's.
    engine: Engine | None = None

    @property
    def compose_project(self) -> str:
        """This host's own compose project on the shared engine (runtime fleets)."""
        return self.container

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    def fault(self, mode: str) -> None:
        """Switch the host's app: `unhealthy`, `no_headers`, or "" (healthy)."""
        (self.root / "fault").write_text(mode)

    def set_release(self, release: str) -> None:
        (self.root / "checkout" / ".stagegate-release").write_text(f"{release}\n")

    def release(self) -> str:
        """The host's release marker ("" without one)."""
        marker = self.root / "checkout" / ".stagegate-release"
        return marker.read_text().strip() if marker.exists() else ""

    def inventory_vars(self, key: Path) -> dict[str, Any]:
        return {
            "ansible_host": "127.0.0.1",
            "ansible_port": self.ssh_port,
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(key),
            "ansible_ssh_common_args": SSH_OPTIONS,
            "ansible_python_interpreter": "/usr/bin/python3",
            "fleet_app_port": self.http_port,
        }


@dataclass
class Fleet:
    apps: list[FleetHost]
    db: FleetHost
    key: Path
    image: str
    extra: list[FleetHost] = field(default_factory=list)
    # How the hosts were started (fleet()), so that one that went away can come back.
    runtime: bool = False
    shared: Sequence[Path] = ()

    @property
    def hosts(self) -> list[FleetHost]:
        return [*self.apps, self.db]

    def inventory(self, **group_vars: Any) -> dict[str, Any]:
        """The fleet inventory shape (docs/fleet.md): stagegate_app and stagegate_db under the
        environment's group `staging`, the database host holding the lock and ledger."""
        return {
            "staging": {
                "vars": {
                    "stagegate_environment": "staging",
                    "stagegate_state_dir": f"{HOST_ROOT}/state",
                    "stagegate_project_dir": f"{HOST_ROOT}/checkout",
                    **group_vars,
                },
                "children": {
                    "stagegate_app": {
                        "hosts": {h.name: h.inventory_vars(self.key) for h in self.apps}
                    },
                    "stagegate_db": {"hosts": {self.db.name: self.db.inventory_vars(self.key)}},
                },
            }
        }

    def write_inventory(self, path: Path, *, single: bool = False, **group_vars: Any) -> Path:
        """The fleet inventory, or with `single` the first app host alone, as a single-host
        inventory has always been written (no stagegate_* groups)."""
        data = self.inventory(**group_vars)
        if single:
            host = self.apps[0]
            data["staging"].pop("children")
            data["staging"]["hosts"] = {host.name: host.inventory_vars(self.key)}
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def seed_ledger(
        self, release: str, previous: str = "", state_host: FleetHost | None = None
    ) -> None:
        """A GO promotion record of `release` in the state host's ledger (default: the database
        host), as staging.yml leaves it, and the release marker on every app host (what
        validate.yml re-validates)."""
        state = state_host or self.db
        for host in self.apps:
            host.set_release(release)
        record = {
            "release": release,
            "previous": previous or None,
            "environment": "staging",
            "verdict": "GO",
            "score": 100.0,
            "started": "2026-11-30T10:00:00+00:00",
            "finished": "2026-11-30T10:05:00+00:00",
            "run_id": "seed-promotion",
            "failed_checks": [],
            "stopped": None,
            "metrics": {},
        }
        state.state_dir.mkdir(parents=True, exist_ok=True)
        with (state.state_dir / "ledger.jsonl").open("a") as ledger:
            ledger.write(json.dumps(record) + "\n")

    def ledger(self, state_host: FleetHost | None = None) -> list[dict[str, Any]]:
        path = (state_host or self.db).state_dir / "ledger.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def stop(self, host: FleetHost) -> None:
        """The host goes away (sshd and app with it)."""
        subprocess.run(
            ["docker", "rm", "--force", host.container], capture_output=True, check=False
        )

    def start(self, host: FleetHost) -> None:
        """A host that went away (`stop`) comes back: a new container on the same root, ports
        and key, so its checkout, state and compose project are those it left."""
        _start(host, self.image, self.key, self.runtime, self.shared)

    def trust_checkouts(self) -> None:
        """git as each host's root works in the checkouts the test's user owns (a rollback
        checks the target out there)."""
        for host in self.hosts:
            subprocess.run(
                ["docker", "exec", host.container, "git", "config", "--global", "--add",
                 "safe.directory", "*"],
                capture_output=True, check=True,
            )  # fmt: skip

    def remove_projects(self) -> None:
        """Removes every host's compose project (containers, networks, volumes)."""
        for host in self.hosts:
            subprocess.run(
                ["docker", "compose", "--project-name", host.compose_project, "down",
                 "--volumes", "--remove-orphans", "--timeout", "2"],
                capture_output=True, check=False,
            )  # fmt: skip


def _wait_port(port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.2)
    return False


def _start(
    host: FleetHost, image: str, key: Path, runtime: bool = False, shared: Sequence[Path] = ()
) -> None:
    for sub in ("checkout", "state"):
        (host.root / sub).mkdir(parents=True, exist_ok=True)
    app = (
        f"python3 /usr/local/lib/fleet_app.py {host.http_port} {HOST_ROOT} & "
        if host.http_port
        else ""
    )
    sshd = f"exec /usr/sbin/sshd -D -e -o ListenAddress=127.0.0.1 -p {host.ssh_port}"
    subprocess.run(
        ["docker", "run", "--detach", "--rm", "--name", host.container, "--network", "host",
         "--label", "stagegate.test=fleet",
         "-v", f"{key}.pub:/root/.ssh/authorized_keys:ro",
         "-v", f"{FLEET_APP}:/usr/local/lib/fleet_app.py:ro",
         "-v", f"{host.root}:{HOST_ROOT}",
         *(["-v", f"{host.engine.socket if host.engine else '/var/run/docker.sock'}"
                  ":/var/run/docker.sock", "-v", f"{host.root}:{host.root}"]
           if runtime or host.engine else []),
         *[arg for path in shared for arg in ("-v", f"{path}:{path}:ro")],
         "--entrypoint", "/bin/sh", image, "-c", app + sshd],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    for port in (host.ssh_port, host.http_port):
        if port and not _wait_port(port, deadline):
            logs = subprocess.run(
                ["docker", "logs", host.container], capture_output=True, text=True, check=False
            )
            raise RuntimeError(f"fleet host {host.name}: port {port} did not answer: {logs.stderr}")


@contextmanager
def fleet(
    workdir: Path,
    apps: int = 3,
    image: str | None = None,
    *,
    runtime: bool = False,
    shared: Sequence[Path] = (),
    own_engine: Sequence[str] = (),
) -> Iterator[Fleet]:
    """Starts `apps` app hosts (app1..appN) and a database host (db1), in parallel; with
    `runtime`, each with this machine's engine and its own compose project. `shared` paths
    (the release repository) are mounted read-only at the same path in every host. The hosts
    named in `own_engine` get an engine of their own instead (`second_engine`, its socket
    mounted as the host's /var/run/docker.sock; `FleetHost.engine`), which holds no image of
    this machine's: what they need must be copied to them."""
    image = image or build_deployhost()
    workdir.mkdir(parents=True, exist_ok=True)
    key = workdir / "fleet_ed25519"
    if not key.exists():
        subprocess.run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "stagegate-fleet",
                "-f",
                str(key),
            ],
            check=True,
        )
    prefix = unique_name("sgt-fleet")

    def make(name: str, http: bool) -> FleetHost:
        return FleetHost(
            name, f"{prefix}-{name}", free_port(), free_port() if http else 0, workdir / name
        )

    made = Fleet(
        [make(f"app{i}", True) for i in range(1, apps + 1)],
        make("db1", False),
        key,
        image,
        runtime=runtime,
        shared=tuple(shared),
    )
    unknown = sorted(set(own_engine) - {h.name for h in made.hosts})
    if unknown:
        raise ValueError(f"own_engine: no such fleet host {unknown}")
    # The engines outlive the hosts that use them: stopped after the hosts, also on failure.
    with ExitStack() as engines:
        for host in made.hosts:
            if host.name in own_engine:
                host.engine = engines.enter_context(second_engine(workdir))
        try:
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(lambda h: _start(h, image, key, runtime, shared), made.hosts))
            yield made
        finally:
            if runtime:
                made.remove_projects()
            for host in made.hosts:
                made.stop(host)


# The sandbox's checks on a fleet (docs/fleet.md): per app host at its own api port
# (release_version expects the release the host should run, `stagegate_release`), the database
# schema once, as a fleet check.
SANDBOX_HOST_CHECKS = [
    {"name": "api_ready", "type": "http", "group": "infrastructure", "severity": "critical",
     "retries": 10, "delay": 1,
     "options": {"url": "http://127.0.0.1:{{ sandbox_api_port }}/health/ready",
                 "json": ["status == 'healthy'", "checks.database.status == 'healthy'",
                          "checks.redis.status == 'healthy'"]}},
    {"name": "release_version", "type": "http", "group": "tests", "severity": "critical",
     "options": {"url": "http://127.0.0.1:{{ sandbox_api_port }}/version",
                 "json": ["version == '{{ stagegate_release }}'"]}},
    {"name": "items_listed", "type": "http", "group": "functionality", "severity": "critical",
     "options": {"url": "http://127.0.0.1:{{ sandbox_api_port }}/api/v1/items",
                 "json": ["length(items) > `0`"]}},
]  # fmt: skip
SANDBOX_FLEET_CHECKS = [
    {"name": "base_schema", "type": "postgres", "group": "data", "severity": "critical",
     "options": {"host": "{{ stagegate_db.host }}", "port": "{{ stagegate_db.port }}",
                 "dbname": "app", "user": "app", "password": "{{ stagegate_db.password }}",
                 "tables": ["items", "job_runs", "api_users"]}},
]  # fmt: skip


def run_on_fleet(
    playbook: str, inventory: Path, private_dir: Path, **extravars: Any
) -> tuple[PlaybookRun, dict[str, Any]]:
    """A playbook of playbooks/ over a fleet through `ansible_runner.run`, as AWX runs it (the
    project's ansible.cfg, `extravars` as -e): the run, and the job's set_stats artifacts."""
    private_dir.mkdir(parents=True, exist_ok=True)
    job = ansible_runner.run(
        private_data_dir=str(private_dir),
        playbook=str(REPO_ROOT / "playbooks" / playbook),
        inventory=str(inventory),
        extravars=extravars,
        envvars={
            "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
            "ANSIBLE_NOCOLOR": "1",
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        },
        quiet=True,
    )
    stats = next(
        (dict(e["event_data"].get("artifact_data") or {})
         for e in job.events if e.get("event") == "playbook_on_stats"),
        {},
    )  # fmt: skip
    return PlaybookRun(int(job.rc), job.stdout.read(), ""), stats


def started_containers(project: str) -> dict[str, str]:
    """{container id: start time} of a compose project's containers: a container recreated or
    restarted changes its id or its start time."""
    ids = subprocess.run(
        ["docker", "ps", "--all", "--quiet", "--no-trunc",
         "--filter", f"label=com.docker.compose.project={project}"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    if not ids:
        return {}
    started = subprocess.run(
        ["docker", "inspect", "--format", "{{.Id}} {{.State.StartedAt}}", *ids],
        capture_output=True, text=True, check=True,
    ).stdout.split("\n")  # fmt: skip
    return dict(line.split(" ", 1) for line in started if line.strip())


# The app tier of the sandbox on an app host: only api and worker, on the database host's
# PostgreSQL and Redis (docs/fleet.md, "How a fleet runs the application").
SANDBOX_APP_OVERRIDE = REPO_ROOT / "tests" / "fleet" / "compose.fleet-app.yaml"
# Puts a sandbox release on a runtime fleet over SSH (tests/fleet/sandbox_up.yml).
SANDBOX_UP = REPO_ROOT / "tests" / "fleet" / "sandbox_up.yml"
# Promotes the next release as a fleet promotion leaves it: backup, manifest, markers, ledger.
SANDBOX_PROMOTE = REPO_ROOT / "tests" / "fleet" / "promote.yml"


@dataclass
class SandboxFleet:
    """The sandbox application on a runtime fleet: the database host runs its PostgreSQL and
    Redis (its own compose project), every app host its api and worker (its own compose project,
    api on its own port), all from one checkout per host of `repo` and one set of images
    (`<image_prefix>/*`)."""

    fleet: Fleet
    repo: Path
    image_prefix: str = field(default_factory=lambda: unique_name("sgtfleet"))
    api_ports: dict[str, int] = field(default_factory=dict)
    pg_port: int = field(default_factory=free_port)
    redis_port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self.api_ports = self.api_ports or {host.name: free_port() for host in self.fleet.apps}

    def inventory(self, path: Path, *, proxy: bool = False, **group_vars: Any) -> Path:
        """The fleet inventory with the sandbox's variables: per-host compose project and ports,
        the app hosts' compose override, the database host's PostgreSQL as stagegate_db."""
        db_project = self.fleet.db.compose_project
        secrets = sandbox_secrets()
        # The sandbox's compose environment, as for one stack; each app host's own api port.
        stack = SandboxStack(
            repo=self.repo,
            state_dir=self.fleet.db.root,
            project=self.image_prefix,
            pg_port=self.pg_port,
            redis_port=self.redis_port,
            extra_env={
                "SANDBOX_API_PORT": "{{ sandbox_api_port | default(0) }}",
                "FLEET_POSTGRES_HOST": f"{db_project}-postgres-1",
                "FLEET_REDIS_HOST": f"{db_project}-redis-1",
                "FLEET_DB_NETWORK": f"{db_project}_default",
            },
        )
        data = self.fleet.inventory(
            stagegate_source_repo=str(self.repo),
            stagegate_compose_env=stack.env(),
            stagegate_db={
                "host": "127.0.0.1",
                "port": self.pg_port,
                "name": "app",
                "user": "app",
                "password": secrets["sandbox_db_password"],
                "container": "postgres",
            },
            **group_vars,
        )
        # The compose CLI runs on the host and the engine resolves bind mounts on this machine:
        # the checkout and the override are named by the path both see (the second mount).
        children = data["staging"]["children"]
        for host in self.fleet.apps:
            override = host.root / SANDBOX_APP_OVERRIDE.name
            override.write_text(SANDBOX_APP_OVERRIDE.read_text())
            children["stagegate_app"]["hosts"][host.name].update(
                stagegate_project_dir=str(host.root / "checkout"),
                stagegate_compose_project=host.compose_project,
                stagegate_compose_files=["compose.yaml", str(override)],
                stagegate_tiers=[["api", "worker"]],
                stagegate_app_services=["api", "worker"],
                stagegate_deploy_migrate=False,  # the database host's
                sandbox_api_port=self.api_ports[host.name],
            )
        children["stagegate_db"]["hosts"][self.fleet.db.name].update(
            stagegate_project_dir=str(self.fleet.db.root / "checkout"),
            stagegate_compose_project=db_project,
            stagegate_compose_files=["compose.yaml"],
            stagegate_tiers=[["postgres", "redis"]],
            stagegate_app_services=[],
        )
        if proxy:
            children["stagegate_proxy"] = {
                "hosts": {"proxy1": self.fleet.db.inventory_vars(self.fleet.key)}
            }
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def promotion_inventory(
        self, where: Path, release: str, *, proxy: bool = False, **group_vars: Any
    ) -> Path:
        """`where`/hosts.yml for promoting `release` with staging.yml (docs/fleet.md): the
        sandbox's checks per app host and once for the fleet, reports in `where`/reports.
        `proxy`: a `stagegate_proxy` host too (the database host's sshd under another name),
        which deploys nothing."""
        where.mkdir(parents=True, exist_ok=True)
        return self.inventory(
            where / "hosts.yml",
            proxy=proxy,
            stagegate_release=release,
            stagegate_checks=SANDBOX_HOST_CHECKS,
            stagegate_fleet_checks=SANDBOX_FLEET_CHECKS,
            stagegate_gates={"key_checks": ["api_ready"]},
            stagegate_report_dir=str(where / "reports"),
            # as inventory/sandbox: the app hosts' sessions are ended for the dry-run's TEMPLATE
            # copy (the dump|restore fallback fails on the sandbox's pg_stat_statements)
            stagegate_dryrun_when_busy="terminate",
            **group_vars,
        )

    def request(self, host: FleetHost, path: str) -> tuple[int, Any]:
        """GET `path` from the api on `host`: (status, decoded JSON body)."""
        reply = http_request(f"http://127.0.0.1:{self.api_ports[host.name]}{path}")
        return reply.status, json.loads(reply.body or b"null")

    def remove_images(self) -> None:
        """Every image tag the fleet's builds made."""
        remove_images(f"{self.image_prefix}/*")


@pytest.fixture(scope="module")
def sandbox_fleet(
    tmp_path_factory: pytest.TempPathFactory, sandbox_repo: Path
) -> Iterator[SandboxFleet]:
    """The sandbox on a runtime fleet of three app hosts and a database host, for one test
    module (its tests run in order on it); every container, project and image removed after."""
    with fleet(
        tmp_path_factory.mktemp("fleet"), apps=3, runtime=True, shared=[sandbox_repo]
    ) as made:
        laid_out = SandboxFleet(made, sandbox_repo)
        try:
            yield laid_out
        finally:
            made.remove_projects()
            laid_out.remove_images()
