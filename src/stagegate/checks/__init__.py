"""Check types: the contract (re-exported from module_utils) and the grade record.

The implementations live in `plugins/module_utils/_checks_*.py` (standard library first)
so that the `host_checks` module runs the very same code on the target host.
"""

from __future__ import annotations

from dataclasses import dataclass

from ansible_collections.stagegate.release.plugins.module_utils._checks_common import (
    CheckError,
    CheckType,
    Outcome,
    RunContext,
)

from stagegate.results import Status

__all__ = ["CheckError", "CheckType", "Grade", "Outcome", "RunContext"]


@dataclass(frozen=True)
class Grade:
    """The grade of one result, like pytest's report_teststatus (category, letter, word)."""

    status: Status
    letter: str
    word: str

    @classmethod
    def of(cls, status: Status) -> Grade:
        return cls(status, status.value[0] if status is not Status.SKIP else "s", status.value)
