# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compose v2 CLI: argv, runs that carry cmd/rc/stdout/stderr, and its JSON output parsed.

There is no Python API for Compose, so build/up/stop go through `docker compose`; container
state, health and logs go through the Docker SDK (`_docker.py`). Standard library only.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import socket
import subprocess
import time
import urllib.error
from dataclasses import dataclass, field
from datetime import datetime, timezone
from difflib import get_close_matches
from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.stagegate.release.plugins.module_utils._checks_redact import (
    is_secret_name,
)
from ansible_collections.stagegate.release.plugins.module_utils._docker import (
    DOCKER_SDK_IMPORT_ERROR,
    HAS_DOCKER_SDK,
    ContainerState,
    last_log_lines,
    service_containers,
)
from ansible_collections.stagegate.release.plugins.module_utils._paths import RELEASE_MARKER
from ansible_collections.stagegate.release.plugins.module_utils._source import local_commit

# Compose warns about this on every build on machines without buildx and then builds with the
# engine's own builder: it is noise, never an error.
_HARMLESS_STDERR = re.compile(r"buildx isn't installed|Bake, but buildx")

# A progress line of `docker compose up/stop/...` (also with --dry-run):
#  " DRY-RUN MODE -  Container proj-web-1  Recreate" / " Network proj_default  Created"
_PROGRESS_RE = re.compile(
    r"^\s*(?:DRY-RUN MODE -\s+)?(?P<kind>Container|Network|Volume|Image)\s+(?P<name>\S+)\s+"
    r"(?P<verb>[A-Za-z]+)\s*$"
)
# Verbs that report an existing, untouched object.
_NO_CHANGE_VERBS = frozenset({"Running", "Healthy", "Waiting", "Exists", "Stopped"})

COMPOSE_ARGSPEC: dict[str, Any] = {
    "project_src": {"type": "path", "required": True},
    "project_name": {"type": "str", "required": True},
    "files": {"type": "list", "elements": "str", "default": ["compose.yaml"]},
    "env": {"type": "dict", "default": {}},
    "docker_cli": {"type": "path", "default": "docker"},
}


def compose_module(
    argument_spec: dict[str, Any], needs_docker_sdk: bool = True, **module_kwargs: Any
) -> AnsibleModule:
    """An AnsibleModule with the shared compose options (check mode supported).

    `env` mixes plain settings (release, ports) with secrets (database passwords): values of
    secret-looking names are masked wherever they would appear in the result (logs
    included), without masking the plain values as `no_log` on the whole option would.
    """
    module = AnsibleModule(
        argument_spec={**COMPOSE_ARGSPEC, **argument_spec},
        supports_check_mode=True,
        **module_kwargs,  # required_together, ... of the module's own options
    )
    for name, value in (module.params["env"] or {}).items():
        if is_secret_name(str(name)) and value not in (None, ""):
            module.no_log_values.add(str(value))
    if needs_docker_sdk and not HAS_DOCKER_SDK:
        module.fail_json(msg=missing_required_lib("docker"), exception=DOCKER_SDK_IMPORT_ERROR)
    return module


class ComposeError(Exception):
    """A failed `docker compose` run (or a project that cannot be used), with the evidence."""

    def __init__(
        self,
        msg: str,
        cmd: list[str] | None = None,
        rc: int | None = None,
        stdout: str = "",
        stderr: str = "",
    ) -> None:
        super().__init__(msg)
        self.msg = msg
        self.cmd = cmd or []
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr

    def fail_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `module.fail_json`."""
        return {
            "msg": self.msg,
            "cmd": self.cmd,
            "rc": self.rc,
            "stdout": self.stdout,
            "stderr": self.stderr,
        }


@dataclass
class CommandResult:
    cmd: list[str]
    rc: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def warnings(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if _HARMLESS_STDERR.search(line)]


@dataclass(frozen=True)
class ProgressEvent:
    """One object line of Compose's progress output: what it did, or would do (dry run)."""

    kind: str
    name: str
    verb: str

    @property
    def changes(self) -> bool:
        return self.verb not in _NO_CHANGE_VERBS

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "verb": self.verb}


def parse_progress(text: str) -> list[ProgressEvent]:
    """Object lines of Compose's progress output, last verb per object, in first-seen order."""
    last: dict[tuple[str, str], str] = {}
    for line in text.splitlines():
        match = _PROGRESS_RE.match(line)
        if match:
            last[(match["kind"], match["name"])] = match["verb"]
    return [ProgressEvent(kind, name, verb) for (kind, name), verb in last.items()]


STOP_APP_TIER = ("auto", "always", "never")


def app_tier_stop(
    mode: str, changed_services: list[str], app_services: list[str], pending_migrations: list[Any]
) -> dict[str, Any]:
    """Whether a deploy stops the app tier before it migrates, and why (`stop`, `reason`):
    `always`, `never`, or `auto`, which stops it when one of its containers would change
    (`changed_services`, from `compose_up_tiers` in check mode) or a migration is pending."""
    if mode not in STOP_APP_TIER:
        raise ValueError(
            f"stagegate_deploy_stop_app_tier: got {mode!r}, "
            f"expected one of {', '.join(STOP_APP_TIER)}"
        )
    if mode != "auto":
        return {"stop": mode == "always", "reason": f"stagegate_deploy_stop_app_tier is {mode}"}
    changing = [s for s in changed_services if s in app_services]
    if changing:
        return {"stop": True, "reason": f"{', '.join(changing)} would change"}
    if pending_migrations:
        return {"stop": True, "reason": f"{len(pending_migrations)} migration(s) pending"}
    return {"stop": False, "reason": "no app container would change and no migration is pending"}


def tiers_to_start(
    status: dict[str, Any], tiers: list[list[str]], readiness: dict[str, Any]
) -> list[list[str]]:
    """The tiers of `tiers` that a start must still bring up, given `compose_up_tiers`' check-mode
    result `status`: those with a service Compose's dry run would change, one that is not
    running with a healthcheck that reports healthy, or one with a readiness probe (only the
    start runs probes). `up --wait` of the others would only confirm that they run."""
    changed = set(status.get("changed_services") or [])
    states = status.get("services") or {}

    def settled(service: str) -> bool:
        state = states.get(service) or {}
        return (
            service not in changed
            and service not in readiness
            and state.get("status") == "running"
            and state.get("health") == "healthy"
        )

    return [list(tier) for tier in tiers if not all(settled(s) for s in tier)]


def split_image_ref(ref: str) -> tuple[str, str]:
    """`registry:5000/app/api:v2` -> (`registry:5000/app/api`, `v2`); no tag -> `latest`."""
    name, _, tail = ref.rpartition("/")
    if ":" in tail:
        repo_tail, tag = tail.rsplit(":", 1)
        return (f"{name}/{repo_tail}" if name else repo_tail), tag
    return ref, "latest"


def compose_dir(project_dir: str, files: list[str]) -> str:
    """The directory of the first compose file (`files` relative to `project_dir`): Compose's
    project directory when it is given files, so `.env` and relative paths resolve as they do
    for `docker compose -f <file>` run by hand."""
    first = files[0] if files else "compose.yaml"
    return os.path.normpath(os.path.dirname(os.path.join(project_dir, first)))


@dataclass
class ComposeProject:
    """One compose project as the CLI sees it: directory, name, files and environment."""

    project_dir: str
    name: str
    files: list[str] = field(default_factory=lambda: ["compose.yaml"])
    env: dict[str, str] = field(default_factory=dict)
    docker_cli: str = "docker"
    _config: dict[str, Any] | None = field(default=None, repr=False)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> ComposeProject:
        """Build from a module's parameters (the COMPOSE_ARGSPEC options)."""
        return cls(
            project_dir=params["project_src"],
            name=params["project_name"],
            files=list(params["files"]),
            env={str(k): str(v) for k, v in (params["env"] or {}).items()},
            docker_cli=params["docker_cli"],
        )

    @property
    def file_paths(self) -> list[str]:
        return [os.path.join(self.project_dir, f) for f in self.files]

    @property
    def compose_dir(self) -> str:
        """Compose's own project directory: that of the first file (`deploy/` for
        `deploy/compose.yaml`), where `docker compose -f deploy/compose.yaml` by hand reads
        `.env` and resolves relative build contexts and paths."""
        return compose_dir(self.project_dir, self.files)

    def argv(
        self, *args: str, extra_files: tuple[str, ...] = (), dry_run: bool = False
    ) -> list[str]:
        cmd = [self.docker_cli, "compose", "--project-directory", self.compose_dir]
        cmd += ["--project-name", self.name, "--progress", "plain"]
        for path in [*self.file_paths, *extra_files]:
            cmd += ["--file", path]
        if dry_run:
            cmd.append("--dry-run")
        return [*cmd, *args]

    def run(
        self,
        *args: str,
        extra_files: tuple[str, ...] = (),
        dry_run: bool = False,
        check: bool = True,
        timeout: float | None = None,
    ) -> CommandResult:
        """Run `docker compose ...`; with `check`, a non-zero rc raises ComposeError."""
        cmd = self.argv(*args, extra_files=extra_files, dry_run=dry_run)
        started = time.monotonic()
        try:
            proc = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                env={**os.environ, **self.env},
                timeout=timeout,
                check=False,
            )
        except FileNotFoundError as exc:
            raise ComposeError(
                f"docker_cli={self.docker_cli!r} not found: expected the docker client with the "
                "Compose v2 plugin (`docker compose version`)",
                cmd=cmd,
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise ComposeError(
                f"`{' '.join(args[:1])}` did not finish within {timeout} s",
                cmd=cmd,
                stdout=_text(exc.stdout),
                stderr=_text(exc.stderr),
            ) from exc
        result = CommandResult(cmd, proc.returncode, proc.stdout, proc.stderr, 0.0)
        result.seconds = round(time.monotonic() - started, 3)
        if check and proc.returncode != 0:
            raise ComposeError(
                f"docker compose {args[0] if args else ''} failed (rc={proc.returncode}): "
                f"{_last_error_line(proc.stderr)}",
                cmd=cmd,
                rc=proc.returncode,
                stdout=proc.stdout,
                stderr=proc.stderr,
            )
        return result

    def config(self) -> dict[str, Any]:
        """The resolved project (`docker compose config --format json`), cached."""
        if self._config is None:
            missing = [p for p in self.file_paths if not os.path.isfile(p)]
            if missing:
                raise ComposeError(
                    f"files={self.files!r}: {', '.join(missing)} not found "
                    f"(files are relative to project_src={self.project_dir!r})"
                )
            result = self.run("config", "--format", "json")
            try:
                self._config = json.loads(result.stdout)
            except ValueError as exc:
                raise ComposeError(
                    "docker compose config printed no JSON",
                    cmd=result.cmd,
                    rc=result.rc,
                    stdout=result.stdout,
                    stderr=result.stderr,
                ) from exc
        return self._config

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        return dict(self.config().get("services") or {})

    def require_services(self, names: list[str], option: str, whose: str = "") -> None:
        """Fail naming `option` (the setting the names come from), each unknown name with the
        nearest defined one, and every service the project (`whose`, e.g. "of release v2")
        defines."""
        self.require_services_of({option: names}, whose)

    def require_services_of(self, named_by: dict[str, list[str]], whose: str = "") -> None:
        """`require_services` for several settings at once: one error naming every setting
        with an unknown service."""
        defined = sorted(self.services)
        problems = []
        for option, names in named_by.items():
            unknown = [n for n in names if n not in self.services]
            if unknown:
                named = ", ".join(
                    name
                    + "".join(f" (did you mean {m}?)" for m in get_close_matches(name, defined, 1))
                    for name in unknown
                )
                problems.append(f"{option}: unknown service(s) {named}")
        if problems:
            raise ComposeError(
                f"{'; '.join(problems)}; the project {self.name!r}"
                f"{' ' + whose if whose else ''} defines {', '.join(defined)}"
            )

    def image_ref(self, service: str) -> str:
        """The image a service runs: its `image:`, or Compose's default `<project>-<service>`."""
        spec = self.services[service]
        return str(spec.get("image") or f"{self.config().get('name', self.name)}-{service}")

    def service_of_container(self, container: str) -> str | None:
        """The service a container name belongs to (`container_name:` or `<project>-<svc>-<n>`)."""
        for service, spec in self.services.items():
            pattern = rf"{re.escape(self.name)}[-_]{re.escape(service)}[-_]\d+"
            if spec.get("container_name") == container or re.fullmatch(pattern, container):
                return service
        return None

    def files_sha256(self) -> str:
        """sha256 over the compose files' names and contents, in the order given."""
        digest = hashlib.sha256()
        for name, path in zip(self.files, self.file_paths):
            digest.update(name.encode() + b"\0")
            with open(path, "rb") as fh:
                digest.update(fh.read())
            digest.update(b"\0")
        return digest.hexdigest()

    def config_sha256(self) -> str:
        """sha256 of the resolved configuration (files after interpolation of the environment)."""
        canonical = json.dumps(self.config(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def _last_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln and not _HARMLESS_STDERR.search(ln)]
    return lines[-1] if lines else "no error output"


# --- build inputs: what check mode compares to tell whether a build would change an image ---

BUILD_INPUTS_LABEL = "io.stagegate.build-inputs"
_FROM_RE = re.compile(r"^\s*FROM\s+(?:--\S+\s+)*(?P<ref>\S+)(?:\s+AS\s+(?P<stage>\S+))?", re.I)
_ARG_RE = re.compile(r"^\s*ARG\s+(?P<name>[A-Za-z_]\w*)(?:=(?P<default>\S*))?", re.I)
_VAR_RE = re.compile(r"\$\{(?P<braced>\w+)(?::?-(?P<default>[^}]*))?\}|\$(?P<bare>\w+)")


def build_inputs_sha256(
    build: dict[str, Any],
    build_args: dict[str, str],
    image_id_of: Any,
) -> str | None:
    """sha256 over everything a build reads: context files (minus .dockerignore), Dockerfile,
    build args, target and the local IDs of its base images. None for remote contexts."""
    context = str(build.get("context", "."))
    if "://" in context or context.startswith("git@") or not os.path.isdir(context):
        return None
    args = {**{k: str(v) for k, v in (build.get("args") or {}).items()}, **build_args}
    dockerfile_text = build.get("dockerfile_inline")
    if dockerfile_text is None:
        path = os.path.join(context, str(build.get("dockerfile") or "Dockerfile"))
        with open(path, encoding="utf-8", errors="replace") as fh:
            dockerfile_text = fh.read()
    # Docker ignores build args the Dockerfile does not declare; so does the hash.
    declared = {m["name"] for m in map(_ARG_RE.match, str(dockerfile_text).splitlines()) if m}
    used_args = {k: v for k, v in args.items() if k in declared}
    digest = hashlib.sha256()
    digest.update(
        json.dumps([dockerfile_text, used_args, build.get("target")], sort_keys=True).encode()
    )
    for ref in base_images(str(dockerfile_text), args):
        digest.update(f"FROM {ref} {image_id_of(ref)}\0".encode())
    commit = checkout_commit(context)
    if commit:
        digest.update(f".git HEAD {commit}\0".encode())
    for rel in context_files(context):
        full = os.path.join(context, rel)
        digest.update(f"{rel}\0{os.lstat(full).st_mode:o}\0".encode())
        if os.path.islink(full):
            digest.update(os.readlink(full).encode())
        else:
            with open(full, "rb") as fh:
                digest.update(hashlib.sha256(fh.read()).digest())
    return digest.hexdigest()


def base_images(dockerfile: str, args: dict[str, str]) -> list[str]:
    """Image references of the FROM lines (ARG defaults and build args substituted)."""
    values: dict[str, str] = {}
    stages: set[str] = set()
    refs: list[str] = []
    seen_from = False
    for line in dockerfile.splitlines():
        arg = _ARG_RE.match(line)
        if arg and not seen_from:
            values[arg["name"]] = args.get(arg["name"], arg["default"] or "")
            continue
        match = _FROM_RE.match(line)
        if not match:
            continue
        seen_from = True
        ref = _VAR_RE.sub(lambda m: _substitute(m, values), match["ref"])
        if ref.lower() != "scratch" and ref not in stages:
            refs.append(ref)
        if match["stage"]:
            stages.add(match["stage"])
    return refs


def _substitute(match: re.Match[str], values: dict[str, str]) -> str:
    name = match["braced"] or match["bare"]
    return values.get(name) or match["default"] or ""


# Files in a build context that stagegate's checkout changes on every run, whatever the release:
# git's own files (its index, logs, the ref checked out: the commit stands for them) and the
# release marker stagegate writes. Hashed, every promotion and every re-run of the same release
# rebuilt the images of a context at the repository root (`build: ..`) and restarted their
# services, the database's among them (a new user's trial).
_CHECKOUT_ENTRIES = frozenset({".git", RELEASE_MARKER})


def context_files(context: str) -> list[str]:
    """Relative paths of the files a build context sends, after .dockerignore, sorted; without
    the checkout's own entries at its root (`_CHECKOUT_ENTRIES`)."""
    patterns = _dockerignore(context)
    found: list[str] = []
    for root, dirs, files in os.walk(context):
        rel_root = os.path.relpath(root, context)
        dirs[:] = sorted(
            d
            for d in dirs
            if not _ignored(_join(rel_root, d), patterns, True)
            and not (rel_root == "." and d in _CHECKOUT_ENTRIES)
        )
        found.extend(
            _join(rel_root, f)
            for f in files
            if not _ignored(_join(rel_root, f), patterns, False)
            and not (rel_root == "." and f in _CHECKOUT_ENTRIES)
        )
    return sorted(found)


def checkout_commit(context: str) -> str | None:
    """The commit checked out when the context's root is a git checkout that its .dockerignore
    does not leave out: what its `.git` stands for in the build inputs."""
    if not os.path.isdir(os.path.join(context, ".git")):
        return None
    if _ignored(".git", _dockerignore(context), True):
        return None
    return local_commit(context, "HEAD")


def _join(rel_root: str, name: str) -> str:
    return name if rel_root == "." else f"{rel_root}/{name}"


def _dockerignore(context: str) -> list[tuple[bool, str]]:
    path = os.path.join(context, ".dockerignore")
    if not os.path.isfile(path):
        return []
    patterns = []
    with open(path, encoding="utf-8") as fh:
        for raw in fh:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negated = line.startswith("!")
            patterns.append((negated, os.path.normpath(line.lstrip("!").strip()).lstrip("/")))
    return patterns


def _ignored(rel: str, patterns: list[tuple[bool, str]], is_dir: bool) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes. A directory that has an
    exception below it is walked so the exception can apply."""
    ignored = False
    for negated, pattern in patterns:
        if fnmatch.fnmatchcase(rel, pattern) or fnmatch.fnmatchcase(rel, pattern + "/*"):
            ignored = not negated
    if ignored and is_dir and any(neg and p.startswith(rel + "/") for neg, p in patterns):
        return False
    return ignored


# --- tiered startup: start a tier, wait for health, detect crash loops, then the next tier ---

_UP_ARGS = ("up", "--detach", "--no-deps", "--no-build", "--pull", "never")
_RECREATE_ARGS = {"auto": (), "always": ("--force-recreate",), "never": ("--no-recreate",)}


@dataclass
class Tier:
    services: list[str]
    timeout: float


@dataclass
class Readiness:
    """An extra readiness probe for a service: an HTTP URL (expected status) or a TCP port."""

    http: str | None = None
    status: tuple[int, ...] = (200,)
    tcp: tuple[str, int] | None = None

    def probe(self) -> str | None:
        """None when ready, else what failed."""
        if self.http:
            # Imported here, not at the top: it loads cryptography, which every module run that
            # imports this file would pay for, and only a readiness probe by HTTP needs it.
            from ansible.module_utils.urls import open_url  # noqa: PLC0415

            try:
                # Readiness only: certificates are the validate phase's TLS check.
                with open_url(self.http, timeout=1, validate_certs=False) as resp:
                    code = resp.status
            except urllib.error.HTTPError as exc:
                code = exc.code
            except Exception as exc:  # refused, reset, timeout, TLS: all mean not ready yet
                return f"GET {self.http}: {exc}"
            if code not in self.status:
                return f"GET {self.http}: status {code}, expected {list(self.status)}"
        if self.tcp:
            try:
                socket.create_connection(self.tcp, timeout=1).close()
            except OSError as exc:
                return f"TCP {self.tcp[0]}:{self.tcp[1]}: {exc}"
        return None


def parse_readiness(raw: dict[str, Any], option: str = "readiness") -> dict[str, Readiness]:
    """`{service: {http: URL, status: 200} | {tcp: "host:port"}}` as probes; ValueError names
    `option`, the service and the value."""
    probes = {}
    for service, spec in raw.items():
        tcp = None
        if not isinstance(spec, dict) or not (spec.get("http") or spec.get("tcp")):
            raise ValueError(
                f"{option}.{service}={spec!r}: expected {{http: URL, status: 200}} "
                "or {tcp: 'host:port'}"
            )
        if spec.get("tcp"):
            host, _, port = str(spec["tcp"]).rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"{option}.{service}.tcp={spec['tcp']!r}: expected 'host:port'")
            tcp = (host, int(port))
        status = spec.get("status", 200)
        statuses = tuple(int(s) for s in (status if isinstance(status, list) else [status]))
        probes[service] = Readiness(http=spec.get("http"), status=statuses, tcp=tcp)
    return probes


@dataclass
class ServiceFailure:
    """Why a service did not become ready, with the evidence an operator needs."""

    service: str
    reason: str
    container: dict[str, Any] | None = None
    logs: list[str] = field(default_factory=list)
    health_output: list[str] = field(default_factory=list)
    probe: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "reason": self.reason,
            "container": self.container,
            "logs": self.logs,
            "health_output": self.health_output,
            "probe": self.probe,
        }


class TieredStartup:
    """Starts tier after tier and waits on the engine's state (never a fixed sleep).

    A service is ready when its healthcheck says healthy, its readiness probe answers, or
    (with neither) it has kept running for `stable_seconds`. It fails at once when a
    container exits, restarts (restart count above what it was before this run), or turns
    unhealthy (or has stayed unhealthy `unhealthy_grace` seconds: Docker keeps checking and an
    overloaded host may flap); the tier fails when its timeout passes first.
    """

    def __init__(
        self,
        project: ComposeProject,
        client: Any,
        *,
        readiness: dict[str, Readiness] | None = None,
        stable_seconds: float = 1.0,
        unhealthy_grace: float = 0.0,
        recreate: str = "auto",
        log_lines: int = 40,
        poll_interval: float = 0.25,
    ) -> None:
        self.project = project
        self.client = client
        self.readiness = readiness or {}
        self.stable_seconds = stable_seconds
        self.unhealthy_grace = unhealthy_grace
        self._unhealthy_since: dict[str, float] = {}
        self.recreate_args = _RECREATE_ARGS[recreate]
        self.log_lines = log_lines
        self.poll_interval = poll_interval
        self.commands: list[list[str]] = []
        self._started_at = time.time()

    def plan(self, tier: Tier) -> list[ProgressEvent]:
        """What `up` would do for the tier (Compose's own dry run). One dry run per tier: a
        single one for every tier made bench/staging_bench.py slower, not faster."""
        result = self.project.run(*_UP_ARGS, *self.recreate_args, *tier.services, dry_run=True)
        return parse_progress(result.stderr + result.stdout)

    def start(self, tier: Tier) -> tuple[list[ProgressEvent], ServiceFailure | None, float]:
        """Start one tier and wait for it: (what up did, the first failure or None, seconds)."""
        started = time.monotonic()
        self._started_at = time.time()
        restarts_before = self._restart_counts()
        result = self.project.run(*_UP_ARGS, *self.recreate_args, *tier.services)
        self.commands.append(result.cmd)
        failure = self._wait(tier, restarts_before, started + tier.timeout)
        return parse_progress(result.stderr + result.stdout), failure, time.monotonic() - started

    def states(self, services: list[str]) -> dict[str, list[ContainerState]]:
        found: dict[str, list[ContainerState]] = {name: [] for name in services}
        for container in service_containers(self.client, self.project.name, services):
            state = ContainerState.of(container)
            found.setdefault(state.service, []).append(state)
        return found

    def _restart_counts(self) -> dict[str, int]:
        return {
            c.id: int(c.attrs.get("RestartCount") or 0)
            for c in service_containers(self.client, self.project.name)
        }

    def _wait(
        self, tier: Tier, restarts_before: dict[str, int], deadline: float
    ) -> ServiceFailure | None:
        while True:
            waiting: dict[str, str] = {}
            for service, states in self.states(tier.services).items():
                failure, pending = self._assess(service, states, restarts_before)
                if failure:
                    return failure
                if pending:
                    waiting[service] = pending
            if not waiting:
                return None
            if time.monotonic() >= deadline:
                service, pending = next(iter(waiting.items()))
                return self._failure(
                    service,
                    f"not ready within the tier timeout of {tier.timeout:g} s ({pending})",
                    probe=pending if service in self.readiness else None,
                )
            time.sleep(self.poll_interval)

    def _assess(
        self, service: str, states: list[ContainerState], restarts_before: dict[str, int]
    ) -> tuple[ServiceFailure | None, str | None]:
        """(failure, None), (None, what it waits for) or (None, None) when ready."""
        if not states:
            return self._failure(service, "no container was created"), None
        for state in states:
            before = restarts_before.get(state.id, 0)
            # only a container that crashed during this start and runs again needs its events
            restarted = state.status == "running" and state.restart_count > before
            last_exit = self._last_exit_code(state) if restarted else None
            reason = _broken(state, before, last_exit) or self._unhealthy(state)
            if reason:
                return self._failure(service, reason, state), None
        return None, self._pending(service, states)

    def _last_exit_code(self, state: ContainerState) -> int | None:
        """The exit code of the container's last crash since this start (its `die` events):
        a restarted container that runs again reports ExitCode 0. None when it did not die."""
        events = self.client.events(
            since=int(self._started_at) - 1,
            until=int(time.time()) + 1,
            filters={"container": state.id, "event": "die"},
            decode=True,
        )
        codes = [
            str((e.get("Actor") or {}).get("Attributes", {}).get("exitCode", "")) for e in events
        ]
        known = [int(code) for code in codes if code.lstrip("-").isdigit()]
        return known[-1] if known else None

    def _unhealthy(self, state: ContainerState) -> str | None:
        if state.health != "unhealthy":
            self._unhealthy_since.pop(state.id, None)
            return None
        since = self._unhealthy_since.setdefault(state.id, time.monotonic())
        if time.monotonic() - since < self.unhealthy_grace:
            return None
        grace = f" for {self.unhealthy_grace:g} s" if self.unhealthy_grace else ""
        return f"healthcheck reports unhealthy{grace}"

    def _pending(self, service: str, states: list[ContainerState]) -> str | None:
        for state in states:
            if state.status != "running":
                return f"status: {state.status}"
            if state.health not in (None, "healthy"):
                return f"health: {state.health}"
        if service in self.readiness:
            return self.readiness[service].probe()
        if all(s.health is None for s in states) and not self._stable(states):
            return f"running for less than {self.stable_seconds:g} s"
        return None

    def _stable(self, states: list[ContainerState]) -> bool:
        now = datetime.now(timezone.utc)
        return all(
            s.started_at is not None and (now - s.started_at).total_seconds() >= self.stable_seconds
            for s in states
        )

    def _failure(
        self,
        service: str,
        reason: str,
        state: ContainerState | None = None,
        probe: str | None = None,
    ) -> ServiceFailure:
        if state is None:
            states = self.states([service]).get(service) or []
            state = states[0] if states else None
        if state is None:
            return ServiceFailure(service, reason, probe=probe)
        container = self.client.containers.get(state.id)
        return ServiceFailure(
            service=service,
            reason=reason,
            container=state.summary(),
            logs=last_log_lines(container, self.log_lines),
            health_output=state.health_output,
            probe=probe,
        )


def _broken(
    state: ContainerState, restarts_before: int, last_exit: int | None = None
) -> str | None:
    """Why a container can no longer become ready, or None. `last_exit`: the code of its last
    crash from the engine's events, for a restarted container that runs again (its ExitCode
    is then 0)."""
    if state.status in ("exited", "dead"):
        return f"exited with code {state.exit_code}"
    if state.status == "restarting" or state.restart_count > restarts_before:
        if state.status != "running":
            last = f"last exit code {state.exit_code}"
        elif last_exit is not None:
            last = f"last exit code {last_exit}, running again"
        else:
            last = "running again, its exit code unknown"
        return f"crash loop: restarted {state.restart_count} time(s), {last}"
    return None
