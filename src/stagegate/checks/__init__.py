"""Check types: the contract (re-exported from module_utils) and the grade record
(`Grade`, re-exported from `stagegate.grading`: there is one).

The implementations live in `plugins/module_utils/_checks_*.py` (standard library first)
so that the `host_checks` module runs the very same code on the target host.
"""

from __future__ import annotations

from ansible_collections.stagegate.release.plugins.module_utils._checks_common import (
    CheckError,
    CheckType,
    Outcome,
    RunContext,
)

from stagegate.grading import Grade

__all__ = ["CheckError", "CheckType", "Grade", "Outcome", "RunContext"]
