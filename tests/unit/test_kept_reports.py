"""The ledger record of a run points at the copy of its reports kept on the deploy host: one
rule (the `stagegate.release.kept_reports` filter) for the promotion's and the rollback's record.
The playbook tests (test_staging, test_rollback, test_cli) check the files themselves."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.stagegate.release.plugins.filter.reports import FilterModule

from stagegate.gatekeeper import GateRequest, run_gate
from stagegate.reports import REPORT_FILES

kept_reports = FilterModule().filters()["kept_reports"]

CHECK = {
    "name": "health",
    "group": "smoke",
    "type": "http",
    "status": "PASS",
    "severity": "critical",
    "duration_ms": 3,
}


def _record(tmp_path: Path) -> dict[str, object]:
    request = GateRequest(
        release="v2",
        previous="v1",
        report_dir=str(tmp_path / "artifacts" / "v2-run1"),
        checks=[CHECK],
        run_id="run1",
    )
    return run_gate(request).ledger_record


def test_the_record_points_at_the_kept_copy(tmp_path: Path) -> None:
    record = _record(tmp_path)
    controller = record["report_dir"]
    kept = "/var/lib/stagegate/staging/runs/run1/"
    out = kept_reports(record, kept)
    assert out["report_dir"] == kept.rstrip("/")
    assert out["reports"] == {name: f"{kept}{name}" for name in REPORT_FILES}
    assert out["controller_report_dir"] == controller
    # everything else is the gate's record, and the gate's own record is left as it was
    assert {k: v for k, v in out.items() if k not in ("report_dir", "reports")} == {
        **{k: v for k, v in record.items() if k not in ("report_dir", "reports")},
        "controller_report_dir": controller,
    }
    assert record["report_dir"] == controller
    assert Path(str(record["reports"]["report.json"])).is_file()  # type: ignore[index]


def test_keep_false_leaves_the_record_alone(tmp_path: Path) -> None:
    record = _record(tmp_path)
    assert kept_reports(record, "/var/lib/stagegate/staging/runs/run1", False) == record
    assert "controller_report_dir" not in kept_reports(record, "", keep=False)


@pytest.mark.parametrize("kept_dir", ["", None, "runs/run1"])
def test_a_kept_dir_that_is_not_absolute_is_refused(tmp_path: Path, kept_dir: str | None) -> None:
    with pytest.raises(AnsibleFilterError, match=r"kept_dir .*expected an absolute path"):
        kept_reports(_record(tmp_path), kept_dir)


def test_not_a_record_is_refused() -> None:
    with pytest.raises(AnsibleFilterError, match="expected a ledger record"):
        kept_reports(["report.json"], "/var/lib/stagegate/staging/runs/run1")
