# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The release ledger: one JSON record per run, appended to `<state_dir>/ledger.jsonl`.

Standard library only: the `stagegate.release.ledger` module runs this on the deploy host and
`stagegate.ledger` (CLI, baseline comparison, rollback) reads the same file on the controller.
Writers take an exclusive `fcntl.flock` on the ledger file and append one whole line with a
single write, so two concurrent runs never interleave or lose a record.

The incident path must never be blocked by the ledger itself. `scan` is the one reader: a
torn final line (a writer killed mid-write: no newline, not a whole JSON object) and an
unparseable line anywhere else are skipped and named in the warnings it returns, never
raised. Every append first repairs a torn final line under the exclusive lock (a whole
record that only lost its newline is newline-terminated; a partial one is cut off), so the
next record never lands on the end of a broken one.
"""

from __future__ import annotations

import fcntl
import json
import os
from typing import Any

from ansible_collections.stagegate.release.plugins.module_utils._state_files import (
    StateFileError,
    describe,
    ensure_dir,
)

LEDGER_NAME = "ledger.jsonl"
GOOD_VERDICTS = ("GO", "GO_WITH_WARNINGS")
REQUIRED_FIELDS = ("release", "verdict")
_TAIL_CHUNK = 65536


class LedgerError(ValueError):
    """A record that cannot be appended (missing fields, not JSON, a short write).

    Files that cannot be opened, read or written raise StateFileError (an OSError).
    """


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


class _NotARecordError(ValueError):
    """A line that is JSON but not an object."""


def _parse_line(raw: bytes) -> dict[str, Any]:
    """One line as a record; raises ValueError (UnicodeDecodeError and JSONDecodeError are)."""
    record = json.loads(raw.decode("utf-8"))
    if not isinstance(record, dict):
        raise _NotARecordError(f"expected a JSON object, got {type(record).__name__}")
    return record


def parse(data: bytes, path: str) -> tuple[list[dict[str, Any]], list[str]]:
    """(records, warnings) from the bytes of a ledger file; bad lines are skipped and named."""
    records: list[dict[str, Any]] = []
    warnings: list[str] = []
    lines = data.split(b"\n")
    # data ends with "\n" when the last write completed: the split leaves an empty last item.
    last = len(lines) - 1
    for index, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            records.append(_parse_line(raw))
        except ValueError as exc:
            number = index + 1
            if index == last:  # no newline after it: a write cut short
                warnings.append(
                    f"{path} line {number}: torn final line skipped ({len(raw)} bytes, not a "
                    "whole record: a run was killed while writing it); the next append removes it"
                )
            else:
                warnings.append(f"{path} line {number}: not a JSON record, skipped ({exc})")
    return records, warnings


def scan(path: str) -> tuple[list[dict[str, Any]], list[str]]:
    """All readable records, oldest first, and a warning per line skipped.

    A missing ledger is empty. Only an unreadable file (permissions, I/O) raises, a
    StateFileError naming the file and the cause.
    """
    try:
        with open(path, "rb") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
            data = handle.read()
    except FileNotFoundError:
        return [], []
    except OSError as exc:
        raise describe("read", "the ledger", path, exc) from exc
    return parse(data, path)


def read(path: str) -> list[dict[str, Any]]:
    """All readable records, oldest first (`scan` without its warnings)."""
    return scan(path)[0]


def _read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _last_line_start(fd: int, size: int) -> int:
    """Offset where the file's last line begins (after its last newline, or 0)."""
    end = size
    while end > 0:
        start = max(0, end - _TAIL_CHUNK)
        chunk = os.pread(fd, end - start, start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        end = start
    return 0


def repair_tail(fd: int, path: str) -> list[str]:
    """Under the exclusive lock: make the file end with a newline before anything is appended.

    A final line without its newline that is a whole record only lost the newline; anything
    else there is a torn write and is cut off. Returns what was done, as warnings.
    """
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return []
    start = _last_line_start(fd, size)
    tail = os.pread(fd, size - start, start)
    try:
        _parse_line(tail)
    except ValueError:
        os.ftruncate(fd, start)
        os.fsync(fd)
        return [
            f"{path}: removed a torn final line ({size - start} bytes at offset {start}, "
            "left by a run killed while writing it) before appending"
        ]
    _write_all(fd, b"\n", path)
    return [f"{path}: the final record had lost its newline; added it before appending"]


def _write_all(fd: int, data: bytes, path: str) -> None:
    written = os.write(fd, data)
    if written != len(data):
        raise LedgerError(f"short write to {path} ({written} of {len(data)} bytes)")


class _Exclusive:
    """The ledger opened for appending under an exclusive flock (closing releases it)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> int:
        directory = os.path.dirname(self.path)
        if directory:
            ensure_dir(directory)
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except OSError as exc:
            raise describe("open", "the ledger", self.path, exc, "opening it to append") from exc
        return self.fd

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        os.close(self.fd)
        if isinstance(exc, OSError) and not isinstance(exc, StateFileError):
            raise describe("append to", "the ledger", self.path, exc) from exc


def append(path: str, record: dict[str, Any], warnings: list[str] | None = None) -> str:
    """Append one record (a dict) under an exclusive lock; returns the line written.

    A torn final line is repaired first; what was repaired is added to `warnings` when given.
    """
    line = validate_record(record) + "\n"
    with _Exclusive(path) as fd:
        repaired = repair_tail(fd, path)
        _write_all(fd, line.encode("utf-8"), path)
        os.fsync(fd)
    if warnings is not None:
        warnings.extend(repaired)
    return line


def same_run(records: list[dict[str, Any]], record: dict[str, Any]) -> dict[str, Any] | None:
    """The record of the same run already in the ledger (same run_id, release, kind and verdict).

    The verdict is part of the key because a resumed rollback keeps its run id: its NO_GO
    record stays as what happened, and its GO when it is finished is recorded as well."""
    if not record.get("run_id"):
        return None
    fields = ("run_id", "release", "kind", "verdict")
    key = tuple(record.get(field) for field in fields)
    for existing in records:
        if tuple(existing.get(field) for field in fields) == key:
            return existing
    return None


def append_once(
    path: str, record: dict[str, Any], check_mode: bool = False
) -> tuple[str | None, dict[str, Any], list[str]]:
    """Append `record` unless the same run's record is in the ledger already.

    Returns (the line appended, or None when the run's record was there; the record now in the
    ledger; warnings about lines skipped or repaired). The look-up and the append happen under
    one exclusive lock. In check mode nothing is written. Raises LedgerError or OSError.
    """
    line = validate_record(record) + "\n"
    if check_mode:
        records, warnings = scan(path)
        recorded = same_run(records, record)
        return (None, recorded, warnings) if recorded is not None else (line, record, warnings)
    with _Exclusive(path) as fd:
        warnings = repair_tail(fd, path)
        records, skipped = parse(_read_all(fd), path)
        warnings += skipped
        recorded = same_run(records, record)
        if recorded is not None:
            return None, recorded, warnings
        _write_all(fd, line.encode("utf-8"), path)
        os.fsync(fd)
    return line, record, warnings


def append_as_module(
    path: str, record: dict[str, Any], check_mode: bool = False
) -> tuple[dict[str, Any], list[str]]:
    """append_once as a module reports it: ({changed, record, diff when a line is appended},
    warnings). Any failure is a LedgerError whose message names the ledger."""
    try:
        line, recorded, warnings = append_once(path, record, check_mode)
    except LedgerError as exc:
        raise LedgerError(f"cannot append to {path}: {exc}") from exc
    except OSError as exc:  # StateFileError: names the file, the operation and the cause
        raise LedgerError(str(exc)) from exc
    if line is None:
        return {"changed": False, "record": recorded}, warnings
    diff = {"before": "", "after": line, "after_header": path + " (appended)"}
    return {"changed": True, "record": record, "diff": diff}, warnings


# A record's `kind`: a promotion (staging.yml) has none; the others name what ran.
ROLLBACK = "rollback"
ADOPT = "adopt"
REVALIDATION = "revalidation"
VALIDATION = "validation"  # stagegate_validate_only: a service stagegate does not deploy
RESTORE = "restore"  # restore.yml: the database of the release that runs restored from a dump


def is_revalidation(record: dict[str, Any]) -> bool:
    """A re-validation's record (validate.yml): it measured a release, it did not deploy one."""
    return record.get("kind") in (REVALIDATION, VALIDATION)


def moves_no_release(record: dict[str, Any]) -> bool:
    """A run that put no release in place: a re-validation, or a restore (the database alone,
    under the release that ran). Never a rollback target's evidence, nor why a release runs."""
    return is_revalidation(record) or record.get("kind") == RESTORE


def is_promotion(record: dict[str, Any]) -> bool:
    """A promotion's record (staging.yml): the only kind without a `kind`."""
    return not record.get("kind")


def last_good(
    records: list[dict[str, Any]], before_release: str | None = None
) -> dict[str, Any] | None:
    """The newest record with a GO or GO_WITH_WARNINGS verdict (optionally not `before_release`):
    what a promotion compares with. A validation-only run (kind `validation`) is of a service
    stagegate does not deploy, and a restore (kind `restore`) verified a database put back
    under whatever ran: never a release to compare with."""
    for record in reversed(records):
        if (
            record.get("verdict") in GOOD_VERDICTS
            and record.get("release") != before_release
            and record.get("kind") not in (VALIDATION, RESTORE)
        ):
            return record
    return None


def deploy_record(records: list[dict[str, Any]], release: str) -> dict[str, Any] | None:
    """The record of `release`'s promotion here that a re-validation compares with: its newest
    GO / GO_WITH_WARNINGS promotion record (not a rollback, adoption or re-validation), or None
    when it was never promoted here."""
    for record in reversed(records):
        if (
            record.get("release") == release
            and record.get("verdict") in GOOD_VERDICTS
            and is_promotion(record)
        ):
            return record
    return None


def revalidations(
    records: list[dict[str, Any]], release: str, kind: str = REVALIDATION
) -> list[dict[str, Any]]:
    """The re-validation records (`kind`: revalidation, or validation) of `release`, oldest
    first: the trend of a release since its deploy."""
    return [r for r in records if r.get("release") == release and r.get("kind") == kind]
