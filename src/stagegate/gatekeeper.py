"""The gate step of a run, end to end: results -> grades -> gates -> verdict -> reports.

`validate_request` checks everything that can be checked before a run starts (the gate
configuration against the check catalog, manual items); `run_gate` grades the check results
it is given, evaluates the gates, reaches the verdict through the verdict hooks, writes the
four reports (also for a run that stopped early), notifies, and returns the ledger record.
The `stagegate.release.gate` action is a thin wrapper around these two functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pluggy
from ansible_collections.stagegate.release.plugins.module_utils import _run_identity

from stagegate.catalog import DEFAULT_GROUP, CheckSpec
from stagegate.config import BEFORE_DEPLOY
from stagegate.fleet import HostResults, by_host, fold_hosts
from stagegate.gates import GateConfig, GateConfigError, GateType, evaluate_gates, validate_gates
from stagegate.grading import apply_grade, is_graded
from stagegate.ledger import baseline_metrics, release_history
from stagegate.notify import WebhookNotifier
from stagegate.plugins import Hooks, new_plugin_manager
from stagegate.profiles import load_profiles
from stagegate.redact import redact
from stagegate.reports import REPORT_FILES, build_report, write_reports
from stagegate.results import CheckResult, Status
from stagegate.verdict import Decision, decide, manual_items, recommendations


def gate_plugin_manager() -> pluggy.PluginManager:
    """A fresh plugin manager: the built-ins (`stagegate.plugins.DEFAULT_PLUGINS`: check
    types, gate types, policies), then installed plugins."""
    return new_plugin_manager()


def plugin_gate_types(pm: pluggy.PluginManager) -> list[GateType]:
    """Every gate type, built-in ones included, in registration order (the last of a name wins)."""
    return list(Hooks(pm).gate_types().values())


@dataclass
class GateRequest:
    """Everything the gate step is given (the action's arguments, typed)."""

    release: str
    report_dir: str
    checks: list[dict[str, Any]] = field(default_factory=list)
    gates: Mapping[str, Any] = field(default_factory=dict)
    previous: str | None = None
    catalog: list[str] | None = None
    groups: list[str] | None = None
    manual: list[dict[str, Any]] = field(default_factory=list)
    confirmations: Mapping[str, Any] = field(default_factory=dict)
    baseline: Mapping[str, Any] | None = None
    phases: list[dict[str, Any]] = field(default_factory=list)
    stopped: Mapping[str, str] | None = None
    rollback_plan: Mapping[str, Any] | None = None
    environment: str = "staging"
    run_by: str = ""
    awx_job_id: str | None = None
    run_id: str | None = None
    started: str | None = None
    secrets: list[str] = field(default_factory=list)
    policy: Mapping[str, Any] = field(default_factory=dict)
    webhook: Mapping[str, Any] | None = None
    kind: str = "promotion"
    """What the run did (reports.KINDS): the reports' title, headline and sign-off say so."""
    auto_rollback: bool | None = None
    """Whether staging.yml rolls back on NO_GO; None: not a promotion (no rollback note)."""
    rollback_report_dir: str | None = None
    # A fleet's stopped rollout: how each host it moved came back ("back on v2", "NOT returned
    # (...)"); None for any other run.
    returned: Mapping[str, str] | None = None
    host_results: Mapping[str, list[dict[str, Any]]] | None = None
    """A fleet (docs/fleet.md): each app host's check results, folded into one result per
    check; `checks` then holds the checks that ran once for the fleet. None: one host."""
    missing_hosts: Mapping[str, str] = field(default_factory=dict)
    """App hosts that reported no results, with why (each check is an ERROR on them)."""
    host_releases: Mapping[str, str] = field(default_factory=dict)
    ledger_warnings: list[str] = field(default_factory=list)
    """Lines the run's ledger reads skipped (a torn last line, a corrupt one): reports name them."""
    resumed: Mapping[str, Any] | None = None
    """The interrupted deploy this run resumed (release_manifest's `interrupted`), if any."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """Ledger records as read (any releases); `trend` gates read this release's runs in them."""
    check_mode: bool = False
    """A `--check` run: nothing changed, the checks graded the release that runs."""


@dataclass
class GateOutcome:
    verdict: Decision
    score: float
    report: dict[str, Any]
    report_paths: dict[str, str]
    failed_checks: list[str]
    ledger_record: dict[str, Any]
    notify_errors: list[str]


def catalog_names_groups(
    catalog: Iterable[Mapping[str, Any]] | None,
) -> tuple[list[str] | None, list[str] | None]:
    """(check names, groups) of a raw `stagegate_checks` catalog, with the catalog's own
    default group (`stagegate.catalog.DEFAULT_GROUP`); (None, None) without a catalog."""
    if catalog is None:
        return None, None
    entries = list(catalog)
    names = [str(c.get("name")) for c in entries]
    return names, [str(c.get("group") or DEFAULT_GROUP) for c in entries]


def _validate_manual(items: list[dict[str, Any]], catalog: Iterable[str] | None) -> None:
    seen = set(catalog or [])
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or not item.get("name"):
            raise GateConfigError(f"stagegate_manual_checks[{i}]: expected {{name, description}}")
        if item["name"] in seen:
            raise GateConfigError(
                f"stagegate_manual_checks[{i}].name: {item['name']!r} is already a check name"
            )
        seen.add(item["name"])


def validate_request(request: GateRequest, pm: pluggy.PluginManager | None = None) -> GateConfig:
    """Validate gates and manual items up front; raises GateConfigError naming the key."""
    pm = pm or gate_plugin_manager()
    _validate_manual(request.manual, request.catalog)
    names = None
    if request.catalog is not None:
        names = [*request.catalog, *(str(m["name"]) for m in request.manual)]
    groups = None
    if request.groups is not None:
        groups = [*request.groups, *(str(m.get("category", "manual")) for m in request.manual)]
    return validate_gates(
        request.gates, names, groups, plugin_gate_types(pm), profiles=load_profiles()
    )


def _parse_checks(raw: list[dict[str, Any]]) -> list[CheckResult]:
    out = []
    for i, item in enumerate(raw):
        try:
            out.append(CheckResult.from_dict(item))
        except (KeyError, TypeError, ValueError) as exc:
            raise GateConfigError(
                f"checks[{i}]: not a check result ({exc}); expected name, group, type, status"
            ) from exc
    return out


def _grade_all(checks: list[CheckResult], config: GateConfig, hooks: Hooks) -> list[CheckResult]:
    """Grades through the one grader, only where one is missing or a gate threshold applies;
    results the check engine graded keep their grade (a plugin's escalation included)."""
    out = []
    for check in checks:
        threshold = config.thresholds.get(check.name)
        if is_graded(check) and threshold is None:
            out.append(check)
            continue
        spec = CheckSpec(check.name, check.type, check.group, check.severity, tuple(check.tags))
        out.append(
            apply_grade(check, hooks.grade_result(result=check, check=spec, threshold=threshold))
        )
    return out


def rollback_next(request: GateRequest, decision: Decision) -> dict[str, Any]:
    """Whether the automatic rollback runs after this gate, and where its report will be.

    It runs on NO_GO with `stagegate_auto_rollback`, unless the run stopped before the deploy
    phase (`nothing_deployed`: the release that ran still runs, also when the automatic
    rollback is off; staging.yml's condition). The link is relative to the report directory
    when the rollback report is under it.
    """
    info: dict[str, Any] = {"enabled": request.auto_rollback, "runs": False}
    if request.returned is not None:
        info["returned"] = dict(request.returned)
    if decision is not Decision.NO_GO:
        return info
    phase = (request.stopped or {}).get("phase")
    if phase in BEFORE_DEPLOY:
        info["nothing_deployed"] = True
        info["reason"] = f"the run stopped in {phase}, before anything was deployed"
        return info
    if not request.auto_rollback:  # off, or unknown (not a promotion)
        return info
    info["runs"] = True
    if request.rollback_report_dir:
        where = Path(request.rollback_report_dir)
        info["report_dir"] = str(where)
        try:
            info["report"] = str(where.relative_to(Path(request.report_dir)) / "report.html")
        except ValueError:
            info["report"] = str(where / "report.html")
    return info


def _ledger_record(
    request: GateRequest, report: Mapping[str, Any], paths: Mapping[str, str]
) -> dict[str, Any]:
    metrics = {c["name"]: c["metrics"] for c in report["checks"] if c.get("metrics")}
    return {
        "release": request.release,
        "previous": request.previous,
        "environment": request.environment,
        "verdict": report["verdict"],
        "score": report["score"],
        "started": report["started"],
        "finished": report["finished"],
        "run_by": request.run_by,
        "awx_job_id": request.awx_job_id,
        "run_id": request.run_id,
        "report_dir": str(Path(request.report_dir).resolve()),
        "reports": dict(paths),
        "failed_checks": [c["name"] for c in report["checks"] if c["status"] in ("FAIL", "ERROR")],
        "stopped": report["stopped"],
        "metrics": metrics,
        # measured durations: the next rollback's --check estimates from them
        "phases": {p["name"]: p["seconds"] for p in report["phases"]},
        # the ledger module writes nothing in check mode; a record made anyway says what it is
        **({"check_mode": True} if request.check_mode else {}),
    }


def run_gate(request: GateRequest, pm: pluggy.PluginManager | None = None) -> GateOutcome:
    """Grade, gate, decide, write the reports and notify. Raises GateConfigError on bad input."""
    pm = pm or gate_plugin_manager()
    config = validate_request(request, pm)
    hooks = Hooks(pm)
    checks = _grade_all(_parse_checks(request.checks), config, hooks)
    if request.host_results is not None:
        per_host = {
            host: _grade_all(_parse_checks(raw), config, hooks)
            for host, raw in request.host_results.items()
        }
        fleet = HostResults(per_host, dict(request.missing_hosts), dict(request.host_releases))
        checks = fold_hosts(fleet, checks, config)
    checks += manual_items(request.manual, request.confirmations)
    baseline = baseline_metrics(dict(request.baseline) if request.baseline else None)
    history = release_history(list(request.history), request.release)
    gates = evaluate_gates(config, checks, baseline, history=history) if not request.stopped else []
    verdict = decide(checks, gates, config.score_bands, config.weights, request.stopped)
    adjusted = hooks.adjust_verdict(
        verdict=str(verdict.decision), results=checks, gates=gates, config=dict(request.policy)
    )
    if adjusted != verdict.decision:
        verdict.policy = f"{verdict.decision} -> {adjusted} by a verdict policy"
        verdict.decision = Decision(adjusted)
    advice = recommendations(config.recommendations, gates, verdict.decision)
    report = build_report(
        release=request.release,
        previous=request.previous,
        checks=checks,
        gates=gates,
        verdict=verdict,
        phases=request.phases,
        recommendations=advice,
        rollback_plan=request.rollback_plan,
        stopped=request.stopped,
        environment=request.environment,
        run_by=request.run_by,
        started=request.started,
        finished=datetime.now(UTC).isoformat(timespec="seconds"),
        baseline_release=(request.baseline or {}).get("release"),
        auto_rollback=rollback_next(request, verdict.decision),
        ledger_warnings=request.ledger_warnings,
        resumed=request.resumed,
        check_mode=request.check_mode,
        kind=request.kind,
    )
    hosts = by_host(report["checks"])
    if hosts:  # a fleet: results by host (a single-host report is unchanged)
        report["hosts"] = hosts
    directory = Path(request.report_dir)
    report["report_paths"] = {name: str(directory / name) for name in REPORT_FILES}
    secrets = [*request.secrets, *_webhook_secrets(request.webhook)]
    paths = write_reports(report, directory, secrets)
    notify_errors = _notify(pm, redact(report, secrets), request.webhook)  # as the files
    return GateOutcome(
        verdict.decision,
        verdict.score,
        report,
        paths,
        [c.name for c in checks if c.status in (Status.FAIL, Status.ERROR)],
        _ledger_record(request, report, paths),
        notify_errors,
    )


def _webhook_secrets(webhook: Mapping[str, Any] | None) -> list[str]:
    if not webhook:
        return []
    return [str(webhook.get("url", "")), *(str(v) for v in (webhook.get("headers") or {}).values())]


def _notify(
    pm: pluggy.PluginManager, report: dict[str, Any], webhook: Mapping[str, Any] | None
) -> list[str]:
    """Call `stagegate_run_finished`; a failing notifier is reported, never fatal."""
    notifier = None
    if webhook and webhook.get("url"):
        notifier = WebhookNotifier(
            str(webhook["url"]),
            {str(k): str(v) for k, v in (webhook.get("headers") or {}).items()},
            float(webhook.get("timeout", 10)),
        )
        pm.register(notifier, name=f"stagegate.notify.webhook.{id(notifier)}")
    try:
        Hooks(pm).run_finished(report=report)
    except Exception as exc:  # any notifier failure is reported, never raised
        return [str(exc)]
    finally:
        if notifier is not None:
            pm.unregister(notifier)
    return []


def who_ran(task_vars: Mapping[str, Any]) -> tuple[str, str | None]:
    """(run_by, AWX job id): the run's owner, the one rule of `_run_identity` (preflight's
    `stagegate_run_owner` when set, else `user@host`, with the AWX job under AWX)."""
    job: str | None = _run_identity.awx_job_id(task_vars)
    owner: str = _run_identity.run_owner(task_vars)
    return (owner, job)
