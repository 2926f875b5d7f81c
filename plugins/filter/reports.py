# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters over a run's reports: the ledger record pointed at the copy kept on the deploy host."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError


def kept_reports(record, kept_dir, keep=True):
    """The ledger record of a run whose reports are copied to `kept_dir` on the deploy host.

    `report_dir` and each of `reports` point at the kept copy (the path `stagegate report show`
    and a later reader use); the controller's directory, which may be a job's ephemeral
    artifact dir, stays in `controller_report_dir`. With `keep` false the record is returned
    unchanged (only the controller's copy exists).
    """
    if not isinstance(record, Mapping):
        raise AnsibleFilterError(
            f"kept_reports: got {type(record).__name__}, expected a ledger record (a mapping "
            "with report_dir and reports, as stagegate.release.gate returns in ledger_record)"
        )
    if not keep:
        return dict(record)
    if not kept_dir or not posixpath.isabs(str(kept_dir)):
        raise AnsibleFilterError(
            f"kept_reports: kept_dir {kept_dir!r}: expected an absolute path on the deploy host"
        )
    kept_dir = str(kept_dir).rstrip("/")
    reports = record.get("reports") or {}
    return dict(
        record,
        report_dir=kept_dir,
        reports={name: posixpath.join(kept_dir, name) for name in reports},
        controller_report_dir=record.get("report_dir"),
    )


class FilterModule:
    def filters(self):
        return {"kept_reports": kept_reports}
