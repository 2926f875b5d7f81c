"""Fleets: the inventory shape, and one graded result per check from many hosts.

An environment is one host (`staging: {hosts: {localhost: ...}}`), or a fleet whose inventory
names its hosts by group (docs/fleet.md): ``stagegate_app`` (the app hosts, where the per-host
checks run), ``stagegate_db`` (the database host) and optionally ``stagegate_proxy``. The
fleet-wide lock, ledger and kept reports live on one *state host*: ``stagegate_state_host``
when set, else the database host, else the first app host (a single-host inventory: that host).

Every app host runs the check catalog; the gate step then folds the per-host results of each
check into one result (`fold_hosts`), so the grades, gates, score and verdict are computed once
for the fleet. A host that reported nothing (unreachable, failed before its checks) is an ERROR
on every check, naming the host and why. How many hosts must pass is a `hosts` gate
(``{type: hosts, checks: [api_ready], min: all | "66%"}``): the checks it selects are folded
with its quorum (the strictest when several select one), every other check with "all hosts".
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ansible_collections.stagegate.release.plugins.module_utils import _rollback
from ansible_collections.stagegate.release.plugins.module_utils._ledger import is_revalidation

from stagegate.bands import Band, BandError
from stagegate.gates import (
    GateConfig,
    GateContext,
    GateResult,
    GateRule,
    GateType,
    ValidationContext,
    selected_checks,
    validate_selection,
)
from stagegate.grading import worst
from stagegate.hookspecs import hookimpl
from stagegate.results import CheckResult, Severity, Status

APP_GROUP, DB_GROUP, PROXY_GROUP = "stagegate_app", "stagegate_db", "stagegate_proxy"
FLEET_CHECK_TYPE = "fleet"
_OK = (Status.PASS, Status.WARN)


class FleetError(ValueError):
    """An inventory whose fleet shape is ambiguous or wrong; the message names the key."""


@dataclass(frozen=True)
class FleetShape:
    """Who is who in one environment's inventory (`stagegate_fleet` in a play)."""

    app: list[str]
    db: list[str]
    proxy: list[str]
    state_host: str

    @property
    def is_fleet(self) -> bool:
        """More than one host takes part (a single-host inventory is not a fleet)."""
        return len({*self.app, *self.db, *self.proxy}) > 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "db": self.db,
            "proxy": self.proxy,
            "state_host": self.state_host,
            "is_fleet": self.is_fleet,
        }


def fleet_shape(
    groups: Mapping[str, Sequence[str]], play_hosts: Sequence[str], state_host: str | None = None
) -> FleetShape:
    """The shape of the inventory. Without a `stagegate_app` group the play's hosts are the
    app hosts (a single-host inventory is unchanged); raises FleetError naming the key."""
    app = [str(h) for h in groups.get(APP_GROUP) or []] or [str(h) for h in play_hosts]
    db = [str(h) for h in groups.get(DB_GROUP) or []]
    proxy = [str(h) for h in groups.get(PROXY_GROUP) or []]
    known = {str(h) for h in groups.get("all") or []} | set(app) | set(db) | set(proxy)
    if not app:
        raise FleetError(f"{APP_GROUP}: no app host in the inventory (and no host in the play)")
    if state_host:
        if state_host not in known:
            raise FleetError(
                f"stagegate_state_host: {state_host!r} is not a host of the inventory "
                f"(hosts: {', '.join(sorted(known))})"
            )
        return FleetShape(app, db, proxy, state_host)
    if len(db) > 1:
        raise FleetError(
            f"{DB_GROUP}: {len(db)} hosts ({', '.join(db)}); name the one that holds the lock "
            "and the ledger with stagegate_state_host"
        )
    return FleetShape(app, db, proxy, db[0] if db else app[0])


# ---- "all hosts" or "at least N%" -----------------------------------------------------


def parse_quorum(raw: Any, where: str = "min") -> float:
    """`all` (100) or a share of hosts such as `66%` / `>= 66%`, in %."""
    text = str(raw).strip()
    if text.lower() == "all":
        return 100.0
    try:
        band = Band.parse(text if text[:1] in "<>=" else f">= {text.rstrip('%')}%")
    except BandError as exc:
        raise FleetError(f"{where}: {raw!r} is not 'all' or a share of hosts like '66%'") from exc
    if band.op not in (">=", ">") or band.unit != "%" or not 0 < band.number <= 100:
        raise FleetError(f"{where}: {raw!r} is not 'all' or a share of hosts like '66%'")
    return float(band.number)


def _hosts_min(rule: GateRule) -> float:
    try:
        return parse_quorum(rule.options.get("min", "all"))
    except FleetError as exc:
        raise rule.error("min", str(exc).split(": ", 1)[1]) from exc


def quorums(config: GateConfig, checks: Iterable[CheckResult]) -> dict[str, float]:
    """The quorum of each check a `hosts` gate selects (the strictest wins); others: all."""
    found: dict[str, float] = {}
    checks = list(checks)
    for rule in config.rules:
        if rule.type != "hosts":
            continue
        share = _hosts_min(rule)
        for check in selected_checks(rule, checks):
            found[check.name] = max(found.get(check.name, 0.0), share)
    return found


@dataclass
class HostResults:
    """Results of one gate step from many hosts: per-host results, hosts that reported nothing
    (with why), and the release each host runs."""

    results: dict[str, list[CheckResult]]
    missing: dict[str, str] = field(default_factory=dict)
    releases: dict[str, str] = field(default_factory=dict)


def _entry(host: str, result: CheckResult) -> dict[str, Any]:
    return {
        "host": host,
        "status": str(result.status),
        "message": result.message,
        "value": result.value,
        "duration_ms": result.duration_ms,
        "metrics": dict(result.metrics),
    }


def _fold_one(name: str, per_host: list[tuple[str, CheckResult]], quorum: float) -> CheckResult:
    counted = [(h, r) for h, r in per_host if r.status is not Status.SKIP]
    entries = [_entry(h, r) for h, r in per_host]
    if not counted:  # skipped on every host
        return replace(per_host[0][1], details={**per_host[0][1].details, "hosts": entries})
    ok = [h for h, r in counted if r.status in _OK]
    share = len(ok) / len(counted) * 100.0
    bad = [(h, r) for h, r in counted if r.status is not Status.PASS]
    if not bad:
        status = Status.PASS
    elif share >= quorum:
        status = Status.WARN
    else:
        status = worst([r.status for _, r in counted])
    shown = max(counted, key=lambda pair: [*_OK, Status.FAIL, Status.ERROR].index(pair[1].status))
    good = [h for h, r in counted if r.status is Status.PASS]
    parts = [f"{r.status} on {h}: {r.message}".rstrip(": ") for h, r in bad]
    if good:
        parts.append(f"PASS on {', '.join(good)}")
    need = "all hosts" if quorum >= 100 else f"at least {quorum:g}% of hosts"
    base = shown[1]
    return replace(
        base,
        status=status,
        message=f"{len(ok)}/{len(counted)} hosts ok (needs {need}); " + "; ".join(parts),
        details={**base.details, "hosts": entries},
    )


# Where no app host reported anything (a rollout stopped in its first batch's deploy), a
# missing host still needs a result to be named by: this one.
_HOST_REPORTED = CheckResult(
    name="host_reported",
    group="infrastructure",
    type=FLEET_CHECK_TYPE,
    status=Status.ERROR,
    details={
        "recommendation": "Read each host's reason (not promoted, its deploy failed, "
        "unreachable), fix that cause and promote again."
    },
)


def _missing_results(
    missing: Mapping[str, str], templates: Mapping[str, CheckResult]
) -> list[tuple[str, CheckResult]]:
    blank: dict[str, Any] = {"value": None, "metrics": {}, "duration_ms": 0.0}
    templates = templates or {_HOST_REPORTED.name: _HOST_REPORTED}
    return [
        # what another host measured is not this host's; the check's own advice is
        (host, replace(template, status=Status.ERROR, message=f"host {host} did not report: {why}",
                       attempts=0, details=_advice_only(template), **blank))
        for host, why in missing.items()
        for template in templates.values()
    ]  # fmt: skip


def _advice_only(result: CheckResult) -> dict[str, Any]:
    return {k: v for k, v in result.details.items() if k == "recommendation"}


def release_check(releases: Mapping[str, str]) -> CheckResult | None:
    """A fleet check: every app host runs the same release (None for fewer than two hosts)."""
    if len(releases) < 2:
        return None
    counts: dict[str, int] = {}
    for release in releases.values():
        counts[release] = counts.get(release, 0) + 1
    common = max(counts, key=lambda r: (counts[r], r))
    odd = {h: r for h, r in releases.items() if r != common}
    message = (
        f"all {len(releases)} app hosts run {common}"
        if not odd
        else "; ".join(f"{h} runs {r or 'nothing'}" for h, r in odd.items())
        + f" (the others run {common})"
    )
    return CheckResult(
        name="fleet_release",
        group="infrastructure",
        type=FLEET_CHECK_TYPE,
        status=Status.FAIL if odd else Status.PASS,
        severity=Severity.CRITICAL,
        message=message,
        value=dict(releases),
        details={"hosts": [{"host": h, "status": "FAIL" if h in odd else "PASS",
                            "message": f"runs {r or 'nothing'}", "value": r, "duration_ms": 0.0,
                            "metrics": {}} for h, r in releases.items()]},
    )  # fmt: skip


def fold_hosts(
    fleet: HostResults, once: list[CheckResult], config: GateConfig
) -> list[CheckResult]:
    """One result per check for the whole fleet: per-host results folded by quorum (hosts that
    reported nothing count as ERROR), then the fleet checks (`once`, run a single time), then
    the release agreement check."""
    order: dict[str, list[tuple[str, CheckResult]]] = {}
    templates: dict[str, CheckResult] = {}
    for host, results in fleet.results.items():
        for result in results:
            order.setdefault(result.name, []).append((host, result))
            templates.setdefault(result.name, result)
    for host, result in _missing_results(fleet.missing, templates):
        order.setdefault(result.name, []).append((host, result))
    need = quorums(config, templates.values())
    folded = [_fold_one(name, pairs, need.get(name, 100.0)) for name, pairs in order.items()]
    agreement = release_check(fleet.releases)
    return folded + once + ([agreement] if agreement else [])


def by_host(checks: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """report.json `hosts`: for each host, its status (the worst of its checks) and its
    results, from the folded checks' `details.hosts`; empty for a single-host run."""
    hosts: dict[str, dict[str, Any]] = {}
    for check in checks:
        for entry in (check.get("details") or {}).get("hosts") or []:
            row = {"check": check["name"], "group": check.get("group", ""), **entry}
            row.pop("host", None)
            hosts.setdefault(entry["host"], {"checks": []})["checks"].append(row)
    for data in hosts.values():
        statuses = [Status(c["status"]) for c in data["checks"]]
        data["status"] = str(worst(statuses))
        data["failed"] = [c["check"] for c in data["checks"] if c["status"] in ("FAIL", "ERROR")]
    return dict(sorted(hosts.items(), key=lambda item: (not item[1]["failed"], item[0])))


# ---- the `hosts` gate type ------------------------------------------------------------


def _validate_hosts(rule: GateRule, ctx: ValidationContext) -> None:
    validate_selection(rule, ctx)
    _hosts_min(rule)


def _evaluate_hosts(rule: GateRule, ctx: GateContext) -> GateResult:
    share_min = _hosts_min(rule)
    hosts: dict[str, list[str]] = {}
    for check in selected_checks(rule, ctx.checks.values()):
        for entry in check.details.get("hosts") or [{"host": "", "status": str(check.status)}]:
            failing = hosts.setdefault(str(entry["host"]), [])
            if Status(entry["status"]) not in (*_OK, Status.SKIP):
                failing.append(f"{check.name} {entry['status']}")
    if not hosts:
        return rule.result(Status.SKIP, "no check ran in this selection")
    good = [h for h, failing in hosts.items() if not failing]
    share = len(good) / len(hosts) * 100.0
    need = "all hosts" if share_min >= 100 else f"at least {share_min:g}% of hosts"
    bad = "; ".join(f"{h or 'the host'}: {', '.join(f)}" for h, f in hosts.items() if f)
    return rule.result(
        Status.PASS if share >= share_min else Status.FAIL,
        f"{len(good)}/{len(hosts)} hosts pass ({share:.0f}%, needs {need})"
        + (f"; failing: {bad}" if bad else ""),
        value=round(share, 2),
        threshold=need,
        details={"hosts_ok": good, "hosts_failing": {h: f for h, f in hosts.items() if f}},
    )


HOSTS_GATE = GateType(
    "hosts", frozenset({"checks", "group", "tags", "min"}), _validate_hosts, _evaluate_hosts
)


@hookimpl
def stagegate_gate_types() -> list[GateType]:
    """The `hosts` gate type (a default plugin, `stagegate.fleet`)."""
    return [HOSTS_GATE]


# ---- rollouts: batches, the failure budget, what a batch's outcome means --------------

SERIAL_KEY, BUDGET_KEY = "stagegate_serial", "stagegate_max_fail_percentage"
_SERIAL_FORM = "a number of hosts (2), a share of them ('34%') or a list of those ([1, '50%'])"


def _number(raw: Any) -> float | None:
    """A number from an int, float or numeric string (`"25"`, `"25%"` without its `%`)."""
    if isinstance(raw, bool):
        return None
    try:
        return float(str(raw).strip().removesuffix("%"))
    except ValueError:
        return None


def _batch_size(raw: Any, hosts: int, where: str) -> int:
    """One batch size of Ansible's `serial`: a count, or a share of the play's hosts rounded
    down (at least one host); 0 is every host at once."""
    number = _number(raw)
    if str(raw).strip().endswith("%"):
        if number is None or not 0 < number <= 100:
            raise FleetError(f"{where}: {raw!r} is not {_SERIAL_FORM}")
        return max(1, int(hosts * number / 100.0))
    if number is None or number < 0 or number != int(number):
        raise FleetError(f"{where}: {raw!r} is not {_SERIAL_FORM}")
    return int(number) or hosts


def rollout_batches(app: Sequence[str], serial: Any = 0) -> list[list[str]]:
    """The app hosts in the batches Ansible's `serial` makes of them: `serial` is a count, a
    share (`34%`, rounded down, at least one host) or a list of those, whose last size repeats;
    0, empty or None: one batch of every host. Raises FleetError naming stagegate_serial."""
    hosts = [str(h) for h in app]
    sizes = serial if isinstance(serial, list | tuple) else [serial]
    if not sizes or sizes[0] in (None, ""):
        sizes = [0]
    steps = [_batch_size(s, len(hosts), SERIAL_KEY) for s in sizes]
    batches: list[list[str]] = []
    rest = hosts
    while rest:
        size = steps[min(len(batches), len(steps) - 1)]
        batches.append(rest[:size])
        rest = rest[size:]
    return batches


def promotion_refusals(
    db_hosts: Sequence[str],
    *,
    check_mode: bool,
    run_tags: Sequence[str],
    skip_tags: Sequence[str],
    adopt_release: Any,
    strategy: Any,
) -> list[str]:
    """Why a fleet promotion cannot run as asked (docs/fleet.md "Not built yet"), one reason per
    setting, each naming what was given; empty when it can run."""
    reasons = []
    if len(db_hosts) != 1:
        found = ", ".join(db_hosts) or "none"
        reasons.append(f"it needs exactly one stagegate_db host (found: {found})")
    if check_mode:
        reasons.append(
            "--check: a fleet promotion has no check mode yet (validate.yml grades what runs, "
            "rollback.yml --check plans a fleet's rollback)"
        )
    if list(run_tags) != ["all"] or list(skip_tags):
        given = [f"--tags {','.join(run_tags)}"] if list(run_tags) != ["all"] else []
        given += [f"--skip-tags {','.join(skip_tags)}"] if skip_tags else []
        reasons.append(f"{' '.join(given)}: a fleet promotion runs every phase")
    if str(adopt_release or ""):
        reasons.append(
            f"stagegate_adopt_release={adopt_release}: a fleet's running release cannot be "
            "adopted yet"
        )
    if str(strategy or "compose") != "compose":
        reasons.append(f"stagegate_deploy_strategy={strategy}: a fleet runs the compose strategy")
    return reasons


def failure_budget(raw: Any = 0) -> float:
    """stagegate_max_fail_percentage (Ansible's `max_fail_percentage`): the share of a batch's
    hosts that may fail before the rollout stops, 0-100 (0: any failed host stops it)."""
    value = _number(0 if raw in (None, "") else raw)
    if value is None or not 0 <= value <= 100:
        raise FleetError(f"{BUDGET_KEY}: {raw!r} is not a share of hosts from 0 to 100")
    return value


@dataclass(frozen=True)
class BatchOutcome:
    """What one batch of a rollout means for the rest of it."""

    batch: list[str]
    failed: dict[str, str]
    stop: bool
    moved: list[str]
    waiting: list[str]
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "failed": self.failed,
            "stop": self.stop,
            "moved": self.moved,
            "waiting": self.waiting,
            "message": self.message,
        }


def batch_outcome(
    batches: Sequence[Sequence[str]],
    index: int,
    failed: Mapping[str, str],
    budget: Any = 0,
) -> BatchOutcome:
    """The outcome of batch `index` (0-based) of `batches`, given the hosts of it that failed
    (`{host: why}`: a failed deploy, a NO_GO validation, unreachable): the rollout stops when
    the failed share of the batch is above the failure budget (Ansible's rule for
    `max_fail_percentage`), or when every host of the batch failed. `moved` are the hosts of
    this and the earlier batches (the ones an auto-rollback returns), `waiting` the later
    batches' hosts (never touched when the rollout stops)."""
    if not 0 <= index < len(batches):
        raise FleetError(f"batch {index + 1} of {len(batches)}: no such batch")
    limit = failure_budget(budget)
    batch = [str(h) for h in batches[index]]
    bad = {h: str(why) for h, why in failed.items() if h in batch}
    share = len(bad) / len(batch) * 100.0 if batch else 0.0
    stop = bool(bad) and (share > limit or len(bad) == len(batch))
    moved = [str(h) for b in batches[: index + 1] for h in b]
    waiting = [str(h) for b in batches[index + 1 :] for h in b]
    where = f"batch {index + 1}/{len(batches)} ({', '.join(batch)})"
    if not bad:
        message = f"{where}: every host passed"
    else:
        named = "; ".join(f"{h}: {why}" for h, why in bad.items())
        verdict = (
            f"the rollout stops, {', '.join(waiting)} never left the previous release"
            if stop and waiting
            else "the rollout stops"
            if stop
            else f"within the failure budget of {limit:g}%, the rollout goes on"
        )
        failed_share = f"{len(bad)}/{len(batch)} hosts failed ({share:.0f}%)"
        message = f"{where}: {failed_share}; {verdict}; {named}"
    return BatchOutcome(batch, bad, stop, moved, waiting, message)


_BAD = ("FAIL", "ERROR")


def batch_failures(
    batch: Sequence[str],
    reports: Mapping[str, Mapping[str, Any]],
    key_checks: Iterable[str] = (),
) -> dict[str, str]:
    """{host: why} for the hosts of a rollout batch that failed it (the input of
    `batch_outcome`). `reports[host]` is what the host left: `error` (its deploy failed, it
    could not be reached: why) or `results` (its check results). A host fails on an error, on
    no report at all, or on a check of severity critical, or a key check, that FAILed or
    ERRORed there: a NO_GO of that host alone."""
    keys = set(key_checks)
    failed: dict[str, str] = {}
    for host in batch:
        report = reports.get(host) or {}
        if report.get("error"):
            failed[host] = str(report["error"])
            continue
        results = report.get("results")
        if results is None:
            failed[host] = "no check results"
            continue
        bad = [
            f"{r['name']} {r['status']}"
            for r in results
            if str(r.get("status")) in _BAD
            and (str(r.get("severity", "critical")) == "critical" or r.get("name") in keys)
        ]
        if bad:
            failed[host] = "failed " + ", ".join(bad)
    return failed


def _newest_running(records: list[dict[str, Any]], running: Mapping[str, str]) -> str:
    """Of the releases the app hosts run, the one the ledger put in place last (a release the
    ledger never recorded counts as the newest: nothing says it is good)."""
    releases = {r for r in running.values() if r}
    order = {str(r.get("release")): i for i, r in enumerate(records) if r.get("release")}
    unknown = sorted(r for r in releases if r not in order)
    if unknown:
        return unknown[0]
    return max(releases, key=lambda r: order[r], default="")


def _rolled_back_from(records: list[dict[str, Any]], current: str) -> str:
    """The release a rollback to `current` left, when that rollback is the ledger's newest
    record that put a release in place (re-validations measure, they put nothing in place)."""
    for record in reversed(records):
        if is_revalidation(record):
            continue
        if record.get("kind") == "rollback" and record.get("release") == current:
            return str(record.get("rolled_back_from") or "")
        return ""
    return ""


def fleet_rollback_plan(
    records: list[dict[str, Any]],
    running: Mapping[str, str],
    target: str | None = None,
    state_dir: str = "",
) -> dict[str, Any]:
    """One rollback plan for every app host, from the state host's ledger: the release to go
    to (`target`, else the single-host rule of rollback_plan - the newest good or adopted
    release that is not the one running now and was not rolled back from since - where the
    release running now is, of the hosts' releases, the one the ledger put in place last), the
    hosts that run another release (`move`) and those already on it (`stay`). When the ledger's
    newest record is a rollback to that release, the plan finishes it (the hosts it did not get
    to move; `current` is the release it left) or has nothing to do."""
    current = _newest_running(records, running)
    reason = "named by stagegate_rollback_to"
    # The ledger's newest record is a rollback to the release running now: done, or finished
    # by this run for the hosts it did not get to (a re-run converges).
    left = _rolled_back_from(records, current)
    if left and target in (None, "", current):
        unfinished = any(release != current for release in running.values())
        if not target:
            reason = (
                f"finishes the rollback from {left}" if unfinished else f"rolled back from {left}"
            )
        target, current = current, left
    else:
        left = ""
    if not target:
        try:
            target, reason = _rollback.choose_target(
                records, current, state_dir, has_manifest=lambda _release: True
            )
        except _rollback.RollbackError as exc:
            raise FleetError(f"stagegate_rollback_to: {exc}") from exc
    move = sorted(h for h, release in running.items() if release != target)
    stay = sorted(h for h, release in running.items() if release == target)
    moving = ", ".join(f"{h} ({running[h] or 'nothing'})" for h in move)
    return {
        "release": target,
        "reason": reason,
        "current": current,
        "move": move,
        "stay": stay,
        "nothing_to_do": not move,
        "summary": (
            f"every app host runs {target}"
            + (f", rolled back from {left}" if left else "")
            + ": nothing to do"
            if not move
            else f"roll back {moving} to {target} ({reason})"
            + (f"; {', '.join(stay)} already run it" if stay else "")
        ),
    }


ROLLBACK_DATABASE_KEY = "stagegate_rollback_database"
_DATABASE_SETTINGS = ("auto", "restore", "downgrade", "none")


def fleet_rollback_database(plan: Mapping[str, Any], setting: Any = "auto") -> dict[str, Any]:
    """What a fleet rollback (`fleet_rollback_plan`'s `plan`) does with the one database: the
    `stagegate_rollback_database` the database host's own rollback plan is made with, and why.

    `auto` leaves the database to the single host's rule (restore the backup taken before the
    release that migrated it) only while no app host runs the target yet; once some do (a
    rollout stopped after its first batch and its app-tier auto-rollback, or a fleet rollback
    interrupted after its restore), they have served from the database as it is since, a restore
    would lose what they wrote, and a fleet's migrations are backward compatible
    (docs/fleet.md), so it stays (`none`). `restore`, `downgrade` and `none` are done as said.
    Raises FleetError naming stagegate_rollback_database."""
    chosen = str(setting or "auto").strip()
    if chosen not in _DATABASE_SETTINGS:
        raise FleetError(
            f"{ROLLBACK_DATABASE_KEY}: {setting!r} is not one of {', '.join(_DATABASE_SETTINGS)}"
        )
    stay = list(plan.get("stay") or [])
    if plan.get("nothing_to_do"):
        return {"setting": "none", "reason": "no app host moves"}
    if chosen != "auto":
        return {"setting": chosen, "reason": f"{ROLLBACK_DATABASE_KEY}={chosen}"}
    if stay:
        return {
            "setting": "none",
            "reason": (
                f"{', '.join(stay)} already run {plan.get('release')} on the database as it is: "
                "it keeps its migrations (a restore would lose what they wrote; "
                f"-e {ROLLBACK_DATABASE_KEY}=restore forces one)"
            ),
        }
    return {"setting": "auto", "reason": "every app host leaves the release that migrated it"}


# ---- build once: the images every app host must hold -----------------------------------


IMAGE_COPY_MODES = {
    "save_load": "copy what a host lacks from the build host (docker save | docker load over SSH)",
    "none": "copy nothing; a host that lacks the build stops the run",
}


def fleet_images(
    built: Mapping[str, Mapping[str, Any]],
    seen: Mapping[str, Mapping[str, str]],
    source: str = "",
    copy: str = "none",
) -> dict[str, Any]:
    """The one image manifest of a fleet's release, whether every app host holds it, and what
    to copy to the hosts that do not.

    `built` is the build host's `compose_build` result `images` (`{service: {image,
    release_image, id}}`), `seen` each app host's engine (`{host: {image reference: id}}`, an
    empty id where the host lacks the image). A host lacks an image (`missing`) or holds
    another build under its name (`different`); `agree` when no host does. With `copy`
    (stagegate_fleet_image_copy) `save_load`, `copies` names per host the images it gets from the
    build host `source` (only those it lacks or holds another build of); `stop` says why the
    run cannot go on (`none` and a host without the build, or a build host without its own
    build: nothing to copy from), empty when it can."""
    if copy not in IMAGE_COPY_MODES:
        raise FleetError(
            f"stagegate_fleet_image_copy: {copy!r} is not one of "
            + ", ".join(f"{mode} ({what})" for mode, what in IMAGE_COPY_MODES.items())
        )
    if copy == "save_load" and not source:
        raise FleetError("fleet_images: save_load needs the build host to copy from (source)")
    manifest = {
        service: {"image": str(image.get("release_image") or image["image"]), "id": image["id"]}
        for service, image in sorted(built.items())
    }
    wanted = {entry["image"]: str(entry["id"]) for entry in manifest.values()}
    missing: dict[str, list[str]] = {}
    different: dict[str, dict[str, str]] = {}
    for host, ids in sorted(seen.items()):
        for ref, built_id in wanted.items():
            found = str(ids.get(ref) or "")
            if not found:
                missing.setdefault(host, []).append(ref)
            elif found != built_id:
                different.setdefault(host, {})[ref] = found
    problems = [f"{host} lacks {', '.join(refs)}" for host, refs in missing.items()] + [
        f"{host} holds another {ref} ({found[:19]}, the build made {wanted[ref][:19]})"
        for host, refs in different.items()
        for ref, found in refs.items()
    ]
    message = (
        f"all {len(seen)} app hosts hold the {len(manifest)} images of the build"
        if not problems
        else "; ".join(problems)
    )
    lacking = sorted(set(missing) | set(different))
    copies = {
        host: [r for r in wanted if r in missing.get(host, []) or r in different.get(host, {})]
        for host in lacking
        if copy == "save_load" and host != source
    }
    stop = ""
    if problems and copy == "none":
        stop = f"{message} (stagegate_fleet_image_copy is none: nothing is copied)"
    elif source in lacking:
        stop = (
            f"the build host {source} does not hold its own build, nothing to copy from: {message}"
        )
    return {
        "manifest": manifest,
        "missing": missing,
        "different": different,
        "agree": not problems,
        "message": message,
        "copies": copies,
        "copy_message": "; ".join(
            f"{', '.join(refs)} from {source} to {host}" for host, refs in copies.items()
        ),
        "stop": stop,
    }


def ssh_command(host: str, variables: Mapping[str, Any]) -> list[str]:
    """The start of the argv that runs a command on `host` the way Ansible reaches it, from its
    connection variables (address, port, user, key, the extra ssh arguments); empty for a host
    Ansible runs locally (`ansible_connection: local`). BatchMode: never a password prompt."""

    def first(*names: str) -> str:
        return next((str(variables[n]) for n in names if variables.get(n) not in (None, "")), "")

    connection = first("ansible_connection") or "ssh"
    if connection == "local":
        return []
    if connection not in ("ssh", "smart"):
        raise FleetError(
            f"ansible_connection: {host} is reached by {connection!r}; copying images needs "
            "ssh or local"
        )
    argv = [first("ansible_ssh_executable") or "ssh", "-o", "BatchMode=yes"]
    port = first("ansible_port", "ansible_ssh_port")
    key = first("ansible_ssh_private_key_file", "ansible_private_key_file")
    user = first("ansible_user", "ansible_ssh_user")
    argv += ["-p", port] if port else []
    argv += ["-i", os.path.expanduser(key)] if key else []
    argv += ["-l", user] if user else []
    for name in ("ansible_ssh_common_args", "ansible_ssh_extra_args"):
        argv += shlex.split(first(name))
    return [*argv, first("ansible_host", "ansible_ssh_host") or host]


def remote_command(ssh: Sequence[str], argv: Sequence[str]) -> list[str]:
    """`argv` run on the host `ssh` (ssh_command) reaches: one quoted command line for its
    shell, or `argv` itself when the host is the controller."""
    return [*ssh, shlex.join(argv)] if ssh else list(argv)
