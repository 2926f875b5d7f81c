"""report.md and report.html tell one story (issue 14): pure rendering through the real gate step.

No Ansible and no browser here (tests/test_report.py opens the page in headless Chromium).
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from stagegate.gatekeeper import GateOutcome, GateRequest, run_gate
from stagegate.reports import human

PLAN = {
    "current": {"release": "v2", "ref": "3f2a1b2c"},
    "target": {"release": "v1", "ref": "9c1e0d4f", "reason": "last good release in the ledger"},
    "images": {"api": {"id": "sha256:1d2f", "action": "retag"}},
    "database": {"action": "restore", "backup": "/var/lib/stagegate/staging/backups/app-v2.dump"},
    "steps": ["stop the app tier", "restore the database", "start v1 tier by tier"],
}


def _gate(tmp_path: Path, **extra: Any) -> GateOutcome:
    request = GateRequest(
        **{
            "release": "v2",
            "previous": "v1",
            "report_dir": str(tmp_path),
            "environment": "staging-eu",
            "run_by": "alice",
            "rollback_plan": PLAN,
            **extra,
        }
    )
    return run_gate(request)


_VOID = {"br", "meta", "link", "img", "input", "hr"}


class _Text(HTMLParser):
    """The page's visible text by element id, and the text of <script> elements."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str | None] = []
        self.by_id: dict[str, str] = {}
        self.scripts: list[str] = []
        self.in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:
            return
        self.stack.append(dict(attrs).get("id"))
        self.in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        if self.stack and tag not in _VOID:
            self.stack.pop()
        self.in_script = False

    def handle_data(self, data: str) -> None:
        if self.in_script:
            self.scripts.append(data)
        for element_id in self.stack:
            if element_id:
                self.by_id[element_id] = self.by_id.get(element_id, "") + data


def _page(path: Path) -> _Text:
    parser = _Text()
    parser.feed((path / "report.html").read_text(encoding="utf-8"))
    return parser


def test_a_stopped_no_go_tells_one_story_and_names_the_rollback(tmp_path: Path) -> None:
    outcome = _gate(
        tmp_path,
        stopped={"phase": "deploy", "reason": "api crash-looped (3 restarts)"},
        auto_rollback=True,
        rollback_report_dir=str(tmp_path / "rollback"),
    )
    report = outcome.report
    assert report["verdict"] == "NO_GO"
    high = [i for i in report["issues"] if i["severity"] == "High"]
    assert len(high) == report["summary"]["critical_issues"] == 1
    assert "api crash-looped" in high[0]["impact"]
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    issues = md[md.index("## 4. Issues Identified") : md.index("## 5.")]
    assert "None." not in issues
    assert "crash-looped" in issues
    assert "✅ **0 of 0" not in md
    assert "no check ran" in md
    assert "no gate was evaluated (the run stopped in deploy)" in md
    assert "**1 critical issue identified**" in md
    assert (
        "Automatic rollback to v1 runs next (stagegate_auto_rollback); its report: "
        "[rollback/report.html](rollback/report.html)"
    ) in md
    page = _page(tmp_path)
    assert "Automatic rollback to v1 runs next" in page.by_id["rollback-note"]
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert '<a id="rollback-report" href="rollback/report.html">' in html
    assert "None." not in page.by_id["issues"]


def test_no_rollback_when_nothing_was_deployed_and_a_hint_when_it_is_off(tmp_path: Path) -> None:
    """Stopped in build, auto-rollback on or off: none runs, none is advised (the release that
    ran still runs; a new user's trial followed "roll back to v1" and would have rolled back
    a healthy v1's predecessor); a NO_GO after the deploy with it off: the command; unknown:
    nothing."""
    nothing = "Nothing to roll back: the run stopped in build, before anything was deployed; "
    for auto in (True, False):
        where = tmp_path / f"a-{auto}"
        early = _gate(
            where,
            stopped={"phase": "build", "reason": "image over budget"},
            auto_rollback=auto,
            rollback_report_dir=str(where / "rollback"),
            rollback_plan=None,  # staging.yml plans none for a run stopped before the deploy
        )
        assert early.report["rollback"]["runs"] is False
        md = (where / "report.md").read_text(encoding="utf-8")
        assert f"**Rollback:** {nothing}v1 still runs." in md, md
        assert "playbooks/rollback.yml" not in md
        rollback_section = md.split("## 7. Rollback Plan", 1)[1]
        assert f"{nothing}v1 still runs." in rollback_section
        page = _page(where)
        assert page.by_id["rollback-note"].strip() == f"{nothing}v1 still runs."
        assert page.by_id["no-rollback-plan"] == f"{nothing}v1 still runs."
    _gate(tmp_path / "b", checks=[_check("api_health", "FAIL")], auto_rollback=False)
    md = (tmp_path / "b" / "report.md").read_text(encoding="utf-8")
    assert "roll back to v1 with playbooks/rollback.yml" in md
    # not a promotion (the rollback's own verification report): no rollback advice
    own = _gate(tmp_path / "c", checks=[_check("api_health", "FAIL")])
    assert own.report["rollback"]["automatic"] is None
    assert "**Rollback:**" not in (tmp_path / "c" / "report.md").read_text(encoding="utf-8")
    # validate.yml's NO_GO of a service stagegate never deployed (a trial): no rollback advice
    _gate(tmp_path / "d", checks=[_check("api_health", "FAIL")], rollback_plan=None)
    md = (tmp_path / "d" / "report.md").read_text(encoding="utf-8")
    assert "roll back" not in md.split("## 7. Rollback Plan", 1)[0].lower()
    assert "NOT APPROVED (fix the critical issues)" in md
    assert "this run validated what runs and changed nothing (validate.yml)" in md
    assert "A first deploy" not in md


def test_a_run_without_phases_says_why_instead_of_an_empty_table(tmp_path: Path) -> None:
    """A rollback's report showed a "1. Phases" table with its header only (a trial)."""
    _gate(tmp_path, checks=[_check("api_health", "PASS")], kind="rollback")
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    phases = md.split("## 1. Phases", 1)[1].split("## ", 1)[0]
    assert "| Phase |" not in phases
    why = "No phase timings: a rollback grades its verification inside its rollback phase"
    assert why in phases
    assert _page(tmp_path).by_id["no-phases"].startswith(why)


def _rollback_md(path: Path, **extra: Any) -> str:
    """report.md of a gate on v1 (previous v2 unless `extra` says otherwise)."""
    _gate(path, **{"release": "v1", "previous": "v2", **extra})
    return (path / "report.md").read_text(encoding="utf-8")


def test_a_rollback_report_says_it_is_one(tmp_path: Path) -> None:
    """A fleet rollback's report was titled "Staging Validation Report: v1", approved v1 "FOR
    PROMOTION" and said nothing of a rollback in its first lines (a trial)."""
    md = _rollback_md(tmp_path / "r", kind="rollback", checks=[_check("api_health", "PASS")])
    assert md.startswith("# Rollback Report: v1 (rolled back from v2)\n")
    assert "The rollback from **v2** to **v1** ended with verdict **GO**" in md
    assert "VERIFIED (the release runs and passes its checks)" in md
    assert "PROMOTION" not in md
    page = _page(tmp_path / "r")
    assert page.by_id["title"] == "Rollback Report: v1 (rolled back from v2)"
    assert page.by_id["headline"].startswith("The rollback from v2 to v1 ended")
    assert json.loads((tmp_path / "r" / "report.json").read_text())["kind"] == "rollback"
    # stopped: the headline says how to go on, not "must not be promoted"
    md = _rollback_md(
        tmp_path / "s",
        kind="rollback",
        stopped={"phase": "rollback", "reason": "Restore the database: pg_restore failed"},
    )
    assert "Re-run playbooks/rollback.yml: it resumes where this run stopped." in md
    assert "must not be promoted" not in md
    # a restore, and a promotion as before
    md = _rollback_md(
        tmp_path / "d", previous="v1", kind="restore", checks=[_check("api_health", "FAIL")]
    )
    assert md.startswith("# Database Restore Report: v1\n")
    assert "NOT VERIFIED (fix the critical issues)" in md
    _gate(tmp_path / "p", checks=[_check("api_health", "PASS")])
    md = (tmp_path / "p" / "report.md").read_text(encoding="utf-8")
    assert md.startswith("# Staging Validation Report: v2\n")
    assert "APPROVED FOR PROMOTION" in md
    assert "No phase timings: no phase had ended when this run was graded." in md
    # no latency measured: said, not an empty table (a trial)
    performance = md.split("## 6. Performance Metrics", 1)[1].split("## ", 1)[0]
    assert performance.strip() == "No latency measured."


def _check(name: str, status: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "group": "infrastructure", "type": "http", "status": status, **extra}


def test_html_is_a_jinja2_page_with_everything_report_md_has(tmp_path: Path) -> None:
    planted = "@@DATA@@ and @@VERDICT@@ <script>alert(1)</script>"
    checks = [
        _check("api_health", "FAIL", message=planted),
        _check(
            "disk",
            "PASS",
            type="disk",
            value=13207024435,
            metrics={"free_mb": 12595.2},
            details={
                "measurements": [
                    {"name": "free_mb", "value": 12595.2, "unit": "mb", "bands": ">= 1GB"}
                ]
            },
        ),
    ]
    _gate(
        tmp_path,
        checks=checks,
        phases=[
            {"name": "build", "status": "skipped", "seconds": 0.1, "note": "no images"},
            {"name": "deploy", "status": "ok", "seconds": 125.4},
        ],
    )
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    page = _page(tmp_path)
    # a check message is data: not expanded as a placeholder, and escaped (autoescape)
    assert "@@DATA@@ and @@VERDICT@@" in html
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert planted in page.by_id["checks-table"]  # the cell shows the message as written
    assert html.count('id="report-data"') == 1
    data = json.loads(page.scripts[0])
    assert data["checks"][0]["message"] == planted  # JSON in <script>: '<' escaped, intact
    # the header and the sections report.md has
    assert page.by_id["environment"] == "staging-eu"  # the header report.md has
    assert page.by_id["run-by"] == "alice"
    assert re.match(r"\d{4}-\d\d-\d\dT", page.by_id["date"])
    assert "ended with verdict NO-GO" in page.by_id["headline"]
    assert "1 of 2 checks passed" in page.by_id["key-results"]
    assert "NOT APPROVED" in page.by_id["approval"]
    assert "infrastructure" in page.by_id["sign-off"]
    # the rollback plan as a table, not a JSON dump
    plan = page.by_id["rollback-plan"]
    assert "restore the database" in plan
    assert "last good release in the ledger" in plan
    assert "{" not in plan
    # units as people read them
    assert "free_mb 12.3 GB" in html
    assert "2 min 5 s" in page.by_id["phases-table"]
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "free_mb 12.3 GB" in md
    assert "| deploy | ok | 2 min 5 s |" in md
    # a phase skipped with a reason says it (a deploy strategy without images: no build)
    assert "skipped (no images)" in page.by_id["phases-table"]
    assert "| build | skipped (no images) |" in md


def test_human_units() -> None:
    assert human(48.04, "ms") == "48 ms"
    assert human(1650, "ms") == "1.65 s"
    assert human(2.4, "s") == "2.4 s"
    assert human(512, "mb") == "512.0 MB"
    assert human(3 * 1024**3, "b") == "3.0 GB"
    assert human(97.456, "%") == "97.5%"
    assert human("n/a") == "n/a"


def test_a_failed_critical_gate_is_a_red_cross_in_the_summary(tmp_path: Path) -> None:
    """A trial's report read "⚠️ 3 of 4 gates passed" while the failed gate was a key check."""
    checks = [_check("api_health", "FAIL"), _check("disk", "PASS")]
    outcome = _gate(tmp_path, checks=checks, gates={"key_checks": ["api_health"]})
    gates = outcome.report["gates"]
    assert any(g["critical"] and g["status"] == "FAIL" for g in gates), gates
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert re.search(r"❌ \*\*\d+ of \d+ gates passed\*\*", md), md[:1500]


def test_a_manual_item_nobody_confirmed_is_pending_in_the_sign_off(tmp_path: Path) -> None:
    """A trial's sign-off table named "stagegate" as the validator of a pending approval."""
    manual = [{"name": "release_signoff", "category": "approval", "description": "QA signs"}]
    outcome = _gate(tmp_path / "a", checks=[_check("api_health", "PASS")], manual=manual)
    row = next(r for r in outcome.report["sign_off"] if r["category"] == "approval")
    assert row["validator"] == "pending: release_signoff"
    confirmed = {"release_signoff": {"by": "qa-lead", "at": "2026-12-02T00:10Z"}}
    checks = [_check("api_health", "PASS")]
    outcome = _gate(tmp_path / "b", checks=checks, manual=manual, confirmations=confirmed)
    row = next(r for r in outcome.report["sign_off"] if r["category"] == "approval")
    assert (row["validator"], row["date"]) == ("qa-lead", "2026-12-02T00:10Z")


def test_the_rollback_plan_section_gives_unset_fields_a_word(tmp_path: Path) -> None:
    """A trial's rollback report listed `link: `, `rebuild: ` and a diff stat over several
    lines in section 7 (leaving them out hid an unmeasured estimate's `seconds`)."""
    plan = {
        **PLAN,
        "rebuild": [],
        "target": {"release": "v1", "link": None, "manifest": "/s/releases/v1/manifest.json"},
        "estimate": {"seconds": None, "basis": "no rollback measured yet"},
        "diff_stat": " app.py | 2 +-\n 1 file changed",
    }
    _gate(tmp_path, checks=[_check("api_health", "PASS")], rollback_plan=plan, kind="rollback")
    section = (tmp_path / "report.md").read_text(encoding="utf-8").split("## 7. Rollback Plan")[1]
    section = section.split("## 8.")[0]
    assert "- **rebuild:** —\n" in section
    assert "- **target:** release: v1; link: —; manifest: /s/releases/v1/manifest.json" in section
    assert "- **estimate:** seconds: —; basis: no rollback measured yet" in section
    assert "- **diff_stat:** app.py | 2 +- 1 file changed" in section
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<td>link</td><td>—</td>" in html
