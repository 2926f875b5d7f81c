# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deploy role's decisions; the rules live in module_utils/_compose.py."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.stagegate.release.plugins.module_utils._compose import (
    app_tier_stop,
    tiers_to_start,
)


def _app_tier_stop(mode, changed_services, app_services, pending_migrations):
    try:
        return app_tier_stop(
            mode, list(changed_services), list(app_services), list(pending_migrations)
        )
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def _tiers_to_start(status, tiers, readiness=None):
    return tiers_to_start(dict(status or {}), [list(t) for t in tiers], dict(readiness or {}))


class FilterModule:
    def filters(self):
        return {"app_tier_stop": _app_tier_stop, "tiers_to_start": _tiers_to_start}
