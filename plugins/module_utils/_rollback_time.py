# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How long a rollback will take, estimated from durations the ledger measured.

Standard library only, Python 3.9-safe (it runs on the deploy host in `rollback_plan` and
`pg_snapshot`). What the ledger measures, and so what an estimate can rest on:

- a rollback record (`kind: rollback`): the whole rollback's wall time (`started` to
  `finished`: plan, stop, database, checkout, images, start, verify) and, in `database`, how the
  database came back (`method` snapshot, dump or downgrade, `seconds`, `bytes`);
- a promotion record: its phases' seconds (`phases`: `deploy` stops and starts the app tier as a
  rollback does, `validate` runs the checks a rollback verifies with, `build` builds images);
- a dump's manifest: its size and how long the dump took.

An estimate is the sum of its parts; a part without a measurement is named, never guessed.
"""

from __future__ import annotations

import json
from typing import Any

from ansible_collections.stagegate.release.plugins.module_utils._state_files import iso_epoch

# The part of a rollback besides the database and image rebuilds: stop, checkout, start, verify.
STEPS_PART = "stop, checkout, start, verify"
DATABASE_PART = "database: "  # the estimate's database part: "database: <the way>"


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _seconds(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def database_estimate(
    records: list[dict[str, Any]], *, backup_bytes: int | None, dump_seconds: float | None
) -> dict[str, Any]:
    """Estimated seconds of each way to put the database back, from measured durations:
    snapshot rollbacks take about the same time whatever the size (the median of those in the
    ledger); a dump restore takes a fixed part (the quickest dump rollback in the ledger) plus
    the backup's size at the throughput the slower ones showed beyond that part. Without such
    a throughput (only small restores measured: dividing their size by their time, mostly fixed
    cost, made a 2 s restore of 9 MB "~960 s"), at least the quickest restore and at least as
    long as the dump itself took (its manifest's duration)."""
    snap: list[float] = []
    dump: list[tuple[float, float]] = []  # (bytes, seconds) of each dump rollback
    for record in records:
        db = record.get("database")
        if record.get("kind") != "rollback" or not isinstance(db, dict):
            continue
        seconds = _seconds(db.get("seconds"))
        if seconds is None or seconds <= 0:
            continue
        if db.get("method") == "snapshot":
            snap.append(seconds)
        elif db.get("method") == "dump" and db.get("bytes"):
            dump.append((float(db["bytes"]), seconds))
    out: dict[str, Any] = {"snapshot": None, "dump": None}
    if snap:
        out["snapshot"] = {
            "seconds": round(_median(snap), 2),
            "basis": f"median of {len(snap)} snapshot rollback(s) in the ledger",
        }
    fixed = min((seconds for _, seconds in dump), default=0.0)
    rates = [size / (seconds - fixed) for size, seconds in dump if seconds - fixed >= 1.0]
    if rates and backup_bytes:
        rate = _median(rates)
        out["dump"] = {
            "seconds": round(fixed + backup_bytes / rate, 2),
            "basis": f"{fixed:g} s, the quickest of {len(dump)} dump rollback(s) in the ledger, "
            f"+ {backup_bytes} bytes at {rate / 1e6:.1f} MB/s, the median of those that took "
            "longer",
        }
    elif dump:
        floor = max(fixed, dump_seconds or 0.0)
        out["dump"] = {
            "seconds": round(floor, 2),
            "basis": f"at least {floor:g} s: the quickest of {len(dump)} dump rollback(s) in the "
            f"ledger took {fixed:g} s"
            + (f" and the dump itself {dump_seconds:g} s" if dump_seconds else "")
            + "; none took long enough to measure a throughput",
        }
    elif dump_seconds:
        out["dump"] = {
            "seconds": round(dump_seconds, 2),
            "basis": "at least as long as the dump took (its manifest); no dump rollback "
            "in the ledger yet",
        }
    return out


def backup_figures(manifest_path: str | None) -> tuple[int | None, float | None]:
    """Size and dump duration from a dump's manifest (None when not known)."""
    try:
        with open(manifest_path or "", encoding="utf-8") as handle:
            manifest = json.load(handle)
    except (OSError, ValueError):
        return None, None
    if not isinstance(manifest, dict):
        return None, None
    size, seconds = manifest.get("size_bytes"), _seconds(manifest.get("duration_seconds"))
    return (int(size) if isinstance(size, int) else None), seconds


def _epoch(text: Any) -> float | None:
    try:
        return iso_epoch(str(text))
    except ValueError:
        return None


def wall_seconds(record: dict[str, Any]) -> float | None:
    """A record's wall time, `started` to `finished` (None when either is missing)."""
    start, end = _epoch(record.get("started")), _epoch(record.get("finished"))
    return end - start if start is not None and end is not None and end >= start else None


def _steps_part(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The rollback without its database step: from past rollbacks, else from promotions."""
    rollbacks = []
    for record in records:
        whole = wall_seconds(record) if record.get("kind") == "rollback" else None
        if whole is None:
            continue
        db = record.get("database") if isinstance(record.get("database"), dict) else {}
        rollbacks.append(max(0.0, whole - (_seconds(db.get("seconds")) or 0.0)))
    if rollbacks:
        return {
            "seconds": round(_median(rollbacks), 1),
            "basis": f"median of {len(rollbacks)} rollback(s) in the ledger, wall time less "
            "their database step",
        }
    promotions = []
    for record in records:
        phases = record.get("phases") if record.get("kind") in (None, "", "promote") else None
        if isinstance(phases, dict) and _seconds(phases.get("deploy")) is not None:
            promotions.append(_seconds(phases["deploy"]) + (_seconds(phases.get("validate")) or 0))
    if promotions:
        return {
            "seconds": round(_median(promotions), 1),
            "basis": f"median deploy + validate phases of {len(promotions)} promotion(s) in the "
            "ledger (no rollback measured yet)",
        }
    return None


_WAY_WORDS = {"snapshot": "snapshot swap", "dump": "restore of the dump"}


def _database_part(
    records: list[dict[str, Any]], database: dict[str, Any], backup_manifest: str | None
) -> tuple[dict[str, Any] | None, str]:
    """(estimate or None, what the database step is)."""
    action = database.get("action")
    if action == "none":
        return {"seconds": 0.0, "basis": "the database is left as it is"}, "none"
    if action == "downgrade":
        return downgrade_estimate(records), "down scripts"
    size, dump_seconds = backup_figures(backup_manifest)
    ways = database_estimate(records, backup_bytes=size, dump_seconds=dump_seconds)
    if database.get("snapshot"):  # swapped in unless it is gone by then (pg_snapshot says)
        return ways["snapshot"], _WAY_WORDS["snapshot"]
    return ways["dump"], _WAY_WORDS["dump"]


def downgrade_estimate(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A downgrade's time: the median of the downgrade rollbacks in the ledger (what their down
    scripts did depends on the release, so this is the order of magnitude, named as such)."""
    seconds = [
        s
        for r in records
        if r.get("kind") == "rollback"
        and isinstance(r.get("database"), dict)
        and r["database"].get("method") == "downgrade"
        and (s := _seconds(r["database"].get("seconds"))) is not None
    ]
    if not seconds:
        return None
    return {
        "seconds": round(_median(seconds), 2),
        "basis": f"median of {len(seconds)} downgrade rollback(s) in the ledger",
    }


def _rebuild_part(
    records: list[dict[str, Any]], rebuild: list[str], target: str
) -> dict[str, Any] | None:
    builds = [
        _seconds((r.get("phases") or {}).get("build"))
        for r in records
        if r.get("release") == target
        and r.get("kind") in (None, "", "promote")
        and isinstance(r.get("phases"), dict)
    ]
    builds = [b for b in builds if b is not None]
    if not rebuild:
        return {"seconds": 0.0, "basis": "every image of the target is present"}
    if builds:
        return {
            "seconds": round(builds[-1], 1),
            "basis": f"the build phase of {target}'s promotion (rebuilds {', '.join(rebuild)})",
        }
    return None


def rollback_estimate(
    records: list[dict[str, Any]],
    *,
    database: dict[str, Any],
    rebuild: list[str],
    target: str,
    images: bool = True,
) -> dict[str, Any]:
    """{seconds, text, parts: {name: {seconds, basis}}, unmeasured: [...]} for a plan.

    `seconds` is the sum of the parts measured (None when nothing was); `unmeasured` names
    the parts no ledger figure covers, so the text says the estimate is a lower bound.
    `images` false: the target runs no images (a symlink release), so no image part at all.
    """
    db_part, db_what = _database_part(records, database, database.get("backup_manifest"))
    parts = {
        STEPS_PART: _steps_part(records),
        f"{DATABASE_PART}{db_what}": db_part,
    }
    if images:
        parts["image rebuild"] = _rebuild_part(records, rebuild, target)
    return _summed(parts)


def with_database_way(
    estimate: dict[str, Any], way: str, found: dict[str, Any] | None
) -> dict[str, Any]:
    """A plan's estimate with its database part replaced by the way actually chosen (the plan
    assumes the snapshot it expects; pg_snapshot finds whether it is still there)."""
    parts: dict[str, dict[str, Any] | None] = {
        **dict.fromkeys(estimate.get("unmeasured") or []),
        **(estimate.get("parts") or {}),
    }
    parts = {k: v for k, v in parts.items() if not k.startswith(DATABASE_PART)}
    parts[f"{DATABASE_PART}{_WAY_WORDS[way]}"] = found
    return _summed(parts)


def _summed(parts: dict[str, dict[str, Any] | None]) -> dict[str, Any]:
    measured = {k: v for k, v in parts.items() if v is not None}
    unmeasured = [k for k, v in parts.items() if v is None]
    total = round(sum(v["seconds"] for v in measured.values()), 1)
    if not total:  # only the parts with nothing to do: nothing was measured
        total = None
        text = "no measured durations in the ledger yet"
    else:
        text = f"~{total:g} s" + (
            f" plus {', '.join(unmeasured)} (not measured)" if unmeasured else ""
        )
    return {"seconds": total, "text": text, "parts": measured, "unmeasured": unmeasured}
