# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deploy lock: `<state_dir>/lock.json`, one holder per environment, with expiry.

Standard library only (runs on the deploy host inside a module). All changes to the lock
happen under an flock(2) on a guard file, so a takeover of an expired lock cannot race a
fresh acquisition; the lock file itself is created exclusively (O_EXCL temp file, then
link(2), which fails if the name exists) so no reader ever sees it half written. A run
that dies leaves lock.json behind, but flock is released by the kernel and the record
expires, so a cancelled job cannot wedge deploys.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from ansible_collections.stagegate.release.plugins.module_utils._run_identity import default_owner
from ansible_collections.stagegate.release.plugins.module_utils._state_files import (
    describe,
    ensure_dir,
    json_text,
    write_temp,
)

# timezone.utc, not datetime.UTC: this file runs on deploy hosts with Python older than 3.11.
UTC = timezone.utc
LOCK_FILE = "lock.json"
GUARD_FILE = ".lock.guard"
EXAMPLE_TIME = "2026-11-22T12:00:00Z"

ACQUIRED = "acquired"
ALREADY_HELD = "already_held"
TAKEN_OVER = "taken_over_expired"
BROKEN = "broken"
RELEASED = "released"
NOT_HELD = "not_held"


MESSAGES = {
    ACQUIRED: "deploy lock acquired",
    ALREADY_HELD: "deploy lock already held by this run",
    TAKEN_OVER: "took over an expired deploy lock from {holder}",
    BROKEN: "broke the live deploy lock of {holder} (break_lock)",
    RELEASED: "deploy lock released",
    NOT_HELD: "deploy lock was not held",
}


class LockHeldError(Exception):
    """Another live run holds the lock (or a release was asked by a run that is not the owner)."""

    def __init__(self, message, holder):
        super().__init__(message)
        self.holder = holder


def iso(epoch):
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text):
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def human_age(seconds):
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def describe_holder(record, now):
    """`root@ci-1 (run 2026...-ab12cd), held for 3m12s, expires in 26m48s`.

    Never raises: a record `read` found garbled is described by what is wrong with it.
    """
    if record.get("corrupt"):
        known = ""
        if record.get("owner") or record.get("run_id"):
            known = f", written by {record.get('owner') or '?'} (run {record.get('run_id') or '?'})"
        return f"an unreadable lock file ({record['corrupt']}{known})"
    age = human_age(now - parse_iso(record["acquired_at"]))
    remaining = parse_iso(record["expires_at"]) - now
    expiry = f"expires in {human_age(remaining)}" if remaining > 0 else "expired"
    return f"{record['owner']} (run {record['run_id']}), held for {age}, {expiry}"


def action_message(action, previous, now):
    """What an acquire or release did, naming the holder it replaced or removed."""
    if action == BROKEN and previous and previous.get("corrupt"):
        return f"broke {describe_holder(previous, now)} (break_lock)"
    return MESSAGES[action].format(holder=describe_holder(previous, now) if previous else "")


def check_record(record):
    """The record when every field a holder needs is there and parses; else {'corrupt': why}
    plus whatever owner and run id could still be read (so that run can release it)."""
    if not isinstance(record, dict):
        return {"corrupt": f"expected a JSON object, got {type(record).__name__}"}
    problems = [
        f"{key} missing"
        for key in ("owner", "run_id")
        if not isinstance(record.get(key), str) or not record[key]
    ]
    for key in ("acquired_at", "expires_at"):
        try:
            parse_iso(record.get(key))
        except (TypeError, ValueError):
            problems.append(f"{key} {record.get(key)!r} is not a UTC time like {EXAMPLE_TIME}")
    if not problems:
        return record
    corrupt = {"corrupt": "; ".join(problems)}
    for key in ("owner", "run_id"):
        if isinstance(record.get(key), str) and record[key]:
            corrupt[key] = record[key]
    return corrupt


class DeployLock:
    """Reads and changes the lock in one state directory."""

    def __init__(self, state_dir: str, clock: Callable[[], float] = time.time) -> None:
        self.state_dir = state_dir
        self.path = os.path.join(state_dir, LOCK_FILE)
        self.clock = clock

    def read(self) -> dict[str, Any] | None:
        """The current record, None when free, or {'corrupt': reason, ...} when unreadable."""
        try:
            with open(self.path, encoding="utf-8") as handle:
                record = json.load(handle)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            return {"corrupt": f"not a JSON lock record: {exc}"}
        return check_record(record)

    def expired(self, record, now):
        return not record.get("corrupt") and parse_iso(record["expires_at"]) <= now

    def plan_acquire(self, run_id, owner, ttl, break_lock, now):
        """(action, current record) for an acquisition; raises LockHeld when it must stop."""
        current = self.read()
        if current is None:
            return ACQUIRED, None
        if current.get("corrupt"):
            # Neither alive nor expired can be told: only an explicit break replaces it.
            if break_lock:
                return BROKEN, current
            raise LockHeldError(
                f"deploy lock {self.path} is held by {describe_holder(current, now)}: whether "
                "its run is alive or expired cannot be told; if no run is deploying now, set "
                "break_lock (stagegate_break_lock=true) to replace it",
                current,
            )
        if current.get("run_id") == run_id:
            return ALREADY_HELD, current
        if self.expired(current, now):
            return TAKEN_OVER, current
        if break_lock:
            return BROKEN, current
        raise LockHeldError(
            f"deploy lock {self.path} is held by {describe_holder(current, now)}; wait for it, "
            "or set break_lock (stagegate_break_lock=true) if that run is dead",
            current,
        )

    def acquire(self, run_id, owner, ttl, *, break_lock=False, check_mode=False, awx_job_id=None):
        """Take the lock; returns (action, record now held, previous holder).

        `owner` None is the deploy host's user@host; `awx_job_id` is recorded when given.
        """
        now = self.clock()
        record = dict(
            {"awx_job_id": awx_job_id} if awx_job_id else {},
            owner=owner or default_owner(),
            run_id=run_id,
            acquired_at=iso(now),
            expires_at=iso(now + ttl),
            ttl=ttl,
        )
        if check_mode:
            action, previous = self.plan_acquire(run_id, owner, ttl, break_lock, now)
            return action, (previous if action == ALREADY_HELD else record), previous
        ensure_dir(self.state_dir)
        with self._guard():
            action, previous = self.plan_acquire(run_id, owner, ttl, break_lock, now)
            if action == ALREADY_HELD:
                return action, previous, previous
            self._write(record, replace=previous is not None)
        return action, record, previous

    def plan_release(self, run_id, break_lock):
        current = self.read()
        if current is None:
            return NOT_HELD, None
        if current.get("run_id") == run_id or break_lock:
            return RELEASED, current
        raise LockHeldError(
            f"deploy lock {self.path} is held by {describe_holder(current, self.clock())}, "
            f"not by run {run_id}; left in place (break_lock removes it explicitly)",
            current,
        )

    def release(self, run_id, *, break_lock=False, check_mode=False):
        """Remove the lock if this run holds it; returns (action, previous record)."""
        if check_mode or not os.path.isdir(self.state_dir):
            return self.plan_release(run_id, break_lock)
        with self._guard():
            action, previous = self.plan_release(run_id, break_lock)
            if action == RELEASED:
                try:
                    os.unlink(self.path)
                except OSError as exc:
                    raise describe("remove", "the deploy lock", self.path, exc) from exc
        return action, previous

    @contextmanager
    def _guard(self):
        guard = os.path.join(self.state_dir, GUARD_FILE)
        try:
            fd = os.open(guard, os.O_RDWR | os.O_CREAT, 0o640)
        except OSError as exc:
            raise describe("open", "the deploy lock's guard file", guard, exc) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _write(self, record, replace):
        temp = write_temp(self.path, json_text(record), "the deploy lock")
        try:
            if replace:
                os.replace(temp, self.path)
            else:
                os.link(temp, self.path)  # fails with EEXIST if the name exists
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                current = self.read() or {}
                raise LockHeldError(
                    f"deploy lock {self.path} appeared while taking it", current
                ) from exc
            raise describe("write", "the deploy lock", self.path, exc) from exc
        finally:
            if os.path.exists(temp):
                os.unlink(temp)
