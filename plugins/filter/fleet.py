# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet shape of an inventory; the rule lives in stagegate.fleet (docs/fleet.md)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.stagegate.release.plugins.plugin_utils._stagegate import require_stagegate

try:
    from stagegate.fleet import (
        FleetError,
        batch_failures,
        batch_outcome,
        fleet_images,
        fleet_rollback_database,
        fleet_rollback_plan,
        fleet_shape,
        promotion_refusals,
        rollout_batches,
    )
except ImportError as exc:  # the controller needs: pip install stagegate-release
    STAGEGATE_IMPORT_ERROR = exc
else:
    STAGEGATE_IMPORT_ERROR = None


def _fleet_shape(groups, play_hosts=None, state_host=""):
    require_stagegate("fleet_shape", STAGEGATE_IMPORT_ERROR, AnsibleFilterError)
    try:
        shape = fleet_shape(dict(groups), list(play_hosts or []), state_host or None)
    except FleetError as exc:
        raise AnsibleFilterError(str(exc)) from exc
    data = shape.to_dict()
    data["gate_hosts"] = shape.app if shape.is_fleet else []
    return data


def _unreachable(hosts, hostvars, result_var):
    """{host: why} for each of `hosts` whose registered `result_var` says it was unreachable."""
    found = {}
    for host in hosts or []:
        own = hostvars.get(host) if hasattr(hostvars, "get") else None
        result = (own or {}).get(result_var) or {}
        if isinstance(result, dict) and result.get("unreachable"):
            found[host] = str(result.get("msg") or "unreachable").strip()
    return found


def _rollout_batches(app, serial=0):
    require_stagegate("rollout_batches", STAGEGATE_IMPORT_ERROR, AnsibleFilterError)
    try:
        return rollout_batches(list(app or []), serial)
    except FleetError as exc:
        raise AnsibleFilterError(str(exc)) from exc


# Jinja hands a filter its arguments by position, in the order the filter's docs give.
def _fleet_promotion_refusals(  # noqa: PLR0917
    db_hosts, check_mode, run_tags, skip_tags, adopt="", strategy=""
):
    require_stagegate("fleet_promotion_refusals", STAGEGATE_IMPORT_ERROR, AnsibleFilterError)
    return promotion_refusals(
        list(db_hosts or []),
        check_mode=bool(check_mode),
        run_tags=list(run_tags or []),
        skip_tags=list(skip_tags or []),
        adopt_release=adopt,
        strategy=strategy,
    )


def _batch_outcome(batches, index, failed=None, budget=0):
    require_stagegate("batch_outcome", STAGEGATE_IMPORT_ERROR, AnsibleFilterError)
    try:
        return batch_outcome(list(batches or []), int(index), dict(failed or {}), budget).to_dict()
    except FleetError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def _batch_failures(batch, hostvars, key_checks=None):
    """{host: why} for the hosts of `batch` that failed it, from each host's variables: why its
    promotion stopped (stagegate_fleet_host_error), else its check results."""
    require_stagegate("batch_failures", STAGEGATE_IMPORT_ERROR, AnsibleFilterError)
    reports = {}
    for host in batch or []:
        own = hostvars.get(host) if hasattr(hostvars, "get") else None
        own = own or {}
        reports[host] = {
            "error": own.get("stagegate_fleet_host_error") or "",
            "results": own.get("stagegate_gate_report_results"),
        }
    return batch_failures(list(batch or []), reports, list(key_checks or []))


def _fleet_rollback_plan(records, running, target="", state_dir=""):
    require_stagegate("fleet_rollback_plan", STAGEGATE_IMPORT_ERROR, AnsibleFilterError)
    try:
        return fleet_rollback_plan(
            list(records or []), dict(running or {}), target or None, state_dir or ""
        )
    except FleetError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def _fleet_rollback_database(plan, setting="auto"):
    require_stagegate("fleet_rollback_database", STAGEGATE_IMPORT_ERROR, AnsibleFilterError)
    try:
        return fleet_rollback_database(dict(plan or {}), setting)
    except FleetError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def _fleet_images(built, seen, source="", copy="none"):
    require_stagegate("fleet_images", STAGEGATE_IMPORT_ERROR, AnsibleFilterError)
    try:
        return fleet_images(
            dict(built or {}),
            {h: dict(ids or {}) for h, ids in (seen or {}).items()},
            str(source or ""),
            str(copy),
        )
    except FleetError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule:
    def filters(self):
        return {
            "fleet_shape": _fleet_shape,
            "unreachable": _unreachable,
            "rollout_batches": _rollout_batches,
            "fleet_promotion_refusals": _fleet_promotion_refusals,
            "batch_outcome": _batch_outcome,
            "batch_failures": _batch_failures,
            "fleet_rollback_plan": _fleet_rollback_plan,
            "fleet_rollback_database": _fleet_rollback_database,
            "fleet_images": _fleet_images,
        }
