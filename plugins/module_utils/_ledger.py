# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The release ledger: one JSON record per run, appended to `<state_dir>/ledger.jsonl`.

Standard library only: the `stagegate.release.ledger` module runs this on the deploy host and
`stagegate.ledger` (CLI, baseline comparison, rollback) reads the same file on the controller.
Writers take an exclusive `fcntl.flock` on the ledger file and append one whole line with a
single write, so two concurrent runs never interleave or lose a record.
"""

from __future__ import annotations

import fcntl
import json
import os
from typing import Any

LEDGER_NAME = "ledger.jsonl"
GOOD_VERDICTS = ("GO", "GO_WITH_WARNINGS")
REQUIRED_FIELDS = ("release", "verdict")


class LedgerError(ValueError):
    """A record that cannot be appended, or a ledger line that cannot be read."""


def ledger_path(state_dir: str) -> str:
    return os.path.join(state_dir, LEDGER_NAME)


def validate_record(record: Any) -> str:
    if not isinstance(record, dict):
        raise LedgerError(f"record: expected a mapping, got {type(record).__name__}")
    for key in REQUIRED_FIELDS:
        if not record.get(key):
            raise LedgerError(
                f"record.{key}: missing; a ledger record needs {', '.join(REQUIRED_FIELDS)}"
            )
    try:
        return json.dumps(record, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise LedgerError(f"record: not JSON-serialisable: {exc}") from exc


def append(path: str, record: dict[str, Any]) -> str:
    """Append one record (a dict) under an exclusive lock; returns the line written."""
    line = validate_record(record) + "\n"
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, mode=0o750, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        data = line.encode("utf-8")
        written = os.write(fd, data)
        if written != len(data):
            raise LedgerError(f"short write to {path} ({written} of {len(data)} bytes)")
        os.fsync(fd)
    finally:
        os.close(fd)  # closing releases the lock
    return line


def read(path: str) -> list[dict[str, Any]]:
    """All records, oldest first; a missing ledger is empty. Bad lines raise naming the line."""
    if not os.path.exists(path):
        return []
    records = []
    with open(path, encoding="utf-8") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError as exc:
                raise LedgerError(f"{path} line {number}: not a JSON record: {exc}") from exc
    return records


def same_run(records: list[dict[str, Any]], record: dict[str, Any]) -> dict[str, Any] | None:
    """The record of the same run already in the ledger (same run_id, release and kind)."""
    if not record.get("run_id"):
        return None
    key = (record["run_id"], record.get("release"), record.get("kind"))
    for existing in records:
        if (existing.get("run_id"), existing.get("release"), existing.get("kind")) == key:
            return existing
    return None


def append_once(
    path: str, record: dict[str, Any], check_mode: bool = False
) -> tuple[str | None, dict[str, Any]]:
    """Append `record` unless the same run's record is in the ledger already.

    Returns (the line appended, or None when the run's record was there, and the record now in
    the ledger). In check mode nothing is written. Raises LedgerError or OSError.
    """
    line = validate_record(record) + "\n"
    recorded = same_run(read(path), record)
    if recorded is not None:
        return None, recorded
    if not check_mode:
        append(path, record)
    return line, record


def last_good(
    records: list[dict[str, Any]], before_release: str | None = None
) -> dict[str, Any] | None:
    """The newest record with a GO or GO_WITH_WARNINGS verdict (optionally not `before_release`)."""
    for record in reversed(records):
        if record.get("verdict") in GOOD_VERDICTS and record.get("release") != before_release:
            return record
    return None
