# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Docker check types (Docker SDK): `docker` (compose services running and healthy,
restart counts, CPU/memory from stats against limits, image sizes against budgets) and
`logs` (container logs since a time scanned for patterns, with an allow-list)."""

from __future__ import annotations

import importlib.util
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ansible_collections.stagegate.release.plugins.module_utils._checks_common import (
    PASS,
    Assertions,
    CheckError,
    CheckType,
    Outcome,
    RunContext,
)
from ansible_collections.stagegate.release.plugins.module_utils._state_files import iso_epoch

# The Docker SDK is imported when a docker or logs check runs (it pulls in requests).
HAS_DOCKER = importlib.util.find_spec("docker") is not None


def _sdk() -> Any:
    if not HAS_DOCKER:
        raise CheckError("the docker (Docker SDK for Python) library is required")
    import docker  # noqa: PLC0415
    import docker.errors  # noqa: PLC0415

    return docker


def docker_errors() -> Any:
    """The Docker SDK's exception classes (`docker.errors`)."""
    return _sdk().errors


_PROJECT_LABEL = "com.docker.compose.project"
_SERVICE_LABEL = "com.docker.compose.service"
_SELECT_OPTIONS: dict[str, dict[str, Any]] = {
    "project": {"type": "str", "description": "compose project name"},
    "services": {
        "type": "list",
        "elements": "str",
        "default": [],
        "description": "compose services (default: every service of the project)",
    },
    "containers": {
        "type": "list",
        "elements": "str",
        "default": [],
        "description": "container names or IDs (instead of, or besides, a project)",
    },
}


def client(timeout: float) -> Any:
    docker = _sdk()
    try:
        engine = docker.from_env(timeout=max(1, int(timeout)))
        engine.ping()
    except docker.errors.DockerException as exc:
        raise CheckError(f"Docker engine not reachable: {exc}") from None
    return engine


def select_containers(engine: Any, opts: dict[str, Any]) -> list[Any]:
    if not opts.get("project") and not opts.get("containers"):
        raise CheckError(
            "option 'project' or 'containers' is required: expected a compose "
            "project name or a list of container names"
        )
    found: list[Any] = []
    if opts.get("project"):
        found = engine.containers.list(
            all=True, filters={"label": f"{_PROJECT_LABEL}={opts['project']}"}
        )
        if opts.get("services"):
            found = [c for c in found if c.labels.get(_SERVICE_LABEL) in opts["services"]]
    for name in opts.get("containers") or []:
        try:
            found.append(engine.containers.get(name))
        except _sdk().errors.NotFound:
            raise CheckError(f"container {name!r} does not exist") from None
    return found


def _label(container: Any) -> str:
    return str(container.labels.get(_SERVICE_LABEL) or container.name)


def _cpu_memory(container: Any) -> tuple[float, float, float]:
    """(CPU %, memory MB, memory % of limit) from one stats sample."""
    stats = container.stats(stream=False)
    cpu, pre = stats.get("cpu_stats", {}), stats.get("precpu_stats", {})
    cpu_delta = cpu.get("cpu_usage", {}).get("total_usage", 0) - pre.get("cpu_usage", {}).get(
        "total_usage", 0
    )
    system_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    cpus = cpu.get("online_cpus") or len(cpu.get("cpu_usage", {}).get("percpu_usage") or [1])
    cpu_percent = 100.0 * cpu_delta / system_delta * cpus if system_delta > 0 else 0.0
    memory = stats.get("memory_stats", {})
    used = memory.get("usage", 0) - memory.get("stats", {}).get("cache", 0)
    limit = memory.get("limit") or 0
    return cpu_percent, used / 1024**2, (100.0 * used / limit if limit else 0.0)


def _state(
    containers: list[Any], opts: dict[str, Any], checks: Assertions, outcome: Outcome
) -> None:
    for service in opts.get("services") or []:
        checks.expect(
            any(_label(c) == service for c in containers),
            f"{service} exists",
            f"service {service} has no container",
        )
    for c in containers:
        state = c.attrs.get("State", {})
        health = (state.get("Health") or {}).get("Status")
        restarts = int(c.attrs.get("RestartCount", 0))
        outcome.details.setdefault("containers", {})[_label(c)] = {
            "status": state.get("Status"),
            "health": health,
            "restarts": restarts,
        }
        outcome.metrics[f"{_label(c)}.restarts"] = restarts  # ledger: trend gates count new ones
        if opts["running"]:
            checks.expect(
                state.get("Status") == "running",
                f"{_label(c)} running",
                f"{_label(c)} is {state.get('Status')}, expected running",
            )
        if opts["healthy"] and health is not None:
            checks.expect(
                health == "healthy",
                f"{_label(c)} healthy",
                f"{_label(c)} health is {health}, expected healthy",
            )
        if opts.get("max_restarts") is not None:
            checks.expect(
                restarts <= opts["max_restarts"],
                f"{_label(c)} restarts {restarts}",
                f"{_label(c)} restarted {restarts} times, expected at most {opts['max_restarts']}",
            )


def container_limits(container: Any) -> dict[str, float | None]:
    """The CPU (cores) and memory (MB) limits the engine applies, None when unlimited: Compose's
    `deploy.resources.limits` (`cpus`, `memory`) or `docker run --cpus/--memory`."""
    host = container.attrs.get("HostConfig") or {}
    cpus = (host.get("NanoCpus") or 0) / 1e9
    if not cpus and (host.get("CpuQuota") or 0) > 0:
        cpus = host["CpuQuota"] / (host.get("CpuPeriod") or 100_000)
    memory = host.get("Memory") or 0
    return {"cpus": cpus or None, "memory_mb": memory / 1024**2 if memory else None}


def _limits(
    containers: list[Any], opts: dict[str, Any], checks: Assertions, outcome: Outcome
) -> None:
    """aragora-production rows 42/43: every container has the limits `limits` names."""
    key = {"cpu": "cpus", "memory": "memory_mb"}
    for c in containers:
        limits = container_limits(c)
        outcome.details.setdefault("limits", {})[_label(c)] = limits
        for kind in opts["limits"]:
            checks.expect(
                limits[key[kind]] is not None,
                f"{_label(c)} {kind} limit",
                f"{_label(c)} has no {kind} limit (set deploy.resources.limits."
                f"{'cpus' if kind == 'cpu' else 'memory'} in the compose file)",
            )


def _resources(containers: list[Any], opts: dict[str, Any], outcome: Outcome) -> None:
    running = [c for c in containers if c.attrs.get("State", {}).get("Status") == "running"]
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(running)))) as pool:
        samples = list(pool.map(_cpu_memory, running))
    for c, (cpu, memory_mb, memory_percent) in zip(running, samples):
        outcome.measure(f"{_label(c)}.cpu_percent", cpu, "%", opts.get("cpu_percent"))
        outcome.measure(f"{_label(c)}.memory_mb", memory_mb, "mb", opts.get("memory"))
        outcome.measure(
            f"{_label(c)}.memory_percent", memory_percent, "%", opts.get("memory_percent")
        )


def _image_sizes(engine: Any, opts: dict[str, Any], outcome: Outcome) -> None:
    for ref, budget in (opts.get("image_size") or {}).items():
        try:
            size = engine.images.get(ref).attrs.get("Size", 0)
        except _sdk().errors.NotFound:
            raise CheckError(f"image_size: image {ref!r} does not exist") from None
        outcome.measure(f"{ref}.size_mb", size / 1024**2, "mb", budget)


def validate_docker(opts: dict[str, Any]) -> list[str]:
    unknown = [kind for kind in opts.get("limits") or [] if kind not in ("cpu", "memory")]
    problems = [f"option 'limits' = {unknown}: expected a list of cpu, memory"] if unknown else []
    if opts.get("limits") and not (opts.get("project") or opts.get("containers")):
        problems.append("option 'limits' needs 'project' or 'containers' to select containers")
    return problems


def run_docker(opts: dict[str, Any], ctx: RunContext) -> Outcome:
    engine = client(ctx.timeout)
    try:
        containers = (
            select_containers(engine, opts) if opts.get("project") or opts.get("containers") else []
        )
        checks = Assertions()
        measured = Outcome(PASS)
        if opts.get("project") or opts.get("containers"):
            checks.expect(
                bool(containers), "containers found", "no container matches project/containers"
            )
            _state(containers, opts, checks, measured)
            _limits(containers, opts, checks, measured)
        if opts.get("cpu_percent") or opts.get("memory") or opts.get("memory_percent"):
            _resources(containers, opts, measured)
        _image_sizes(engine, opts, measured)
    except _sdk().errors.DockerException as exc:
        raise CheckError(f"Docker: {exc}") from None
    finally:
        engine.close()
    return checks.outcome(
        f"{len(containers)} containers: " + ", ".join(checks.passed[:8]),
        value=len(containers),
        metrics=measured.metrics,
        details=measured.details,
        measurements=measured.measurements,
    )


DOCKER = CheckType(
    name="docker",
    description="compose services running and healthy, restart counts, CPU/memory from stats "
    "against bands, image sizes against budgets",
    options={
        **_SELECT_OPTIONS,
        "running": {"type": "bool", "default": True},
        "healthy": {
            "type": "bool",
            "default": True,
            "description": "containers that have a healthcheck must be healthy",
        },
        "max_restarts": {"type": "int", "default": 0},
        "cpu_percent": {"type": "bands", "description": "per container, e.g. '<= 80%'"},
        "memory": {"type": "bands", "description": "memory use per container, e.g. '<= 512mb'"},
        "memory_percent": {"type": "bands", "description": "memory use as a share of the limit"},
        "image_size": {"type": "dict", "default": {}, "description": "image -> size band"},
        "limits": {
            "type": "list",
            "elements": "str",
            "default": [],
            "description": "limits every selected container must have (HostConfig NanoCpus or "
            "CpuQuota, Memory: Compose's deploy.resources.limits)",
        },
    },
    run=run_docker,
    validate=validate_docker,
)

_RELATIVE = re.compile(r"^(\d+)\s*([smhd])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def since_epoch(value: Any) -> float:
    """An epoch, an ISO-8601 time, or a duration ago such as '15m'."""
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    match = _RELATIVE.match(text)
    if match:
        return time.time() - int(match[1]) * _SECONDS[match[2]]
    try:
        return iso_epoch(text)
    except ValueError:
        raise CheckError(
            f"option 'since' = {value!r}: expected an epoch, an ISO time (UTC unless it has an "
            "offset) or "
            "a duration such as '15m'"
        ) from None


_FRACTION = re.compile(r"(\.\d{6})\d+")


def started_epoch(container: Any) -> float:
    """When the container last started (State.StartedAt: nanoseconds, trimmed for Python 3.9)."""
    text = str(container.attrs.get("State", {}).get("StartedAt") or "")
    try:
        return iso_epoch(_FRACTION.sub(r"\1", text))
    except ValueError:
        raise CheckError(f"{_label(container)}: no start time (State.StartedAt {text!r})") from None


def _since(container: Any, since: Any) -> int | None:
    """`since` for one container: None (everything), its last start, or a fixed time."""
    if since is None:
        return None
    if str(since).strip() == "started":
        return int(started_epoch(container))
    return int(since_epoch(since))


def _scan(containers: list[Any], opts: dict[str, Any]) -> tuple[list[str], dict[str, list[str]]]:
    """(forbidden lines found, required pattern -> the services whose logs have it)."""
    patterns = [re.compile(p) for p in opts["patterns"]]
    allowed = [re.compile(p) for p in opts.get("allow") or []]
    required = {p: re.compile(p) for p in opts.get("required") or []}
    matches: list[str] = []
    found: dict[str, list[str]] = {p: [] for p in required}
    for c in containers:
        since = _since(c, opts.get("since"))
        text = c.logs(since=since, stdout=True, stderr=True).decode("utf-8", "replace")
        for line in text.splitlines():
            if any(p.search(line) for p in patterns) and not any(a.search(line) for a in allowed):
                matches.append(f"{_label(c)}: {line[:300]}")
        for pattern, regex in required.items():
            if regex.search(text) is not None:
                found[pattern].append(_label(c))
    return matches, found


def _expect_required(
    checks: Assertions, found: dict[str, list[str]], containers: list[Any], each: bool
) -> None:
    labels = [_label(c) for c in containers]
    for pattern, where in found.items():
        missing = [label for label in labels if label not in where]
        if each:
            checks.expect(
                not missing,
                f"{pattern!r} in every container",
                f"required line {pattern!r} not logged by {', '.join(missing)}",
            )
        else:
            checks.expect(
                bool(where),
                f"{pattern!r} logged by {', '.join(where)}",
                f"required line {pattern!r} not logged by any of {', '.join(labels) or 'none'}",
            )


def run_logs(opts: dict[str, Any], ctx: RunContext) -> Outcome:
    engine = client(ctx.timeout)
    try:
        containers = select_containers(engine, opts)
        matches, found = _scan(containers, opts)
    except _sdk().errors.DockerException as exc:
        raise CheckError(f"Docker: {exc}") from None
    finally:
        engine.close()
    checks = Assertions()
    checks.expect(
        len(matches) <= opts["max_matches"],
        "log lines",
        f"{len(matches)} log lines match {', '.join(opts['patterns'])}, "
        f"expected at most {opts['max_matches']}",
    )
    if found:
        checks.expect(bool(containers), "containers found", "no container matches")
        _expect_required(checks, found, containers, opts["required_in"] == "each")
    outcome = checks.outcome(
        f"{len(matches)} matching lines in {len(containers)} containers"
        + (f", {len(found)} required lines logged" if found else ""),
        value=len(matches),
    )
    outcome.metrics["matches"] = len(matches)
    outcome.details["sample"] = matches[: opts["show"]]
    if found:
        outcome.details["required"] = found
    return outcome


LOGS = CheckType(
    name="logs",
    description="container logs since a time (or since each container started) scanned for "
    "forbidden patterns, with an allow-list and a maximum count, and for lines that must be there",
    options={
        **_SELECT_OPTIONS,
        "since": {
            "type": "raw",
            "description": "epoch, ISO time (UTC unless it has an offset), a duration ago like "
            "'15m', or `started`: each container's last start",
        },
        "patterns": {
            "type": "list",
            "elements": "regex",
            "default": [r"\bERROR\b", r"\bCRITICAL\b"],
            "description": "forbidden lines (regexes); `[]` scans for none",
        },
        "allow": {
            "type": "list",
            "elements": "regex",
            "default": [],
            "description": "regexes of matching lines that are fine",
        },
        "max_matches": {"type": "int", "default": 0},
        "required": {
            "type": "list",
            "elements": "regex",
            "default": [],
            "description": "regexes of lines that must be logged, e.g. 'startup complete'",
        },
        "required_in": {
            "type": "str",
            "default": "any",
            "choices": ["any", "each"],
            "description": "a required line in the logs of any selected container, or of each",
        },
        "show": {"type": "int", "default": 5, "description": "matching lines kept in details"},
    },
    run=run_logs,
)
