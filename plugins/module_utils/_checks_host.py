# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host check types: `env` (variables present, well-formed or absent, values never shown),
`disk` and `memory` (free space graded against bands), `command` (exit code, JMESPath on
JSON stdout). Standard library only (jmespath when JSON assertions are used)."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

from ansible_collections.stagegate.release.plugins.module_utils._bands import Band, BandError
from ansible_collections.stagegate.release.plugins.module_utils._checks_common import (
    PASS,
    Assertions,
    CheckError,
    CheckType,
    Outcome,
    RunContext,
)
from ansible_collections.stagegate.release.plugins.module_utils._checks_docker import (
    client,
    docker_errors,
)
from ansible_collections.stagegate.release.plugins.module_utils._checks_http import search


def read_env_file(path: str) -> dict[str, str]:
    """KEY=VALUE lines of a .env file (comments, `export `, quotes handled)."""
    values: dict[str, str] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CheckError(f"env file {path}: cannot read: {exc.strerror or exc}") from None
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def container_env(name: str, timeout: float) -> dict[str, str]:
    """A container's environment (Config.Env of `docker inspect`), by the Docker SDK."""
    engine = client(timeout)
    try:
        env = engine.containers.get(name).attrs.get("Config", {}).get("Env") or []
    except docker_errors().NotFound:
        raise CheckError(f"option 'container' = {name!r}: no such container") from None
    except docker_errors().DockerException as exc:
        raise CheckError(f"Docker: {exc}") from None
    finally:
        engine.close()
    return dict(item.partition("=")[::2] for item in env)


def env_sources(opts: dict[str, Any], ctx: RunContext) -> dict[str, dict[str, str]]:
    """{where: variables}: the .env file and/or the container, else the process environment."""
    sources: dict[str, dict[str, str]] = {}
    if opts.get("path"):
        sources[opts["path"]] = read_env_file(opts["path"])
    if opts.get("container"):
        sources[f"container {opts['container']}"] = container_env(opts["container"], ctx.timeout)
    return sources or {"process environment": dict(os.environ)}


def _expect_env(checks: Assertions, opts: dict[str, Any], source: dict[str, str], at: str) -> None:
    for name in opts.get("required") or []:
        checks.expect(bool(source.get(name)), f"{name} set", f"{name} is missing or empty{at}")
    for name, minimum in (opts.get("min_length") or {}).items():
        length = len(source.get(name, ""))
        checks.expect(
            length >= int(minimum),
            f"{name} long enough",
            f"{name} has {length} characters{at}, expected at least {minimum}",
        )
    for name, forbidden in (opts.get("must_not_contain") or {}).items():
        for needle in forbidden if isinstance(forbidden, list) else [forbidden]:
            checks.expect(
                needle not in source.get(name, ""),
                f"{name} excludes {needle}",
                f"{name} contains {needle!r}{at}, which is not allowed",
            )
    for name, pattern in (opts.get("pattern") or {}).items():
        checks.expect(
            re.fullmatch(str(pattern), source.get(name, "")) is not None,
            f"{name} well-formed",
            f"{name} does not match {pattern!r}{at}",
        )
    for name, spec in (opts.get("numeric") or {}).items():
        bands = numeric_bands(spec)
        shown = ", ".join(str(b) for b in bands)
        try:
            number = float(source.get(name, ""))
        except ValueError:
            checks.expect(False, "", f"{name} is missing or not a number{at}, expected {shown}")
            continue
        checks.expect(
            all(b.holds(number) for b in bands),
            f"{name} within {shown}",
            f"{name} is outside {shown}{at}",
        )
    for pattern in opts.get("absent") or []:
        present = sorted(n for n in source if fnmatch.fnmatchcase(n, pattern))
        checks.expect(
            not present,
            f"{pattern} absent",
            f"{', '.join(present)} set{at}, expected absent ({pattern})",
        )


def numeric_bands(spec: Any) -> list[Band]:
    """A `numeric` entry: one band (`"<= 168"`) or a list that must all hold (a range)."""
    return [Band.parse(item, "number") for item in (spec if isinstance(spec, list) else [spec])]


def validate_env(opts: dict[str, Any]) -> list[str]:
    problems = []
    for name, spec in (opts.get("numeric") or {}).items():
        try:
            bands = numeric_bands(spec)
        except BandError as exc:
            problems.append(f"option 'numeric' {name}: {exc}")
            continue
        if not bands:
            problems.append(f"option 'numeric' {name}: expected a band or a list of bands")
    return problems


def run_env(opts: dict[str, Any], ctx: RunContext) -> Outcome:
    sources = env_sources(opts, ctx)
    named = set(opts.get("required") or [])
    for key in ("min_length", "must_not_contain", "pattern", "numeric"):
        named |= set(opts.get(key) or {})
    for source in sources.values():
        for name, value in source.items():
            # Messages name variables only; values stay masked anyway (absent ones included).
            if name in named or any(fnmatch.fnmatchcase(name, p) for p in opts["absent"]):
                ctx.redactor.add(value)
    checks = Assertions()
    for where, source in sources.items():
        _expect_env(checks, opts, source, f" in {where}" if len(sources) > 1 else "")
    where = " and ".join(sources)
    outcome = checks.outcome(
        f"{len(checks.passed)} expectations hold in {where}", value=len(checks.failures)
    )
    outcome.details["source"] = where
    return outcome


ENV = CheckType(
    name="env",
    description="environment variables (process, a .env file, or a container's) present, "
    "well-formed or absent; values are never shown",
    options={
        "path": {"type": "str", "description": "a .env file; default: the process environment"},
        "container": {
            "type": "str",
            "description": "a container name or ID: its environment (`docker inspect`); with "
            "`path`, every expectation holds in both",
        },
        "required": {"type": "list", "elements": "str", "default": []},
        "min_length": {"type": "dict", "default": {}, "description": "name -> minimum length"},
        "must_not_contain": {
            "type": "dict",
            "default": {},
            "description": "name -> substring or list that must not appear",
        },
        "pattern": {"type": "dict", "default": {}, "description": "name -> regex to fullmatch"},
        "numeric": {
            "type": "dict",
            "default": {},
            "description": "name -> a band the value must be a number within (`'<= 168'`), or "
            "a list of bands that must all hold (a range: `['>= 1', '<= 168']`); band grammar "
            "of docs/checks.md, unitless",
        },
        "absent": {
            "type": "list",
            "elements": "str",
            "default": [],
            "description": "names that must not be set, shell-style wildcards allowed "
            "(`*_API_KEY`); only names are shown",
        },
    },
    run=run_env,
    validate=validate_env,
)


def existing_ancestor(path: str) -> str:
    """`path` itself when it exists, else its nearest existing parent directory."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    return probe


def run_disk(opts: dict[str, Any], ctx: RunContext) -> Outcome:
    # A directory not made yet (the state dir before the first run) will live on its nearest
    # existing parent's filesystem: that is the free space that counts.
    measured = existing_ancestor(opts["path"])
    try:
        usage = shutil.disk_usage(measured)
    except OSError as exc:
        raise CheckError(f"disk {opts['path']}: {exc.strerror or exc}") from None
    share = 100.0 * usage.free / usage.total if usage.total else 0.0
    where = (
        opts["path"]
        if measured == os.path.abspath(opts["path"])
        else f"{opts['path']} (not made yet: measured on {measured})"
    )
    outcome = Outcome(
        PASS,
        f"{where}: {usage.free / 1024**3:.1f} GiB free ({share:.0f}%)",
        value=usage.free,
    )
    outcome.measure("free_mb", usage.free / 1024**2, "mb", opts.get("free"))
    outcome.measure("free_percent", share, "%", opts.get("free_percent"))
    return outcome


DISK = CheckType(
    name="disk",
    description=(
        "free space on the filesystem holding a path (a path not made yet: its nearest existing "
        "parent's), graded against bands"
    ),
    options={
        "path": {"type": "str", "default": "/"},
        "free": {"type": "bands", "description": "e.g. {pass: '>= 5gb', warn: '>= 1gb'}"},
        "free_percent": {"type": "bands", "description": "e.g. '>= 10%'"},
    },
    run=run_disk,
)


def meminfo(path: str = "/proc/meminfo") -> dict[str, int]:
    """/proc/meminfo in bytes."""
    values: dict[str, int] = {}
    try:
        for line in Path(path).read_text().splitlines():
            key, _, rest = line.partition(":")
            values[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError) as exc:
        raise CheckError(f"cannot read {path}: {exc}") from None
    return values


def run_memory(opts: dict[str, Any], ctx: RunContext) -> Outcome:
    info = meminfo()
    available = info.get("MemAvailable", info.get("MemFree", 0))
    share = 100.0 * available / info["MemTotal"] if info.get("MemTotal") else 0.0
    outcome = Outcome(
        PASS, f"{available / 1024**3:.1f} GiB available ({share:.0f}%)", value=available
    )
    outcome.measure("available_mb", available / 1024**2, "mb", opts.get("available"))
    outcome.measure("available_percent", share, "%", opts.get("available_percent"))
    return outcome


MEMORY = CheckType(
    name="memory",
    description="available memory on the host (MemAvailable), graded against bands",
    options={
        "available": {"type": "bands", "description": "e.g. {pass: '>= 1gb', warn: '>= 512mb'}"},
        "available_percent": {"type": "bands"},
    },
    run=run_memory,
)

_TAIL = 2000


def run_process(opts: dict[str, Any], ctx: RunContext) -> subprocess.CompletedProcess[str]:
    """Run `cmd` (a list, or a string split like a shell would, never through one)."""
    cmd = opts["cmd"] if isinstance(opts["cmd"], list) else shlex.split(opts["cmd"])
    env = {**os.environ, **{k: str(v) for k, v in (opts.get("env") or {}).items()}}
    try:
        return subprocess.run(
            [str(c) for c in cmd],
            cwd=opts.get("chdir"),
            env=env,
            text=True,
            capture_output=True,
            timeout=ctx.timeout,
            check=False,
        )
    except FileNotFoundError:
        raise CheckError(f"cmd {cmd[0]!r}: command not found") from None
    except subprocess.TimeoutExpired:
        raise CheckError(
            f"cmd {shlex.join(map(str, cmd))}: no exit within {ctx.timeout:g}s"
        ) from None
    except OSError as exc:
        raise CheckError(f"cmd {cmd[0]!r}: cannot run: {exc}") from None


def process_details(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    return {
        "cmd": proc.args,
        "rc": proc.returncode,
        "stdout": proc.stdout[-_TAIL:],
        "stderr": proc.stderr[-_TAIL:],
    }


def run_command(opts: dict[str, Any], ctx: RunContext) -> Outcome:
    proc = run_process(opts, ctx)
    checks = Assertions()
    expected = opts["rc"] if isinstance(opts["rc"], list) else [opts["rc"]]
    # The last line the command wrote to stderr is usually why it failed.
    said = next((line.strip() for line in reversed(proc.stderr.splitlines()) if line.strip()), "")
    checks.expect(
        proc.returncode in expected,
        f"rc {proc.returncode}",
        f"rc {proc.returncode}, expected {' or '.join(map(str, expected))}"
        + (f" ({said[:200]})" if said else ""),
    )
    for pattern in opts.get("stdout_regex") or []:
        checks.expect(
            re.search(pattern, proc.stdout) is not None,
            f"stdout ~ {pattern}",
            f"stdout does not match {pattern!r}",
        )
    if opts.get("json"):
        try:
            document = json.loads(proc.stdout)
        except ValueError:
            raise CheckError(f"stdout is not JSON; starts with {proc.stdout[:80]!r}") from None
        for expression in opts["json"]:
            found = search(expression, document)
            checks.expect(bool(found), expression, f"JSON {expression!r} is {json.dumps(found)}")
    outcome = checks.outcome(", ".join(checks.passed), value=proc.returncode)
    outcome.details.update(process_details(proc))
    return outcome


COMMAND = CheckType(
    name="command",
    description="run a command (no shell): exit code, stdout regex, JMESPath on JSON stdout",
    options={
        "cmd": {"type": "raw", "required": True, "description": "argument list or string"},
        "chdir": {"type": "str"},
        "env": {"type": "dict", "default": {}},
        "rc": {"type": "intlist", "default": 0},
        "stdout_regex": {"type": "list", "elements": "str", "default": []},
        "json": {"type": "list", "elements": "str", "default": []},
    },
    run=run_command,
    read_only=False,
)
