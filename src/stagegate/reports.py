"""Reports: report.json, report.md, junit.xml and report.html, written at the end of every run.

`build_report` assembles one dictionary (the report.json contract of BRIEF.md plus the
summary tables the other formats show); `write_reports` redacts secrets from it and writes
all four files atomically into the report directory. A run that stopped early still gets a
report: its `stopped` field says in which phase and why, and the verdict is NO_GO.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from ansible_collections.stagegate.release.plugins.module_utils._state_files import (
    ensure_dir,
    write_atomic,
)

from stagegate.bands import UNITS, convert, dimension
from stagegate.gates import GateResult
from stagegate.grading import is_failure
from stagegate.redact import redact  # the one redaction (module_utils/_checks_redact.py)
from stagegate.results import CheckResult, Status
from stagegate.trend import polyline
from stagegate.verdict import Verdict, check_blocks, gate_blocks

REPORT_FILES = ("report.json", "report.md", "junit.xml", "report.html")
_VERDICT_TEXT = {"GO": "GO", "GO_WITH_WARNINGS": "GO WITH WARNINGS", "NO_GO": "NO-GO"}
_VERDICT_ICON = {"GO": "✅", "GO_WITH_WARNINGS": "⚠️", "NO_GO": "❌"}
_STATUS_ICON = {"PASS": "✅", "WARN": "⚠️", "FAIL": "❌", "ERROR": "❌", "SKIP": "⏭️"}
_LATENCY_METRICS = ("avg_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms")


# ---- assembly ------------------------------------------------------------------------------


def _category_rows(checks: list[CheckResult]) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for check in checks:
        row = rows.setdefault(
            check.group,
            {
                "category": check.group,
                "checks": 0,
                "passed": 0,
                "warned": 0,
                "failed": 0,
                "skipped": 0,
            },
        )
        row["checks"] += 1
        key = {Status.PASS: "passed", Status.WARN: "warned", Status.SKIP: "skipped"}.get(
            check.status, "failed"
        )
        row[key] += 1
    for row in rows.values():
        ran = row["checks"] - row["skipped"]
        row["success_rate"] = round((row["passed"] + row["warned"]) / ran * 100, 1) if ran else None
    return list(rows.values())


def _issue(title: str, kind: str, **fields: str) -> dict[str, Any]:
    """One issue: title, kind, category, status, severity, impact, recommendation."""
    return {"title": title, "kind": kind, **fields}


def _severity(blocks: bool, status: Status) -> str:
    """High: it makes the run NO_GO (the verdict's own rule); Medium: another failure; Low."""
    if blocks:
        return "High"
    return "Medium" if is_failure(status) else "Low"


def _issues(
    checks: list[CheckResult],
    gates: list[GateResult],
    advice: list[dict[str, Any]],
    verdict: Verdict,
) -> list[dict[str, Any]]:
    """Every blocker and every check or gate that did not pass, with severity, impact and a
    recommendation. The High issues are exactly the verdict's blockers, so the summary's
    "N critical issues" and this list tell one story."""
    issues = [
        _issue(
            "run",
            "run",
            category="run",
            status="NO_GO",
            severity="High",
            impact=line,
            recommendation="Fix before promoting; re-run.",
        )
        for line in verdict.run_blockers
    ]
    for check in checks:
        if check.status in (Status.PASS, Status.SKIP):
            continue
        recommendation = check.details.get("recommendation") or _default_advice(check)
        issues.append(
            _issue(
                check.name,
                "check",
                category=check.group,
                status=str(check.status),
                severity=_severity(check_blocks(check), check.status),
                impact=check.message or f"{check.name} is {check.status}",
                recommendation=str(recommendation),
            )
        )
    for gate in gates:
        if gate.status in (Status.PASS, Status.SKIP):
            continue
        matching = [a["advice"] for a in advice if gate.name in a["because"]]
        fallback = (
            "Fix before promoting." if is_failure(gate.status) else "Review before promoting."
        )
        issues.append(
            _issue(
                gate.name,
                "gate",
                category=gate.category,
                status=str(gate.status),
                severity=_severity(gate_blocks(gate), gate.status),
                impact=gate.message,
                recommendation="; ".join(matching) or fallback,
            )
        )
    order = {"High": 0, "Medium": 1, "Low": 2}
    return sorted(issues, key=lambda i: order[i["severity"]])


def _default_advice(check: CheckResult) -> str:
    if check.type == "manual":
        return f"Have a named person confirm it (stagegate_manual_confirmations.{check.name})."
    if check.status is Status.ERROR:
        return "The check could not run: fix the check or the target, then re-run."
    return "Fix before promoting." if is_failure(check.status) else "Review before promoting."


def _rollback(
    auto_rollback: Mapping[str, Any] | None, plan: Mapping[str, Any] | None
) -> dict[str, Any]:
    """What happens next on NO_GO: the automatic rollback (whether it runs, to which release,
    where its report goes), as the gate was told (`stagegate.gatekeeper`)."""
    info = dict(auto_rollback or {})
    target = (plan or {}).get("target") or {}
    release = target.get("release") if isinstance(target, Mapping) else None
    enabled = info.get("enabled")
    return {
        "automatic": None if enabled is None else bool(enabled),
        "runs": bool(info.get("runs")),
        "reason": str(info.get("reason", "")),
        "target": release,
        "report_dir": info.get("report_dir"),
        "report": info.get("report"),
        "returned": info.get("returned"),
        "nothing_deployed": bool(info.get("nothing_deployed")),
    }


def _performance(checks: list[CheckResult], gates: list[GateResult]) -> list[dict[str, Any]]:
    rows = []
    for check in checks:
        figures = {m: check.metrics[m] for m in _LATENCY_METRICS if m in check.metrics}
        if figures:
            rows.append(
                {
                    "name": check.name,
                    "status": str(check.status),
                    "threshold": check.threshold,
                    **figures,
                }
            )
    for gate in gates:
        if (
            gate.type == "value"
            and isinstance(gate.value, int | float)
            and "ms" in str(gate.threshold)
        ):
            rows.append(
                {
                    "name": gate.name,
                    "status": str(gate.status),
                    "threshold": gate.threshold,
                    "value_ms": gate.value,
                }
            )
    return rows


def _sign_off(checks: list[CheckResult]) -> list[dict[str, Any]]:
    rows = []
    for row in _category_rows(checks):
        group = [c for c in checks if c.group == row["category"]]
        status = "PASS"
        if any(is_failure(c.status) for c in group):
            status = "FAIL"
        elif any(c.status is Status.WARN for c in group):
            status = "WARN"
        confirmed: list[dict[str, str]] = [
            c.details["confirmed"] for c in group if c.details.get("confirmed")
        ]
        # a manual item nobody confirmed yet is not validated by stagegate: it waits for a person
        pending = [c.name for c in group if c.type == "manual" and not c.details.get("confirmed")]
        validators = sorted({c["by"] for c in confirmed})
        if pending:
            validators.append(f"pending: {', '.join(pending)}")
        rows.append(
            {
                "category": row["category"],
                "result": status,
                "validator": ", ".join(validators) or "stagegate",
                "date": max((c["at"] for c in confirmed if c.get("at")), default=""),
            }
        )
    return rows


def _ledger_warnings(warnings: Iterable[str], rollback_plan: Mapping[str, Any] | None) -> list[str]:
    """The ledger lines this run's reads skipped, each once, in the order they were named."""
    planned = (rollback_plan or {}).get("ledger_warnings") or []
    return list(dict.fromkeys(str(w) for w in (*warnings, *planned)))


# What a run did: promoted a release (staging.yml), validated what runs (validate.yml), brought
# a release back (rollback.yml) or restored its database (restore.yml).
KINDS = ("promotion", "validation", "rollback", "restore")


def title(report: Mapping[str, Any]) -> str:
    """The report's title: what the run did, to which release."""
    release = report["release"]
    kind = report.get("kind", "promotion")
    if kind == "rollback":
        return f"Rollback Report: {release['version']} (rolled back from {release['previous']})"
    if kind == "restore":
        return f"Database Restore Report: {release['version']}"
    return f"Staging Validation Report: {release['version']}"


def build_report(
    *,
    release: str,
    previous: str | None,
    checks: list[CheckResult],
    gates: list[GateResult],
    verdict: Verdict,
    phases: Iterable[Mapping[str, Any]] = (),
    recommendations: list[dict[str, Any]] | None = None,
    rollback_plan: Mapping[str, Any] | None = None,
    stopped: Mapping[str, str] | None = None,
    environment: str = "staging",
    run_by: str = "",
    started: str | None = None,
    finished: str | None = None,
    baseline_release: str | None = None,
    auto_rollback: Mapping[str, Any] | None = None,
    ledger_warnings: Iterable[str] = (),
    resumed: Mapping[str, Any] | None = None,
    check_mode: bool = False,
    kind: str = "promotion",
) -> dict[str, Any]:
    """The report dictionary (report.json); no secret redaction yet (see `write_reports`).

    `check_mode`: the run was `--check`; the reports say so at the top (`CHECK_MODE_NOTE`).
    `kind`: what the run did (`KINDS`); the title, headline and sign-off line say so.

    `ledger_warnings` are what the run's ledger reads skipped (a torn final line, a corrupt
    line); the rollback plan's own `ledger_warnings` join them, each named once.
    """
    advice = recommendations or []
    now = datetime.now(UTC).isoformat(timespec="seconds")
    passed = sum(c.status in (Status.PASS, Status.WARN) for c in checks)
    ran = sum(c.status is not Status.SKIP for c in checks)
    if kind not in KINDS:
        raise ValueError(f"kind: {kind!r} is not one of {', '.join(KINDS)}")
    return {
        "kind": kind,
        "check_mode": check_mode,
        "verdict": str(verdict.decision),
        "score": verdict.score,
        "score_status": str(verdict.score_status),
        "policy": verdict.policy,
        "release": {"version": release, "previous": previous, "baseline": baseline_release},
        "environment": environment,
        "run_by": run_by,
        "started": started or now,
        "finished": finished or now,
        "stopped": dict(stopped) if stopped else None,
        "phases": [
            {
                "name": str(p["name"]),
                "status": str(p.get("status", "ok")),
                "seconds": round(float(p.get("seconds") or 0), 3),
                **({"note": str(p["note"])} if p.get("note") else {}),
            }
            for p in phases
        ],
        "summary": {
            "checks": len(checks),
            "ran": ran,
            "passed": passed,
            "failed": sum(is_failure(c.status) for c in checks),
            "warned": sum(c.status is Status.WARN for c in checks),
            "skipped": len(checks) - ran,
            "success_rate": round(passed / ran * 100, 1) if ran else None,
            "gates": len(gates),
            "gates_passed": sum(g.status is Status.PASS for g in gates),
            "critical_issues": len(verdict.blockers),
        },
        "rollback": _rollback(auto_rollback, rollback_plan),
        "blockers": verdict.blockers,
        "warnings": verdict.warnings,
        "ledger_warnings": _ledger_warnings(ledger_warnings, rollback_plan),
        "resumed": dict(resumed) if resumed else None,
        "categories": _category_rows(checks),
        "checks": [c.to_dict() for c in checks],
        "gates": [g.to_dict() for g in gates],
        "issues": _issues(checks, gates, advice, verdict),
        "recommendations": advice,
        "performance": _performance(checks, gates),
        "manual": [c.to_dict() for c in checks if c.type == "manual"],
        "rollback_plan": dict(rollback_plan) if rollback_plan else None,
        "sign_off": _sign_off(checks),
        "generated_at": now,
    }


# ---- renderers -------------------------------------------------------------------------------


def render_json(report: Mapping[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=False, default=str) + "\n"


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(headers: list[str], rows: Iterable[Iterable[Any]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def _fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(", ", ": "))
    return "" if value is None else str(value)


# ---- units as people read them -----------------------------------------------------------------

_SIZE_STEPS = (("TB", 1024.0**4), ("GB", 1024.0**3), ("MB", 1024.0**2), ("KB", 1024.0))


def _human_size(size: float) -> str:
    for name, factor in _SIZE_STEPS:
        if abs(size) >= factor:
            return f"{size / factor:.1f} {name}"
    return f"{size:g} B"


def _human_time(ms: float) -> str:
    if abs(ms) < 1000:
        return f"{round(ms, 1):g} ms"
    if abs(ms) < 120_000:
        return f"{round(ms / 1000, 2):g} s"
    minutes, seconds = divmod(round(ms / 1000), 60)
    return f"{minutes} min {seconds} s"


def phase_status(phase: Mapping[str, Any]) -> str:
    """A phase's status as the reports show it: with the reason it was skipped, when given."""
    note = phase.get("note")
    return f"{phase['status']} ({note})" if note else str(phase["status"])


def human(value: Any, unit: str = "") -> str:
    """A figure in the unit people read it in: `12.3 GB`, `48 ms`, `1.4 s`, `2 min 5 s`, `97.5%`.

    `unit` is a band unit (ms, s, b, kb, mb, gb, %, or none); sizes are binary (1 GB = 1024³ B).
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _fmt_value(value)
    unit = unit.lower()
    kind = dimension(unit) if unit in UNITS else ""
    if kind == "size":
        return _human_size(convert(value, unit, "b"))
    if kind == "time" and unit in ("ms", "s"):
        return _human_time(convert(value, unit, "ms"))
    if unit == "%":
        return f"{round(value, 1):g}%"
    return f"{round(value, 3):g}" + (f" {unit}" if unit else "")


def metric_unit(name: str) -> str:
    """The unit a metric's name says it is in (`p95_ms`, `free_mb`, `pass_rate`, `seconds`)."""
    for suffix, unit in (("_ms", "ms"), ("_mb", "mb"), ("_bytes", "b"), ("_percent", "%")):
        if name.endswith(suffix):
            return unit
    if name.endswith("rate"):
        return "%"
    if name == "seconds" or name.endswith("_seconds"):
        return "s"
    return ""


def measured(check: Mapping[str, Any]) -> str:
    """What a check measured, for a report cell: its graded measurements in readable units,
    else its value."""
    figures = [
        f"{m['name']} {human(m.get('value'), str(m.get('unit', '')))}"
        for m in (check.get("details") or {}).get("measurements") or []
        if isinstance(m, Mapping) and "name" in m
    ]
    return ", ".join(figures) if figures else _fmt_value(check.get("value"))


def _ms(value: Any) -> str:
    return human(value, "ms") if isinstance(value, int | float) else ""


# ---- the story both human-readable reports tell -----------------------------------------------


_ICON_STATUS = {"✅": "PASS", "⚠️": "WARN", "❌": "FAIL", "⏭️": "SKIP", "↔️": "INFO"}


def key_results(report: Mapping[str, Any]) -> list[dict[str, str]]:
    """The executive summary's key results as {icon, status, text}; report.md shows the icon,
    report.html a coloured status word, for the same lines. A green PASS only where
    something was checked and nothing failed."""
    lines = _key_results(report)
    return [{**line, "status": _ICON_STATUS.get(line["icon"], "INFO")} for line in lines]


def _key_results(report: Mapping[str, Any]) -> list[dict[str, str]]:
    s = report["summary"]
    if s["ran"]:
        rate = f"{s['success_rate']}%"
        warned = f", {s['warned']} with warnings" if s["warned"] else ""
        icon = "✅" if s["failed"] == 0 and not s["warned"] else "⚠️" if s["failed"] == 0 else "❌"
        checks = f"{s['passed']} of {s['ran']} checks passed ({rate} success rate{warned})"
    else:
        icon, checks = "❌" if report["verdict"] == "NO_GO" else "⚠️", "no check ran"
    lines = [{"icon": icon, "text": checks}]
    if s["gates"]:
        # a red cross when a critical gate failed (it makes the run NO_GO), a warning otherwise
        blocking = any(g["critical"] and is_failure(Status(g["status"])) for g in report["gates"])
        icon = "✅" if s["gates_passed"] == s["gates"] else "❌" if blocking else "⚠️"
        lines.append({"icon": icon, "text": f"{s['gates_passed']} of {s['gates']} gates passed"})
    else:
        stopped = report.get("stopped") or {}
        why = f" (the run stopped in {stopped.get('phase')})" if stopped else ""
        lines.append({"icon": _STATUS_ICON["SKIP"], "text": f"no gate was evaluated{why}"})
    n = s["critical_issues"]
    lines.append(
        {
            "icon": "✅" if n == 0 else "❌",
            "text": f"{n} critical issue{'' if n == 1 else 's'} identified",
        }
    )
    for row in report["performance"][:3]:
        figure = row.get("p95_ms", row.get("value_ms", row.get("avg_ms")))
        label = "p95" if "p95_ms" in row else "value" if "value_ms" in row else "avg"
        threshold = f" ({row['threshold']})" if row.get("threshold") else ""
        lines.append(
            {
                "icon": _STATUS_ICON[row["status"]],
                "text": f"{row['name']}: {label} {_ms(figure)}{threshold}",
            }
        )
    if report["release"].get("baseline"):
        lines.append(
            {
                "icon": "↔️",
                "text": f"compared with last good release {report['release']['baseline']}",
            }
        )
    return lines


def headline(report: Mapping[str, Any], markdown: bool = False) -> str:
    """The first sentence of the executive summary (with Markdown emphasis for report.md)."""
    bold = (lambda t: f"**{t}**") if markdown else (lambda t: t)
    if report["stopped"]:
        stop = report["stopped"]
        phase = f"`{stop.get('phase')}`" if markdown else str(stop.get("phase"))
        after = {
            "rollback": "Re-run playbooks/rollback.yml: it resumes where this run stopped.",
            "restore": "The database may be half restored: re-run playbooks/restore.yml, which "
            "restores again from the start.",
        }.get(
            report.get("kind", "promotion"),
            "The release was not validated and must not be promoted.",
        )
        return f"The run {bold(f'stopped in phase {phase}')}: {stop.get('reason')}. {after}"
    release = report["release"]
    what = {
        "rollback": f"The rollback from {bold(str(release['previous']))} to "
        f"{bold(release['version'])}",
        "restore": f"The database restore under {bold(release['version'])}",
    }.get(report.get("kind", "promotion"), f"Staging validation of {bold(release['version'])}")
    return (
        f"{what} ended with verdict "
        f"{bold(_VERDICT_TEXT[report['verdict']])} and a readiness score of "
        f"{bold(str(report['score']) + '%')}."
    )


def rollback_note(report: Mapping[str, Any]) -> str | None:
    """What happens to a NO_GO release: the automatic rollback and where its report goes."""
    info = report.get("rollback") or {}
    if report["verdict"] != "NO_GO" or info.get("automatic") is None:
        return None  # not a promotion (e.g. the rollback's own report): nothing to say
    target = f" to {info['target']}" if info.get("target") else ""
    if info.get("returned") is not None:
        return _returned_note(info["returned"])
    if info.get("nothing_deployed"):
        return nothing_to_roll_back(report)
    if info.get("runs"):
        where = f"; its report: {info['report']}" if info.get("report") else ""
        return f"Automatic rollback{target} runs next (stagegate_auto_rollback){where}."
    if info.get("automatic"):
        return f"No automatic rollback: {info.get('reason') or 'nothing was deployed'}."
    return (
        f"Not rolled back automatically (stagegate_auto_rollback is off): roll back{target} "
        "with playbooks/rollback.yml."
    )


def nothing_to_roll_back(report: Mapping[str, Any]) -> str:
    """A promotion that stopped before its deploy: the release that ran still runs."""
    previous = report["release"]["previous"]
    runs = f"{previous} still runs" if previous else "nothing ran before it"
    return f"Nothing to roll back: {report['rollback']['reason']}; {runs}."


def _returned_note(returned: Mapping[str, str]) -> str:
    """A fleet's stopped rollout: the hosts it moved came back (or did not), the others never
    left the release they ran."""
    if not returned:
        return "The rollout stopped before it moved a host: nothing to roll back."
    # fleet_return.yml's words: "back on <release>", "app tier stopped (a first deploy ...)"
    # or "NOT returned (...)"; only the last leaves a host to roll back.
    not_back = [host for host, how in returned.items() if how.startswith("NOT returned")]
    back = [f"{host} {how}" for host, how in returned.items() if host not in not_back]
    said = f"The stopped rollout returned {', '.join(back)}" if back else "The stopped rollout"
    if not not_back:
        return f"{said}; the other hosts never left the release they ran: nothing to roll back."
    return (
        f"{said}; {', '.join(not_back)} NOT returned: roll "
        f"{'it' if len(not_back) == 1 else 'them'} back with playbooks/rollback.yml "
        "(it plans only the hosts not on the release the fleet runs)."
    )


def _md_summary(report: Mapping[str, Any]) -> list[str]:
    lines = ["## Executive Summary", "", headline(report, markdown=True), "", "**Key Results:**"]
    lines += [f"- {r['icon']} **{r['text']}**" for r in key_results(report)]
    note = rollback_note(report)
    info = report.get("rollback") or {}
    if note:
        link = info.get("report")
        if info.get("runs") and link:
            note = note.replace(str(link), f"[{link}]({link})")
        lines += ["", f"**Rollback:** {note}"]
    return [*lines, ""]


def resumed_note(report: Mapping[str, Any]) -> str | None:
    """What this run resumed: the deploy an earlier run began and never finished."""
    resumed = report.get("resumed")
    if not resumed:
        return None
    backup = resumed.get("backup") or {}
    kept = backup.get("path") or backup.get("archive") if isinstance(backup, Mapping) else backup
    migrations = ", ".join(resumed.get("migrations") or []) or "none"
    return (
        f"This run resumed the deploy of {resumed.get('release')} that run "
        f"{resumed.get('run_id') or '?'} began at {resumed.get('started_at') or '?'} and never "
        f"finished (interrupted during its {resumed.get('step') or 'deploy'}; migrations it was "
        f"applying: {migrations}). The release before it is {resumed.get('previous_release')}; "
        f"the backup taken before it, {kept or 'none'}, stays the one a rollback restores."
    )


def _md_ledger(report: Mapping[str, Any]) -> list[str]:
    warnings = report.get("ledger_warnings") or []
    if not warnings:
        return []
    return [
        "**Ledger warnings** (lines this run's reads skipped in the release ledger):",
        "",
        *[f"- ⚠️ {w}" for w in warnings],
        "",
    ]


def _md_checks(report: Mapping[str, Any]) -> list[str]:
    lines = ["## 2. Check Results", "", "### Results Summary", ""]
    cats = report["categories"]
    total = report["summary"]
    rate = f"{total['success_rate']}%" if total["success_rate"] is not None else "n/a"
    rows = [
        [
            c["category"],
            c["checks"],
            c["passed"],
            c["warned"],
            c["failed"],
            f"{c['success_rate']}%" if c["success_rate"] is not None else "n/a",
        ]
        for c in cats
    ]
    rows.append(
        [
            "**Total**",
            f"**{total['checks']}**",
            f"**{total['passed'] - total['warned']}**",
            f"**{total['warned']}**",
            f"**{total['failed']}**",
            f"**{rate}**",
        ]
    )
    lines += _table(["Category", "Checks", "Passed", "Warned", "Failed", "Success Rate"], rows)
    lines += ["", "### Check Details", ""]
    lines += _table(
        ["Check", "Category", "Status", "Severity", "Measured", "Threshold", "Time", "Message"],
        [
            [
                c["name"],
                c["group"],
                f"{_STATUS_ICON[c['status']]} {c['status']}",
                c["severity"],
                measured(c),
                c["threshold"] or "",
                human(c["duration_ms"], "ms"),
                c["message"],
            ]
            for c in report["checks"]
        ],
    )
    return [*lines, "", *_md_hosts(report)]


def host_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A fleet's results by host (report.json `hosts`), failing hosts first: one row per host
    and check, for the Markdown and HTML tables."""
    return [
        {"host": host, "host_status": data["status"], **check}
        for host, data in (report.get("hosts") or {}).items()
        for check in data["checks"]
    ]


def trend_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The `trend` gates' points (details.trend: the runs of this release, this one last),
    with an SVG polyline of them for the HTML report and the values for Markdown."""
    rows = []
    for gate in report["gates"]:
        found = (gate.get("details") or {}).get("trend")
        if not found:
            continue
        values = [float(point["value"]) for point in found]
        rows.append(
            {
                "name": gate["name"],
                "status": gate["status"],
                "metric": gate["details"].get("metric", ""),
                "values": values,
                "runs": [str(point.get("at") or point.get("run")) for point in found],
                "polyline": polyline(values),
                "low": min(values),
                "high": max(values),
            }
        )
    return rows


def _md_trends(report: Mapping[str, Any]) -> list[str]:
    lines = [
        f"- Trend of **{row['name']}** ({row['metric']}, {len(row['values'])} runs, this one "
        f"last): " + " → ".join(f"{value:g}" for value in row["values"])
        for row in trend_rows(report)
    ]
    return [*lines, ""] if lines else []


def _md_hosts(report: Mapping[str, Any]) -> list[str]:
    hosts = report.get("hosts") or {}
    if not hosts:
        return []
    lines = ["### Results by Host", ""]
    lines += _table(
        ["Host", "Status", "Checks", "Failed"],
        [
            [h, f"{_STATUS_ICON[d['status']]} {d['status']}", len(d["checks"]),
             ", ".join(d["failed"]) or "none"]
            for h, d in hosts.items()
        ],
    )  # fmt: skip
    lines += [""]
    lines += _table(
        ["Host", "Check", "Status", "Measured", "Time", "Message"],
        [
            [r["host"], r["check"], f"{_STATUS_ICON[r['status']]} {r['status']}", measured(r),
             human(r.get("duration_ms"), "ms"), r.get("message") or ""]
            for r in host_rows(report)
        ],
    )  # fmt: skip
    return [*lines, ""]


def _md_issues(report: Mapping[str, Any]) -> list[str]:
    lines = ["## 4. Issues Identified", ""]
    if not report["issues"]:
        return [*lines, "None.", ""]
    for severity, title in (
        ("High", "Critical Issues"),
        ("Medium", "Major Issues"),
        ("Low", "Minor Issues"),
    ):
        found = [i for i in report["issues"] if i["severity"] == severity]
        if not found:
            continue
        lines += [f"#### {title} ({len(found)})", ""]
        for n, issue in enumerate(found, start=1):
            lines += [
                f"{n}. **{issue['title']}** ({issue['kind']}, {issue['status']})",
                f"   - Severity: {issue['severity']}",
                f"   - Impact: {issue['impact']}",
                f"   - Recommendation: {issue['recommendation']}",
            ]
        lines.append("")
    return lines


# An unset field of a rollback plan (a link the target has none of, an estimate not measured
# yet, no image to rebuild): a word in its place, not an empty `link: `.
_UNSET = "—"


def _plain(value: Any) -> str:
    """A value as words on one line for a table cell: `id: sha256:1d2f, action: retag`; an
    unset or empty value as _UNSET, a multi-line text (a diff stat) on one line."""
    if isinstance(value, Mapping):
        text = ", ".join(f"{k}: {_plain(v)}" for k, v in value.items())
    elif isinstance(value, list | tuple):
        text = ", ".join(_plain(v) for v in value)
    else:
        text = " ".join(_fmt_value(value).split())
    return text or _UNSET


def plan_rows(plan: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The rollback plan as rows {key, text, items, table} for both renderers: a scalar (or an
    empty list or mapping) as text, a list as numbered items, a mapping as a small table of its
    own."""
    rows = []
    for key, value in (plan or {}).items():
        row: dict[str, Any] = {"key": str(key), "text": "", "items": [], "table": []}
        if isinstance(value, list) and value:
            row["items"] = [_plain(v) for v in value]
        elif isinstance(value, Mapping) and value:
            row["table"] = [[str(k), _plain(v)] for k, v in value.items()]
        else:
            row["text"] = _plain(value)
        rows.append(row)
    return rows


# A first deploy has no release to return to; a fleet promotion plans no rollback of its own.
_NO_ROLLBACK_PLAN = (
    "No rollback plan recorded for this run. A first deploy has no release to return to; a "
    "fleet promotion records none (playbooks/rollback.yml --check prints the fleet's)."
)


# validate.yml's runs (the only reports without a plan that are not promotions).
_VALIDATION_NO_ROLLBACK_PLAN = (
    "No rollback plan: this run validated what runs and changed nothing (validate.yml). "
    "For a release stagegate deployed, playbooks/rollback.yml --check prints its plan."
)


def no_rollback_plan(report: Mapping[str, Any]) -> str:
    """Section 7 of a report without a rollback plan: why there is none."""
    rollback = report.get("rollback") or {}
    if rollback.get("nothing_deployed"):
        return nothing_to_roll_back(report)
    if rollback.get("automatic") is None:
        return _VALIDATION_NO_ROLLBACK_PLAN
    return _NO_ROLLBACK_PLAN


def _md_rollback(report: Mapping[str, Any]) -> list[str]:
    lines = ["## 7. Rollback Plan", ""]
    plan = report["rollback_plan"]
    if not plan:
        return [*lines, no_rollback_plan(report), ""]
    for row in plan_rows(plan):
        if row["items"]:
            lines.append(f"- **{row['key']}:**")
            lines += [f"  {n}. {item}" for n, item in enumerate(row["items"], start=1)]
        elif row["table"]:
            lines.append(f"- **{row['key']}:** " + "; ".join(f"{k}: {v}" for k, v in row["table"]))
        else:
            lines.append(f"- **{row['key']}:** {row['text']}")
    return [*lines, ""]


CHECK_MODE_NOTE = "Check mode: nothing was changed; the verdict grades the running release"
_NO_PHASES = {
    "validation": "No phase timings: a validation-only run has no phases.",
    "rollback": "No phase timings: a rollback grades its verification inside its rollback "
    "phase; section 7 says what it did.",
    "restore": "No phase timings: a restore grades its verification inside the restore; "
    "section 7 says what it did.",
}


def no_phases(report: Mapping[str, Any]) -> str:
    """Section 1 of a report without phase timings: why there are none."""
    return _NO_PHASES.get(
        report.get("kind", "promotion"),
        "No phase timings: no phase had ended when this run was graded.",
    )


def render_markdown(report: Mapping[str, Any]) -> str:
    verdict = report["verdict"]
    release = report["release"]
    lines = [
        f"# {title(report)}",
        "",
        *([f"> **{CHECK_MODE_NOTE}**", ""] if report.get("check_mode") else []),
        f"**Release:** {release['version']} (previous: {release['previous'] or 'none'})  ",
        f"**Environment:** {report['environment']}  ",
        f"**Date:** {report['finished']}  ",
        f"**Run by:** {report['run_by'] or 'unknown'}  ",
        f"**Verdict:** {_VERDICT_ICON[verdict]} {_VERDICT_TEXT[verdict]}  ",
        f"**Readiness score:** {report['score']}%"
        + (f" (policy: {report['policy']})" if report["policy"] else ""),
        "",
        *_md_summary(report),
        *([f"**Resumed:** {note}", ""] if (note := resumed_note(report)) else []),
        *_md_ledger(report),
        "## 1. Phases",
        "",
        *(
            _table(
                ["Phase", "Status", "Duration"],
                [[p["name"], phase_status(p), human(p["seconds"], "s")] for p in report["phases"]],
            )
            if report["phases"]
            else [no_phases(report)]
        ),
        "",
        *_md_checks(report),
        "## 3. Gates",
        "",
        *_table(
            ["Gate", "Status", "Critical", "Value", "Threshold", "Detail"],
            [
                [
                    g["name"],
                    f"{_STATUS_ICON[g['status']]} {g['status']}",
                    "yes" if g["critical"] else "no",
                    _fmt_value(g["value"]),
                    g["threshold"] or "",
                    g["message"],
                ]
                for g in report["gates"]
            ],
        ),
        "",
        *_md_trends(report),
        *_md_issues(report),
        "## 5. Recommendations",
        "",
        *([f"- {r['advice']}" for r in report["recommendations"]] or ["None."]),
        "",
        "## 6. Performance Metrics",
        "",
        *(
            _table(
                ["Check", "avg", "p95", "Value", "Threshold", "Status"],
                [
                    [
                        r["name"],
                        _ms(r.get("avg_ms")),
                        _ms(r.get("p95_ms")),
                        _ms(r.get("value_ms")),
                        r.get("threshold") or "",
                        f"{_STATUS_ICON[r['status']]} {r['status']}",
                    ]
                    for r in report["performance"]
                ],
            )
            if report["performance"]
            else ["No latency measured."]
        ),
        "",
        *_md_rollback(report),
        "## 8. Manual Checklist",
        "",
        *(
            _table(
                ["Item", "Status", "Detail"],
                [[m["name"], m["value"], m["message"]] for m in report["manual"]],
            )
            if report["manual"]
            else ["No manual items declared."]
        ),
        "",
        "## 9. Validation Sign-Off",
        "",
        *_table(
            ["Category", "Result", "Validator", "Date"],
            [[s["category"], s["result"], s["validator"], s["date"]] for s in report["sign_off"]],
        ),
        "",
        f"**Approval status:** {_VERDICT_ICON[verdict]} {approval(report)}",
        "",
        "---",
        "",
        f"**Generated by:** stagegate, {report['generated_at']}",
        "",
    ]
    return "\n".join(lines)


def approval(report: Mapping[str, Any]) -> str:
    """The sign-off line; rolling back is advice for a promotion only (not for validate.yml's
    runs or a rollback's own report, whose `rollback.automatic` is None)."""
    if report.get("kind") in ("rollback", "restore"):
        return {
            "GO": "VERIFIED (the release runs and passes its checks)",
            "GO_WITH_WARNINGS": "VERIFIED WITH WARNINGS (an approver must accept them)",
            "NO_GO": "NOT VERIFIED (fix the critical issues)",
        }[report["verdict"]]
    promotion = (report.get("rollback") or {}).get("automatic") is not None
    return {
        "GO": "APPROVED FOR PROMOTION",
        "GO_WITH_WARNINGS": "CONDITIONAL (an approver must accept the warnings)",
        "NO_GO": f"NOT APPROVED (fix the critical issues{', or roll back' if promotion else ''})",
    }[report["verdict"]]


def render_junit(report: Mapping[str, Any]) -> str:
    """JUnit XML: a testsuite per check group and one for the gates; a testcase each."""
    root = ET.Element("testsuites", name=f"stagegate {report['release']['version']}")
    suites: dict[str, list[Mapping[str, Any]]] = {}
    for check in report["checks"]:
        suites.setdefault(check["group"], []).append(check)
    gates: list[Mapping[str, Any]] = [
        {"name": g["name"], "status": g["status"], "message": g["message"], "duration_ms": 0}
        for g in report["gates"]
    ]
    if gates:
        suites["gates"] = gates
    for host, data in (report.get("hosts") or {}).items():  # a fleet: a suite per host
        suites[f"host {host}"] = [
            {"name": c["check"], "duration_ms": 0, **c} for c in data["checks"]
        ]
    for name, cases in suites.items():
        suite = ET.SubElement(root, "testsuite", name=name, tests=str(len(cases)))
        counts = {"failures": 0, "errors": 0, "skipped": 0}
        for case in cases:
            element = ET.SubElement(
                suite,
                "testcase",
                classname=f"stagegate.{name.replace(' ', '.')}",
                name=case["name"],
                time=f"{case['duration_ms'] / 1000:.3f}",
            )
            status, message = case["status"], case["message"] or case["status"]
            if status == "FAIL":
                ET.SubElement(element, "failure", message=message, type="FAIL").text = message
                counts["failures"] += 1
            elif status == "ERROR":
                ET.SubElement(element, "error", message=message, type="ERROR").text = message
                counts["errors"] += 1
            elif status == "SKIP":
                ET.SubElement(element, "skipped", message=message)
                counts["skipped"] += 1
            elif status == "WARN":
                ET.SubElement(element, "system-out").text = f"WARN: {message}"
        suite.attrib.update({k: str(v) for k, v in counts.items()})
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


@cache
def _html_environment() -> jinja2.Environment:
    """Jinja2 with autoescape on: every value from a report is escaped where it is written."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("stagegate", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(human=human, measured=measured, value=_fmt_value, phase_status=phase_status)
    return env


def render_html(report: Mapping[str, Any]) -> str:
    """One self-contained page from `templates/report.html.j2` (inline CSS and JS; the charts
    are drawn as inline SVG by the JS from the report data embedded as JSON)."""
    template = _html_environment().get_template("report.html.j2")
    return template.render(
        report=report,
        verdict_text=_VERDICT_TEXT[report["verdict"]],
        approval=approval(report),
        headline=headline(report),
        key_results=key_results(report),
        rollback_note=rollback_note(report),
        title=title(report),
        no_phases=no_phases(report),
        resumed_note=resumed_note(report),
        check_mode_note=CHECK_MODE_NOTE if report.get("check_mode") else None,
        plan_rows=plan_rows(report["rollback_plan"]),
        no_rollback_plan=no_rollback_plan(report),
        host_rows=host_rows(report),
        trend_rows=trend_rows(report),
        chart_data={
            "checks": report["checks"],
            "phases": report["phases"],
            "performance": report["performance"],
        },
    )


# ---- writing ---------------------------------------------------------------------------------

REPORT_DIR = "stagegate_report_dir"  # named in a write error: the variable that places them


def write_reports(
    report: Mapping[str, Any], report_dir: str | Path, secrets: Iterable[str] = ()
) -> dict[str, str]:
    """Redact, then write the four reports; returns {file name: path}."""
    clean = redact(report, secrets)
    directory = Path(report_dir)
    ensure_dir(str(directory), "the report directory", 0o755, setting=REPORT_DIR)
    renderers = {
        "report.json": render_json,
        "report.md": render_markdown,
        "junit.xml": render_junit,
        "report.html": render_html,
    }
    paths = {}
    for name, render in renderers.items():
        path = str(directory / name)  # 0644: CI and AWX collect the reports as artifacts
        write_atomic(path, render(clean), f"the report {name}", 0o644, setting=REPORT_DIR)
        paths[name] = path
    return paths
