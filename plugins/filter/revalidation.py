# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""validate.yml's decisions: the deploy record it compares with, the baseline gates it adds and
the trend it shows. The ledger rules (which record is a release's deploy, which are its
re-validations) live in module_utils/_ledger.py, shared with every other ledger reader."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible_collections.stagegate.release.plugins.module_utils._ledger import (
    deploy_record,
    revalidations,
)

TREND_LENGTH = 10  # the nine re-validations before this one, and this one
BASELINE_KEYS = ("check", "metric", "max_regression")


def _records(records, name):
    if not isinstance(records, list) or not all(isinstance(r, Mapping) for r in records):
        raise AnsibleFilterError(
            f"{name}: expected the ledger's records (a list of mappings, as "
            f"stagegate.release.ledger returns in records), got {type(records).__name__}"
        )
    return [dict(r) for r in records]


def _deploy_record(records, release):
    """The deploy record of `release` (an empty dict when it was never promoted here)."""
    return deploy_record(_records(records, "deploy_record"), str(release)) or {}


def baseline_rule(item, index):
    """One `stagegate_validate_baseline` item as a `baseline` gate rule (category stability)."""
    if not isinstance(item, Mapping):
        raise AnsibleFilterError(
            f"stagegate_validate_baseline[{index}]: expected a mapping with "
            f"{', '.join(BASELINE_KEYS)}, got {type(item).__name__}"
        )
    missing = [key for key in BASELINE_KEYS if key not in item]
    if missing:
        raise AnsibleFilterError(
            f"stagegate_validate_baseline[{index}]: {', '.join(missing)} missing; each item "
            f"needs {', '.join(BASELINE_KEYS)} (direction and critical are optional)"
        )
    return {
        "name": f"stable since deploy: {item['check']} {item['metric']}",
        "type": "baseline",
        "check": item["check"],
        "metric": item["metric"],
        "max_regression": item["max_regression"],
        "direction": item.get("direction", "lower_is_better"),
        "critical": item.get("critical", False),
        "category": "stability",
    }


def revalidation_gates(gates, baseline):
    """`stagegate_gates` with one `baseline` rule per `stagegate_validate_baseline` item added
    after its own rules."""
    if not isinstance(gates, Mapping):
        raise AnsibleFilterError(
            f"revalidation_gates: stagegate_gates: expected a mapping, got {type(gates).__name__}"
        )
    rules = [baseline_rule(item, index) for index, item in enumerate(baseline or [])]
    return {**gates, "rules": [*(gates.get("rules") or []), *rules]}


def revalidation_trend(records, record, deploy, validation_only=False):
    """One line: the release since its deploy (time, score), or only its validations for a
    target stagegate only validates (no deploy to trend from), then its last re-validations of
    the same kind and this run's `record`, each `<finished> <verdict> <score>%`."""
    release = str(record.get("release", ""))
    earlier = revalidations(_records(records, "revalidation_trend"), release, record.get("kind"))
    trend = [*earlier[-(TREND_LENGTH - 1) :], record]
    points = "; ".join(
        f"{r.get('finished', '?')} {r.get('verdict')} {r.get('score')}%" for r in trend
    )
    if validation_only:
        return f"{release} validations: {points}"
    deploy = deploy or {}
    return (
        f"{release} since its deploy ({deploy.get('finished', '?')}, "
        f"score {deploy.get('score', '?')}%): {points}"
    )


class FilterModule:
    def filters(self):
        return {
            "deploy_record": _deploy_record,
            "revalidation_gates": revalidation_gates,
            "revalidation_trend": revalidation_trend,
        }
