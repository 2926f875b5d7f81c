# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which release ran before this promotion; the rule lives in module_utils/_paths.py."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible_collections.stagegate.release.plugins.module_utils._paths import previous_release


def _previous_release(marker, interrupted=None, described=None):
    if interrupted is not None and not isinstance(interrupted, Mapping):
        raise AnsibleFilterError(
            f"previous_release: interrupted: expected the interrupted deploy (a mapping, as "
            f"stagegate.release.release_manifest returns it) or {{}}, got {interrupted!r}"
        )
    return previous_release(
        str(marker) if marker else None, dict(interrupted or {}), str(described or "")
    )


class FilterModule:
    def filters(self):
        return {"previous_release": _previous_release}
