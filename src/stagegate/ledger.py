"""Readers of the release ledger on the controller (CLI, baseline comparison, rollback).

The file format, the one reader (`scan`: torn final line and unparseable lines skipped with a
warning) and the locked append (which repairs a torn final line first) live in the
collection's `module_utils/_ledger.py`, which the `stagegate.release.ledger` module runs on
the deploy host; this module wraps the same code with types.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ansible_collections.stagegate.release.plugins.module_utils import _ledger

LedgerError = _ledger.LedgerError
GOOD_VERDICTS: tuple[str, ...] = tuple(_ledger.GOOD_VERDICTS)


def ledger_path(state_dir: str | Path) -> Path:
    return Path(_ledger.ledger_path(str(state_dir)))


def append(path: str | Path, record: dict[str, Any]) -> list[str]:
    """Append one record under an exclusive lock; returns what was repaired first (warnings)."""
    warnings: list[str] = []
    _ledger.append(str(path), record, warnings)
    return warnings


def scan(path: str | Path) -> tuple[list[dict[str, Any]], list[str]]:
    """All readable records, oldest first, and one warning per line skipped."""
    records: list[dict[str, Any]]
    warnings: list[str]
    records, warnings = _ledger.scan(str(path))
    return records, warnings


def read(path: str | Path) -> list[dict[str, Any]]:
    """All readable records, oldest first (empty when the ledger does not exist yet)."""
    return scan(path)[0]


def last_good(
    records: list[dict[str, Any]], before_release: str | None = None
) -> dict[str, Any] | None:
    """The newest GO / GO_WITH_WARNINGS record, never `before_release` itself."""
    found: dict[str, Any] | None = _ledger.last_good(records, before_release)
    return found


def deploy_record(records: list[dict[str, Any]], release: str) -> dict[str, Any] | None:
    """The newest GO / GO_WITH_WARNINGS promotion record of `release` (what re-validations
    compare with), or None; the rule of `_ledger.deploy_record`."""
    found: dict[str, Any] | None = _ledger.deploy_record(records, release)
    return found


def revalidations(
    records: list[dict[str, Any]], release: str, kind: str = _ledger.REVALIDATION
) -> list[dict[str, Any]]:
    """The `kind` (revalidation or validation) records of `release`, oldest first."""
    found: list[dict[str, Any]] = _ledger.revalidations(records, release, kind)
    return found


def baseline_metrics(record: dict[str, Any] | None) -> dict[str, dict[str, float]]:
    """The per-check metrics a ledger record kept, for `baseline` gates.

    Only numbers: a value the record could not keep (masked as `***` because its key looks
    secret, e.g. a metric named after a compose service `auth`) has no baseline.
    """
    metrics = (record or {}).get("metrics") or {}
    return {
        str(check): {
            str(k): float(v)
            for k, v in values.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
        for check, values in metrics.items()
    }


def release_history(
    records: list[dict[str, Any]], release: str, limit: int | None = None
) -> list[dict[str, Any]]:
    """The runs of `release` since it was last deployed, oldest first: its deploy record (the
    newest GO / GO_WITH_WARNINGS promotion record, the one validate.yml compares with) and
    the `revalidation` records after it; for a release stagegate does not deploy
    (validate.yml's `stagegate_validate_only`), its `validation` records. At most the last
    `limit`. What `trend` gates read."""
    deployed = _ledger.deploy_record(records, release)
    start = next((index for index, record in enumerate(records) if record is deployed), 0)
    found = [
        record
        for record in records[start:]
        if record.get("release") == release
        and (record is deployed or _ledger.is_revalidation(record))
    ]
    return found[-limit:] if limit else found
