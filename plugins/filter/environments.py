# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters over environment names; the rule lives in module_utils/_environments.py."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.stagegate.release.plugins.module_utils._environments import (
    is_production,
)


def _is_production(environment, production_environments=None):
    if production_environments is not None and (
        isinstance(production_environments, (str, bytes))
        or not hasattr(production_environments, "__iter__")
    ):
        raise AnsibleFilterError(
            "stagegate_production_environments: got "
            f"{production_environments!r}, expected a list of environment names"
        )
    return is_production(environment, production_environments)


class FilterModule:
    def filters(self):
        return {"is_production": _is_production}
