# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters over a check catalog (stagegate_checks)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError


def _at_least_retries(checks, retries):
    """Every check with at least `retries` extra attempts; a check's own higher value stays."""
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise AnsibleFilterError(f"retries: got {retries!r}, expected a whole number >= 0")
    out = []
    for check in checks or []:
        if not isinstance(check, dict):
            raise AnsibleFilterError(f"a check is {check!r}, expected a dict (docs/checks.md)")
        try:
            own = int(check.get("retries") or 0)
        except (TypeError, ValueError):
            own = 0  # not a number: left for the check engine to name
        out.append(check if own >= retries else {**check, "retries": retries})
    return out


class FilterModule:
    def filters(self):
        return {"at_least_retries": _at_least_retries}
