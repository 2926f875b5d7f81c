"""The record of a playbook run, kept by code as the run goes: which phase ran when, how each
ended for each host, and where the run stopped.

The callback `stagegate.release.progress` keeps it (`RunRecord.task_started`/`task_result` from
Ansible's callback events) and writes it to the JSON file named by `STAGEGATE_RUN_RECORD` before
each task starts; the `stagegate.release.gate` and `stagegate.release.run_record` actions read it
from there (`load_current`). A playbook therefore only says what to run: it does not time its
phases or work out which phase failed.

A task's phase is the phase tag of the playbook step it comes from (`tags: [backup]` on
`import_role: backup`, the tags `--tags <phase>` selects): Ansible lists a task's own tags before
those it inherits, so that is the last phase name among its tags. A role's own phase tags inside
(the backup role that adopt includes) do not move its tasks out of the step's phase. (Ansible
keeps the order of the levels, not of the tags of one level: one step should name one phase;
the adopt step, `tags: [adopt, preflight]`, is why `adopt` is optional, below.) A task with
no phase tag (the play's own steps) ends the phase that ran before it, and so does one tagged
`always` (Ansible adds each role's argument check with `always` and the role's tags, and runs it
under any `--tags`): such a task never starts a phase. A phase
whose every task was skipped for a host is `skipped` for that host (an optional phase, `adopt`,
is then left out: it did not happen); a task that says why its phase does not apply (the
`run_record` action's `skip_phase`, e.g. the build phase of a strategy without images) counts
as skipped and gives the phase its `note`; one in which a task failed
for a host (errors not ignored) is `failed`, and that failure is where the run stopped until a
gate reports it (`reported`): the gate that runs next (a rollback's, say) starts a new story.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stagegate.config import BEFORE_DEPLOY, PHASES

ENV_VAR = "STAGEGATE_RUN_RECORD"
RECORDED_PHASES = ("adopt", *PHASES)
ALWAYS = "always"
# Phases that are part of some runs only: not listed for a host when none of their tasks ran.
OPTIONAL_PHASES = frozenset({"adopt"})
# Where a failure means "refused before anything changed": no phase, or preflight (the deploy
# lock is preflight's last step).
REFUSAL_PHASES = frozenset({"", "preflight"})


def phase_of(tags: Iterable[str]) -> str:
    """The phase a task belongs to: the last phase name among its tags (the outermost: the
    playbook step's), else ""."""
    return next((tag for tag in reversed(list(tags)) if tag in RECORDED_PHASES), "")


@dataclass
class Failure:
    host: str
    phase: str
    task: str
    msg: str
    reported: bool = False

    def stopped(self) -> dict[str, str]:
        """The gate's `stopped` value: where (the phase, else the task) and why."""
        return {
            "phase": self.phase or self.task,
            # one line, as check messages are (a module's message may hold libpq's newlines)
            "reason": f"task '{self.task}' failed: {' '.join(self.msg.split())}",
        }


@dataclass
class PhaseRun:
    name: str
    started: float
    ended: float | None = None
    ran: dict[str, int] = field(default_factory=dict)  # host -> tasks run (not skipped)
    skipped: dict[str, int] = field(default_factory=dict)  # host -> tasks skipped
    failed: list[str] = field(default_factory=list)  # hosts
    reported: bool = False
    notes: dict[str, str] = field(default_factory=dict)  # host -> why the phase was skipped

    def status(self, host: str) -> str:
        if host in self.failed:
            return "failed"
        if self.skipped.get(host) and not self.ran.get(host):
            return "skipped"
        return "ok"


class RunRecord:
    """Phases and failures of one playbook run, fed by callback events."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.started = clock()
        self.phases: list[PhaseRun] = []
        self.failures: list[Failure] = []

    @property
    def current(self) -> PhaseRun | None:
        if self.phases and self.phases[-1].ended is None:
            return self.phases[-1]
        return None

    def task_started(self, tags: Iterable[str]) -> None:
        tags = list(tags)
        name = phase_of(tags)
        current = self.current
        if current is not None and current.name == name:
            return
        if current is not None:
            current.ended = self.clock()
        # A task tagged `always` runs under any --tags (the role argument checks Ansible adds,
        # the play's own steps): it ends the phase before it but does not start one.
        if name and ALWAYS not in tags:
            self.phases.append(PhaseRun(name, self.clock()))

    def task_result(
        self, host: str, status: str, task: str = "", msg: str = "", skip_note: str = ""
    ) -> None:
        """One host's result of the task that runs: ok, skipped or failed (not ignored).
        ``skip_note``: the task said why its phase does not apply (counted as skipped)."""
        current = self.current
        if status == "failed":
            phase = current.name if current else ""
            self.failures.append(Failure(host, phase, task, msg or "failed"))
            if current is not None and host not in current.failed:
                current.failed.append(host)
        elif current is not None:
            counts = current.skipped if status == "skipped" or skip_note else current.ran
            counts[host] = counts.get(host, 0) + 1
            if skip_note:
                current.notes[host] = skip_note

    def finish(self) -> None:
        """The play is over: the phase still open ends now."""
        current = self.current
        if current is not None:
            current.ended = self.clock()

    def reported(self) -> None:
        """A gate wrote its report: what is recorded so far is told; the next gate starts after."""
        for failure in self.failures:
            failure.reported = True
        for phase in self.phases:
            phase.reported = True

    def phases_for(self, host: str) -> list[dict[str, Any]]:
        """The phases not yet reported that ended, or failed, for one host:
        {name, status, seconds} and the `note` of a phase skipped with a reason."""
        return [
            {
                "name": p.name,
                "status": p.status(host),
                "seconds": round((p.ended or self.clock()) - p.started, 3),
                **({"note": p.notes[host]} if host in p.notes else {}),
            }
            for p in self.phases
            if not p.reported
            and (p.ended is not None or host in p.failed)
            and not (p.name in OPTIONAL_PHASES and p.status(host) == "skipped")
        ]

    def stopped_for(self, host: str) -> dict[str, str] | None:
        """Where and why the run stopped for one host: its first failure no gate reported."""
        failure = self._failure(host)
        return failure.stopped() if failure else None

    def _failure(self, host: str) -> Failure | None:
        return next((f for f in self.failures if f.host == host and not f.reported), None)

    def refused(self, host: str) -> bool:
        """Stopped before anything changed: the failure came before preflight ended."""
        failure = self._failure(host)
        return failure is not None and failure.phase in REFUSAL_PHASES

    def started_iso(self) -> str:
        return datetime.fromtimestamp(self.started, UTC).isoformat(timespec="seconds")

    def as_dict(self) -> dict[str, Any]:
        return {
            "started": self.started,
            "phases": [asdict(p) for p in self.phases],
            "failures": [asdict(f) for f in self.failures],
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], clock: Callable[[], float] = time.time
    ) -> RunRecord:
        record = cls(clock)
        record.started = float(data["started"])
        record.phases = [PhaseRun(**p) for p in data.get("phases") or []]
        record.failures = [Failure(**f) for f in data.get("failures") or []]
        return record

    def summary(self, host: str) -> dict[str, Any]:
        """What the `run_record` action returns for one host."""
        return {
            "started": self.started_iso(),
            "phases": self.phases_for(host),
            "stopped": self.stopped_for(host),
            "refused": self.refused(host),
            "before_deploy": _before_deploy(self._failure(host)),
        }

    def fleet_summary(self, hosts: Iterable[str]) -> dict[str, Any]:
        """What the `run_record` action returns for a fleet (docs/fleet.md): each phase once, in
        the order it first ran (a serial rollout runs deploy and validate once per batch: their
        time is added up), over the hosts that reached it: `failed` when it failed on any,
        `ok` when it ran on any, else `skipped`; where the run stopped is the first failure on
        any of `hosts` no gate reported, naming the host."""
        hosts = set(hosts)
        merged: dict[str, dict[str, Any]] = {}
        for p in self.phases:
            failed = [h for h in p.failed if h in hosts]
            if p.reported or (p.ended is None and not failed):
                continue
            ran = any(h in hosts for h in p.ran)
            skipped = any(h in hosts for h in p.skipped)
            status = "failed" if failed else "skipped" if skipped and not ran else "ok"
            seconds = round((p.ended or self.clock()) - p.started, 3)
            seen = merged.setdefault(p.name, {"name": p.name, "status": status, "seconds": 0.0})
            seen["seconds"] = round(seen["seconds"] + seconds, 3)
            seen["status"] = _fleet_status(seen["status"], status)
            note = next((p.notes[h] for h in sorted(p.notes) if h in hosts), None)
            if note and "note" not in seen:
                seen["note"] = note
        phases = [
            phase
            for phase in merged.values()
            if not (phase["name"] in OPTIONAL_PHASES and phase["status"] == "skipped")
        ]
        failure = next((f for f in self.failures if f.host in hosts and not f.reported), None)
        stopped = None
        if failure is not None:
            stopped = failure.stopped()
            stopped["reason"] = stopped["reason"].replace(
                "' failed: ", f"' failed on {failure.host}: ", 1
            )
        return {
            "started": self.started_iso(),
            "phases": phases,
            "stopped": stopped,
            "refused": failure is not None and failure.phase in REFUSAL_PHASES,
            "before_deploy": _before_deploy(failure),
        }


def _before_deploy(failure: Failure | None) -> bool:
    """Stopped before the deploy phase: the release that ran still runs, untouched."""
    return failure is not None and (
        failure.phase in REFUSAL_PHASES or failure.phase in BEFORE_DEPLOY
    )


def _fleet_status(one: str, other: str) -> str:
    """A phase's status over two runs of it: failed wins, then ok (it ran), then skipped."""
    for status in ("failed", "ok"):
        if status in (one, other):
            return status
    return "skipped"


def save(record: RunRecord, path: str | os.PathLike[str]) -> None:
    """Write the record where readers find it, whole or not at all (rename over the old one)."""
    target = Path(path)
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temp.write_text(json.dumps(record.as_dict()), encoding="utf-8")
    temp.replace(target)


def load_current(environ: Mapping[str, str] | None = None) -> RunRecord | None:
    """The record of the run this process belongs to, or None when no recorder runs (the
    callback is not enabled) or it wrote nothing yet."""
    path = (os.environ if environ is None else environ).get(ENV_VAR)
    if not path:
        return None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return RunRecord.from_dict(data)
