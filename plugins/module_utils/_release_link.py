# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The symlink deploy strategy on the deploy host: release directories, a `current` symlink
switched atomically, and the programs supervisord runs from it (docs/deploy.md "Deploy
strategies"). Standard library only; runs on deploy hosts with Python 3.9+."""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ansible_collections.stagegate.release.plugins.module_utils._compose import Readiness

RELEASE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


class LinkError(Exception):
    """A release directory or the `current` link is not what the switch needs."""


@dataclass
class LinkState:
    current: str
    target: str | None
    release: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"current": self.current, "target": self.target, "release": self.release}


def read_link(current: str) -> LinkState:
    """What `current` points at now (release = the target directory's name), or nothing."""
    if not os.path.lexists(current):
        return LinkState(current, None, None)
    if not os.path.islink(current):
        raise LinkError(f"current={current!r} exists and is not a symbolic link")
    target = os.readlink(current)
    return LinkState(current, target, os.path.basename(target.rstrip("/")))


def release_dir(releases_dir: str, release: str) -> str:
    """`<releases_dir>/<release>`, which must be a directory; errors name the option."""
    if not RELEASE_RE.match(release):
        raise LinkError(
            f"release={release!r}: expected a directory name (letters, digits, . _ + -)"
        )
    path = os.path.join(releases_dir, release)
    if not os.path.isdir(path):
        raise LinkError(
            f"release={release!r}: {path} is not a directory; expected the release unpacked "
            f"under releases_dir={releases_dir!r}"
        )
    return path


def switch_link(current: str, target: str) -> None:
    """Point `current` at `target` atomically: a new link beside it, renamed over it, so a
    reader sees the old release or the new one, never none."""
    temp = f"{current}.stagegate-{os.getpid()}"
    if os.path.lexists(temp):
        os.unlink(temp)
    os.symlink(target, temp)
    os.replace(temp, current)
    directory = os.open(os.path.dirname(os.path.abspath(current)), os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


# --- supervisord through supervisorctl ---

_UPTIME_RE = re.compile(r"pid (\d+), uptime (?:(\d+) days?, )?(\d+):(\d\d):(\d\d)")
FAILED_STATES = ("FATAL", "EXITED", "BACKOFF", "UNKNOWN")


@dataclass
class ProgramState:
    name: str
    state: str
    pid: int | None = None
    uptime: float | None = None
    description: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "pid": self.pid,
            "uptime": self.uptime,
            "description": self.description,
        }


def parse_status(text: str) -> dict[str, ProgramState]:
    """`supervisorctl status` lines: `name  STATE  description`; `name: ERROR (no such
    process)` for a program supervisord does not know."""
    states: dict[str, ProgramState] = {}
    for line in text.splitlines():
        if ": ERROR (no such process)" in line:
            name = line.split(":", 1)[0].strip()
            states[name] = ProgramState(name, "MISSING", description="no such process")
            continue
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[1].isupper():
            continue
        desc = parts[2].strip() if len(parts) > 2 else ""
        match = _UPTIME_RE.search(desc)
        pid = uptime = None
        if match:
            days = int(match.group(2) or 0)
            pid = int(match.group(1))
            uptime = float(
                days * 86400
                + int(match.group(3)) * 3600
                + int(match.group(4)) * 60
                + int(match.group(5))
            )
        states[parts[0]] = ProgramState(parts[0], parts[1], pid, uptime, desc)
    return states


class SupervisorError(Exception):
    def __init__(self, msg: str, result: dict[str, Any]) -> None:
        super().__init__(msg)
        self.result = result


RunCommand = Callable[[list], "tuple[int, str, str]"]


class Supervisor:
    """supervisorctl against one supervisord (its config file or server URL)."""

    def __init__(
        self, run: RunCommand, supervisorctl: str, config: str | None, server_url: str | None
    ) -> None:
        self.run = run
        self.base = [supervisorctl]
        if config:
            self.base += ["-c", config]
        if server_url:
            self.base += ["-s", server_url]

    def ctl(self, *args: str, ok_rcs: tuple[int, ...] = (0,)) -> str:
        cmd = self.base + list(args)
        rc, out, err = self.run(cmd)
        # supervisorctl reports an unreachable supervisord on stdout, not always by its rc.
        refused = any(s in out for s in ("refused connection", "no such file", "SHUTDOWN_STATE"))
        if rc not in ok_rcs or refused:
            raise SupervisorError(
                f"{' '.join(cmd)} failed (rc {rc}): {(out or err).strip()[-400:]}",
                {"cmd": cmd, "rc": rc, "stdout": out, "stderr": err},
            )
        return out

    def status(self, programs: list[str]) -> dict[str, ProgramState]:
        # supervisorctl status exits 3 when a program is not running, 4 for an unknown one.
        states = parse_status(self.ctl("status", *programs, ok_rcs=(0, 3, 4)))
        return {name: states.get(name, ProgramState(name, "MISSING")) for name in programs}

    def stop(self, programs: list[str]) -> None:
        self.ctl("stop", *programs, ok_rcs=(0, 1, 7))

    def start(self, programs: list[str]) -> None:
        # A program that exits at once makes `start` fail (spawn error, rc 7); the wait below
        # reads the state and reports it with the program's log.
        self.ctl("start", *programs, ok_rcs=(0, 1, 7))

    def tail(self, program: str, lines: int) -> list[str]:
        text = ""
        for stream in ("stdout", "stderr"):
            try:
                text += self.ctl("tail", f"-{max(lines, 1) * 200}", program, stream)
            except SupervisorError:
                continue
        return [line for line in text.splitlines() if line.strip()][-lines:]


@dataclass
class ProgramFailure:
    program: str
    reason: str
    state: dict[str, Any] | None = None
    logs: list[str] = field(default_factory=list)
    probe: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "program": self.program,
            "reason": self.reason,
            "state": self.state,
            "logs": self.logs,
            "probe": self.probe,
        }


def wait_ready(  # noqa: PLR0917 - one call site, each argument a module option
    supervisor: Supervisor,
    programs: list[str],
    timeout: float,
    stable_seconds: float,
    readiness: dict[str, Readiness],
    log_lines: int,
    poll: float = 0.25,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[dict[str, dict[str, Any]], ProgramFailure | None]:
    """Poll until every program runs under the same pid for `stable_seconds` and answers its
    readiness probe; a program that exits, backs off or is restarted (a new pid) fails at
    once (a crash), and one not ready by `timeout` fails too. Never a fixed sleep."""
    started = clock()
    first_pid: dict[str, int] = {}
    first_seen: dict[str, float] = {}
    while True:
        now = clock()
        states = supervisor.status(programs)
        pending = []
        for name, state in states.items():
            reason = None
            if state.state in FAILED_STATES or state.state in ("STOPPED", "MISSING"):
                reason = f"{state.state.lower()}: {state.description or 'not running'}"
            elif state.state == "RUNNING" and state.pid is not None:
                if first_pid.setdefault(name, state.pid) != state.pid:
                    reason = f"crash: restarted (pid {first_pid[name]} -> {state.pid})"
                first_seen.setdefault(name, now)
            if reason:
                return _report(states), ProgramFailure(
                    name, reason, state.as_dict(), supervisor.tail(name, log_lines)
                )
            if name not in first_seen or now - first_seen[name] < stable_seconds:
                pending.append(name)
        probe = None
        if not pending:
            for name in programs:
                probe = readiness[name].probe() if name in readiness else None
                if probe:
                    pending.append(name)
                    break
            if not pending:
                return _report(states), None
        if now - started > timeout:
            name = pending[0]
            state = states[name]
            return _report(states), ProgramFailure(
                name,
                f"not ready within {timeout:g} s ({state.state.lower()})",
                state.as_dict(),
                supervisor.tail(name, log_lines),
                probe,
            )
        sleep(poll)


def process_release(pid: int | None, releases_dir: str) -> str | None:
    """The release a running process was started from: its working directory (supervisord
    resolves the `current` link when it starts the program) under `releases_dir`."""
    if pid is None:
        return None
    try:
        cwd = os.path.realpath(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None
    root = os.path.realpath(releases_dir)
    if os.path.dirname(cwd) != root:
        return None
    return os.path.basename(cwd)


def _report(states: dict[str, ProgramState]) -> dict[str, dict[str, Any]]:
    return {name: state.as_dict() for name, state in states.items()}
