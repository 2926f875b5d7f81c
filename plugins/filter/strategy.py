# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deploy strategy the roles include; the registry lives in stagegate.strategies
(docs/deploy.md "Deploy strategies")."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

try:
    from stagegate.plugins import get_hooks
    from stagegate.strategies import StrategyError, resolve
except ImportError as exc:  # the controller needs: pip install stagegate-release
    STAGEGATE_IMPORT_ERROR = exc
else:
    STAGEGATE_IMPORT_ERROR = None


def _deploy_strategy(name, options=None):
    if STAGEGATE_IMPORT_ERROR is not None:
        raise AnsibleFilterError(
            "stagegate.release.deploy_strategy needs the stagegate Python package on the "
            f"controller (pip install stagegate-release): {STAGEGATE_IMPORT_ERROR}"
        )
    try:
        return resolve(name, options, get_hooks().deploy_strategies())
    except StrategyError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule:
    def filters(self):
        return {"deploy_strategy": _deploy_strategy}
