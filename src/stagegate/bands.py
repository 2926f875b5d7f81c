"""PASS/WARN bands, re-exported from `plugins/module_utils/_bands.py` (the one band grammar).

The implementation lives in module_utils so that modules on the deploy host (image size
budgets, the migration dry-run) parse bands exactly as checks and gates do; here `grade`
returns a `stagegate.results.Status` for the controller's typed code.
"""

from __future__ import annotations

from ansible_collections.stagegate.release.plugins.module_utils import _bands
from ansible_collections.stagegate.release.plugins.module_utils._bands import (
    UNITS,
    Band,
    BandError,
    convert,
    dimension,
)

from stagegate.results import Status

__all__ = ["UNITS", "Band", "BandError", "Bands", "convert", "dimension"]


class Bands(_bands.Bands):
    """A PASS band and an optional WARN band; outside both is FAIL (graded as a Status)."""

    def grade(self, value: float, value_unit: str = "") -> Status:
        return Status(super().grade(value, value_unit))
