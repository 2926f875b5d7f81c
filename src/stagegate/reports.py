"""Reports: report.json, report.md, junit.xml and report.html, written at the end of every run.

`build_report` assembles one dictionary (the report.json contract of BRIEF.md plus the
summary tables the other formats show); `write_reports` redacts secrets from it and writes
all four files atomically into the report directory. A run that stopped early still gets a
report: its `stopped` field says in which phase and why, and the verdict is NO_GO.
"""

from __future__ import annotations

import html
import json
import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from stagegate.gates import GateResult
from stagegate.grading import is_failure
from stagegate.redact import redact  # the one redaction (module_utils/_checks_redact.py)
from stagegate.results import CheckResult, Severity, Status
from stagegate.verdict import Verdict

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


def _issue_severity(status: Status, critical: bool) -> str:
    """High: a critical failure (blocks); Medium: a warning on something critical; else Low."""
    if is_failure(status):
        return "High" if critical else "Medium"
    return "Medium" if critical else "Low"


def _issues(
    checks: list[CheckResult], gates: list[GateResult], advice: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Every check or gate that did not pass, with severity, impact and a recommendation."""
    issues = []
    for check in checks:
        if check.status in (Status.PASS, Status.SKIP):
            continue
        critical = check.severity is Severity.CRITICAL
        issues.append(
            {
                "title": check.name,
                "kind": "check",
                "category": check.group,
                "status": str(check.status),
                "severity": _issue_severity(check.status, critical),
                "impact": check.message or f"{check.name} is {check.status}",
                "recommendation": str(
                    check.details.get("recommendation") or _default_advice(check)
                ),
            }
        )
    for gate in gates:
        if gate.status in (Status.PASS, Status.SKIP):
            continue
        matching = [a["advice"] for a in advice if gate.name in a["because"]]
        issues.append(
            {
                "title": gate.name,
                "kind": "gate",
                "category": gate.category,
                "status": str(gate.status),
                "severity": _issue_severity(gate.status, gate.critical),
                "impact": gate.message,
                "recommendation": "; ".join(matching)
                or (
                    "Fix before promoting."
                    if is_failure(gate.status)
                    else "Review before promoting."
                ),
            }
        )
    order = {"High": 0, "Medium": 1, "Low": 2}
    return sorted(issues, key=lambda i: order[i["severity"]])


def _default_advice(check: CheckResult) -> str:
    if check.type == "manual":
        return f"Have a named person confirm it (stagegate_manual_confirmations.{check.name})."
    if check.status is Status.ERROR:
        return "The check could not run: fix the check or the target, then re-run."
    return "Fix before promoting." if is_failure(check.status) else "Review before promoting."


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
        rows.append(
            {
                "category": row["category"],
                "result": status,
                "validator": ", ".join(sorted({c["by"] for c in confirmed})) or "stagegate",
                "date": max((c["at"] for c in confirmed if c.get("at")), default=""),
            }
        )
    return rows


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
) -> dict[str, Any]:
    """The report dictionary (report.json); no secret redaction yet (see `write_reports`)."""
    advice = recommendations or []
    now = datetime.now(UTC).isoformat(timespec="seconds")
    passed = sum(c.status in (Status.PASS, Status.WARN) for c in checks)
    ran = sum(c.status is not Status.SKIP for c in checks)
    return {
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
        "blockers": verdict.blockers,
        "warnings": verdict.warnings,
        "categories": _category_rows(checks),
        "checks": [c.to_dict() for c in checks],
        "gates": [g.to_dict() for g in gates],
        "issues": _issues(checks, gates, advice),
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


def _md_summary(report: Mapping[str, Any]) -> list[str]:
    s, verdict = report["summary"], report["verdict"]
    rate = f"{s['success_rate']}%" if s["success_rate"] is not None else "n/a"
    lines = ["## Executive Summary", ""]
    if report["stopped"]:
        stop = report["stopped"]
        lines += [
            f"The run **stopped in phase `{stop.get('phase')}`**: {stop.get('reason')}. "
            "The release was not validated and must not be promoted.",
            "",
        ]
    else:
        lines += [
            f"Staging validation of **{report['release']['version']}** ended with verdict "
            f"**{_VERDICT_TEXT[verdict]}** and a readiness score of "
            f"**{report['score']}%**.",
            "",
        ]
    ok = "✅" if s["failed"] == 0 else "❌"
    lines += [
        "**Key Results:**",
        f"- {ok} **{s['passed']} of {s['ran']} checks passed** ({rate} success rate"
        + (f", {s['warned']} with warnings" if s["warned"] else "")
        + ")",
        f"- {'✅' if s['gates_passed'] == s['gates'] else '⚠️'} **{s['gates_passed']} of "
        f"{s['gates']} gates passed**",
        f"- {'✅' if s['critical_issues'] == 0 else '❌'} **{s['critical_issues']} critical "
        f"issue{'' if s['critical_issues'] == 1 else 's'}** identified",
    ]
    for row in report["performance"][:3]:
        figure = row.get("p95_ms", row.get("value_ms", row.get("avg_ms")))
        label = "p95" if "p95_ms" in row else "value" if "value_ms" in row else "avg"
        lines.append(
            f"- {_STATUS_ICON[row['status']]} **{row['name']}:** {label} {_ms(figure)}"
            + (f" ({row['threshold']})" if row.get("threshold") else "")
        )
    if report["release"].get("baseline"):
        lines.append(f"- Compared with last good release **{report['release']['baseline']}**")
    return [*lines, ""]


def _md_checks(report: Mapping[str, Any]) -> list[str]:
    lines = ["## 2. Check Results", "", "### Results Summary", ""]
    cats = report["categories"]
    total = report["summary"]
    rate = f"{total['success_rate']}%" if total["success_rate"] is not None else "n/a"
    rows = [
        [
            c["category"],
            c["checks"],
            c["passed"] + c["warned"],
            c["failed"],
            f"{c['success_rate']}%" if c["success_rate"] is not None else "n/a",
        ]
        for c in cats
    ]
    rows.append(
        [
            "**Total**",
            f"**{total['checks']}**",
            f"**{total['passed']}**",
            f"**{total['failed']}**",
            f"**{rate}**",
        ]
    )
    lines += _table(["Category", "Checks", "Passed", "Failed", "Success Rate"], rows)
    lines += ["", "### Check Details", ""]
    lines += _table(
        ["Check", "Category", "Status", "Severity", "Measured", "Threshold", "Time", "Message"],
        [
            [
                c["name"],
                c["group"],
                f"{_STATUS_ICON[c['status']]} {c['status']}",
                c["severity"],
                _fmt_value(c["value"]),
                c["threshold"] or "",
                f"{c['duration_ms']:.0f} ms",
                c["message"],
            ]
            for c in report["checks"]
        ],
    )
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


def _md_rollback(plan: Mapping[str, Any] | None) -> list[str]:
    lines = ["## 7. Rollback Plan", ""]
    if not plan:
        return [*lines, "No rollback plan recorded for this run (no previous good release).", ""]
    for key, value in plan.items():
        if isinstance(value, list):
            lines.append(f"- **{key}:**")
            lines += [f"  {n}. {_fmt_value(v)}" for n, v in enumerate(value, start=1)]
        else:
            lines.append(f"- **{key}:** {_fmt_value(value)}")
    return [*lines, ""]


def render_markdown(report: Mapping[str, Any]) -> str:
    verdict = report["verdict"]
    release = report["release"]
    lines = [
        f"# Staging Validation Report: {release['version']}",
        "",
        f"**Release:** {release['version']} (previous: {release['previous'] or 'none'})  ",
        f"**Environment:** {report['environment']}  ",
        f"**Date:** {report['finished']}  ",
        f"**Run by:** {report['run_by'] or 'unknown'}  ",
        f"**Verdict:** {_VERDICT_ICON[verdict]} {_VERDICT_TEXT[verdict]}  ",
        f"**Readiness score:** {report['score']}%"
        + (f" (policy: {report['policy']})" if report["policy"] else ""),
        "",
        *_md_summary(report),
        "## 1. Phases",
        "",
        *_table(
            ["Phase", "Status", "Duration"],
            [[p["name"], p["status"], f"{p['seconds']:.1f} s"] for p in report["phases"]],
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
        *_md_issues(report),
        "## 5. Recommendations",
        "",
        *([f"- {r['advice']}" for r in report["recommendations"]] or ["None."]),
        "",
        "## 6. Performance Metrics",
        "",
        *_table(
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
        ),
        "",
        *_md_rollback(report["rollback_plan"]),
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
        f"**Approval status:** {_VERDICT_ICON[verdict]} {_approval(verdict)}",
        "",
        "---",
        "",
        f"**Generated by:** stagegate, {report['generated_at']}",
        "",
    ]
    return "\n".join(lines)


def _ms(value: Any) -> str:
    return f"{round(value, 1):g} ms" if isinstance(value, int | float) else ""


def _approval(verdict: str) -> str:
    return {
        "GO": "APPROVED FOR PROMOTION",
        "GO_WITH_WARNINGS": "CONDITIONAL (an approver must accept the warnings)",
        "NO_GO": "NOT APPROVED (fix the critical issues, or roll back)",
    }[verdict]


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
    for name, cases in suites.items():
        suite = ET.SubElement(root, "testsuite", name=name, tests=str(len(cases)))
        counts = {"failures": 0, "errors": 0, "skipped": 0}
        for case in cases:
            element = ET.SubElement(
                suite,
                "testcase",
                classname=f"stagegate.{name}",
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


def _html_rows(rows: Iterable[Iterable[Any]], status_col: int | None = None) -> str:
    out = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            text = html.escape(_fmt_value(value))
            cls = f' class="st st-{text}"' if i == status_col else ""
            cells.append(f"<td{cls}>{text}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "\n".join(out)


def render_html(report: Mapping[str, Any]) -> str:
    """One self-contained page: inline CSS and JS, the chart drawn as inline SVG by the JS."""
    template = resources.files("stagegate").joinpath("templates/report.html").read_text("utf-8")
    issues = (
        "".join(
            f'<li class="sev-{i["severity"]}"><b>{html.escape(i["title"])}</b> '
            f"({html.escape(i['severity'])}): {html.escape(i['impact'])}<br>"
            f"<i>Recommendation:</i> {html.escape(i['recommendation'])}</li>"
            for i in report["issues"]
        )
        or "<li>None.</li>"
    )
    stopped = report["stopped"]
    fields = {
        "TITLE": html.escape(f"stagegate report: {report['release']['version']}"),
        "RELEASE": html.escape(str(report["release"]["version"])),
        "PREVIOUS": html.escape(str(report["release"]["previous"] or "none")),
        "VERDICT": html.escape(report["verdict"]),
        "VERDICT_TEXT": html.escape(_VERDICT_TEXT[report["verdict"]]),
        "SCORE": html.escape(str(report["score"])),
        "STOPPED": html.escape(
            f"Run stopped in phase {stopped.get('phase')}: {stopped.get('reason')}"
        )
        if stopped
        else "",
        "CATEGORIES": _html_rows(
            [
                c["category"],
                c["checks"],
                c["passed"] + c["warned"],
                c["failed"],
                f"{c['success_rate']}%" if c["success_rate"] is not None else "n/a",
            ]
            for c in report["categories"]
        ),
        "CHECKS": _html_rows(
            (
                [
                    c["name"],
                    c["group"],
                    c["status"],
                    c["severity"],
                    c["value"],
                    c["threshold"],
                    c["message"],
                ]
                for c in report["checks"]
            ),
            status_col=2,
        ),
        "GATES": _html_rows(
            (
                [
                    g["name"],
                    g["status"],
                    "yes" if g["critical"] else "no",
                    g["value"],
                    g["threshold"],
                    g["message"],
                ]
                for g in report["gates"]
            ),
            status_col=1,
        ),
        "ISSUES": issues,
        "RECOMMENDATIONS": "".join(
            f"<li>{html.escape(r['advice'])}</li>" for r in report["recommendations"]
        )
        or "<li>None.</li>",
        "ROLLBACK": html.escape(json.dumps(report["rollback_plan"], indent=2)),
        "SIGNOFF": _html_rows(
            [s["category"], s["result"], s["validator"], s["date"]] for s in report["sign_off"]
        ),
        # JSON inside <script>: escape '<' so no string can close the element.
        "DATA": json.dumps(
            {
                "checks": report["checks"],
                "phases": report["phases"],
                "performance": report["performance"],
            },
            default=str,
        ).replace("<", "\\u003c"),
    }
    for key, value in fields.items():
        template = template.replace(f"@@{key}@@", value)
    return template


# ---- writing ---------------------------------------------------------------------------------


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; CI and AWX collect these as artifacts
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_reports(
    report: Mapping[str, Any], report_dir: str | Path, secrets: Iterable[str] = ()
) -> dict[str, str]:
    """Redact, then write the four reports; returns {file name: path}."""
    clean = redact(report, secrets)
    directory = Path(report_dir)
    directory.mkdir(parents=True, exist_ok=True)
    renderers = {
        "report.json": render_json,
        "report.md": render_markdown,
        "junit.xml": render_junit,
        "report.html": render_html,
    }
    paths = {}
    for name, render in renderers.items():
        _atomic_write(directory / name, render(clean))
        paths[name] = str(directory / name)
    return paths
