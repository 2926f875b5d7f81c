# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files in the deploy host's state directory: made once, written atomically, and failing with
a message that names the path, the operation and the cause.

Standard library only (runs inside modules on the deploy host). A bare `[Errno 30] Read-only
file system: '/x/rollback.json.123.tmp'` tells an on-call engineer neither what stagegate was
doing nor what to fix; `StateFileError` says `cannot write the rollback state
/x/rollback.json: the file system is read-only (errno 30, while creating its temporary file
...); stagegate_state_dir must be on a writable file system`.
"""

from __future__ import annotations

import errno
import json
import os
import time
from datetime import datetime, timezone
from typing import Any

# What to fix, by cause; anything else is reported with the system's own words.
_CAUSES = {
    errno.EROFS: ("the file system is read-only", "must be on a writable file system"),
    errno.ENOSPC: ("no space is left on the device", "needs free space"),
    errno.EDQUOT: ("the disk quota is exhausted", "needs free space"),
    errno.EACCES: ("permission denied", "must be writable by the deploy user"),
    errno.EPERM: ("operation not permitted", "must be writable by the deploy user"),
    errno.ENOTDIR: ("a part of the path is a file, not a directory", "must be a directory"),
    errno.EISDIR: ("it is a directory", "must hold stagegate's files only"),
}


STATE_DIR = "stagegate_state_dir"  # the variable that places state files (default `setting`)


class StateFileError(OSError):
    """A state file or directory that cannot be read or written; str() is the whole story."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(code, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def describe(
    operation: str,
    what: str,
    path: str,
    exc: OSError,
    step: str = "",
    *,
    setting: str = STATE_DIR,
) -> StateFileError:
    """`cannot <operation> <what> <path>: <cause> (errno N[, while <step>]); <setting> <what to
    fix>`; `setting` is the variable that places the file."""
    if isinstance(exc, StateFileError):
        return exc
    cause, fix = _CAUSES.get(exc.errno or -1, (exc.strerror or str(exc), ""))
    detail = f"errno {exc.errno}" if exc.errno else type(exc).__name__
    if step:
        detail += f", while {step}"
    elif exc.filename and str(exc.filename) != path:
        detail += f", at {exc.filename}"
    message = f"cannot {operation} {what} {path}: {cause} ({detail})"
    if fix:
        message += f"; {setting} {fix}"
    return StateFileError(message, exc.errno)


def ensure_dir(
    path: str, what: str = "the state directory", mode: int = 0o750, *, setting: str = STATE_DIR
) -> None:
    try:
        os.makedirs(path, mode=mode, exist_ok=True)
    except OSError as exc:
        raise describe("create", what, path, exc, setting=setting) from exc


def write_temp(
    path: str,
    text: str,
    what: str,
    mode: int = 0o640,
    *,
    temp: str = "",
    setting: str = STATE_DIR,
) -> str:
    """`text` written and fsynced to a new temporary file beside `path` (`temp`, or a name
    unique to this call); returns its name for the caller to rename (or link) into place.
    Nothing is left behind when the write fails (a full disk, a read-only file system)."""
    temp = temp or f"{path}.{os.getpid()}.{time.monotonic_ns()}.tmp"
    step = f"creating its temporary file {temp}"
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            step = f"writing its temporary file {temp}"
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            os.unlink(temp)
            raise
    except OSError as exc:
        raise describe("write", what, path, exc, step, setting=setting) from exc
    return temp


def utc_now() -> str:
    """The time stamp stagegate records in state files: UTC to the second, `Z`-suffixed."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def iso_epoch(text: str) -> float:
    """The epoch of an ISO-8601 time stamp; one without an offset is UTC, as every time stamp
    stagegate takes is (Ansible's `now(utc=true).isoformat()` has none), never the local time
    of whichever machine reads it. Raises ValueError for text that is not ISO-8601."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def json_text(data: Any) -> str:
    """How stagegate writes a JSON state file: indented, keys sorted, a final newline."""
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def fsync_dir(directory: str) -> None:
    """Make a rename in `directory` durable (raises OSError)."""
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_atomic(
    path: str, text: str, what: str, mode: int = 0o640, *, setting: str = STATE_DIR
) -> None:
    """Write `text` to `path` through a temporary file in the same directory (fsync, rename,
    fsync of the directory): a reader sees the old file or the new one, never half of one."""
    directory = os.path.dirname(path) or "."
    ensure_dir(directory, setting=setting)
    temp = write_temp(path, text, what, mode, setting=setting)
    step = f"renaming {temp} into place"
    try:
        try:
            os.replace(temp, path)
        finally:
            if os.path.exists(temp):
                os.unlink(temp)
        step = f"syncing the directory {directory}"
        fsync_dir(directory)
    except OSError as exc:
        raise describe("write", what, path, exc, step, setting=setting) from exc


def write_json_atomic(path: str, data: Any, what: str, mode: int = 0o640) -> None:
    write_atomic(path, json_text(data), what, mode)
