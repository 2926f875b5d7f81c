"""Running the collection's playbooks through ansible-runner, as AWX does: the `stagegate
promote|rollback|validate` commands.

The run is read from runner's job events and the run record the callback
stagegate.release.progress keeps (`stagegate.runrecord`: the phases of the playbook's steps, by
their phase tags): a line when a phase starts and one when it ends, with its time and status;
the first failed task; and the verdict the gate published with `set_stats`. `exit_code` turns
that into the documented exit codes (README "Command line").
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from stagegate import runrecord

EXIT_GO = 0
EXIT_NOT_FOUND = 1  # `ledger last-good`, `report show`: nothing to show
EXIT_CONFIG = 2  # bad input or configuration: nothing changed
EXIT_WARNINGS = 3  # GO_WITH_WARNINGS, only with --warn-exit (otherwise it exits 0)
EXIT_NO_GO = 4
EXIT_ERROR = 5  # the run failed without a verdict (unreachable host, a phase's error, ...)

PLAYBOOKS = {
    "promote": "stagegate.release.staging",
    "rollback": "stagegate.release.rollback",
    "restore": "stagegate.release.restore",
    "validate": "stagegate.release.validate",
}
# Tasks whose failure means the configuration is wrong (they run before anything changes).
CONFIG_ACTIONS = frozenset(
    {
        "stagegate.release.validate_config",
        "validate_config",
        "ansible.builtin.validate_argument_spec",
        "validate_argument_spec",
    }
)
# ansible-playbook's own exit codes for a playbook or command line it cannot parse.
PLAYBOOK_PARSE_ERRORS = (4, 5)


class RunInputError(ValueError):
    """A bad command-line value for a run (exit EXIT_CONFIG)."""


@dataclass
class Phase:
    name: str
    started: float
    seconds: float | None = None
    status: str = ""  # ok, skipped or failed, once the phase ended
    note: str = ""  # why a skipped phase does not apply

    @property
    def failed(self) -> bool:
        return self.status == "failed"


@dataclass
class RunOutcome:
    """What one playbook run came to, read from runner's events."""

    playbook: str
    rc: int
    status: str
    artifact_dir: str = ""
    stats: dict[str, Any] = field(default_factory=dict)
    phases: list[Phase] = field(default_factory=list)
    failed_task: dict[str, str] | None = None
    output: str = ""  # the end of ansible-playbook's output when it failed before any task
    check_mode: bool = False  # --check: a plan, which may end without a verdict

    @property
    def planned(self) -> bool:
        """A --check run that ended well and published no verdict (the plan of a first
        deploy, of a rollback or a restore): its plan is its outcome."""
        return self.check_mode and self.rc == 0 and self.status == "successful" and not self.verdict

    @property
    def verdict(self) -> str | None:
        value = self.stats.get("stagegate_verdict")
        return str(value) if value else None

    def as_dict(self, code: int) -> dict[str, Any]:
        return {
            "playbook": self.playbook,
            "exit_code": code,
            "outcome": outcome_name(self.verdict, code, self.planned),
            "verdict": self.verdict,
            "score": self.stats.get("stagegate_score"),
            "report_dir": self.stats.get("stagegate_report_dir"),
            "report": self.stats.get("stagegate_report"),
            "failed_checks": self.stats.get("stagegate_failed_checks") or [],
            "failed_task": self.failed_task,
            "output": self.output,
            "phases": [
                {"name": p.name, "status": p.status, "seconds": p.seconds, "failed": p.failed}
                for p in self.phases
            ],
            "ansible_rc": self.rc,
            "runner_status": self.status,
            "artifact_dir": self.artifact_dir,
        }


OUTCOME_NAMES = {
    EXIT_GO: "GO",
    EXIT_NOT_FOUND: "NOT_FOUND",
    EXIT_CONFIG: "CONFIGURATION_ERROR",
    EXIT_WARNINGS: "GO_WITH_WARNINGS",
    EXIT_NO_GO: "NO_GO",
    EXIT_ERROR: "EXECUTION_ERROR",
}


PLANNED = "PLANNED"


def outcome_name(verdict: str | None, code: int, planned: bool = False) -> str:
    """The name of a run's outcome: its exit code's, except that exit 0 after a
    GO_WITH_WARNINGS verdict (without --warn-exit) says GO_WITH_WARNINGS, not GO, and a --check
    run that planned without a verdict says PLANNED."""
    if code == EXIT_GO and verdict == "GO_WITH_WARNINGS":
        return verdict
    if code == EXIT_GO and planned:
        return PLANNED
    return OUTCOME_NAMES[code]


def exit_code(outcome: RunOutcome, warn_exit: bool = False) -> int:
    """The documented exit code of a run (README "Command line")."""
    failed_action = (outcome.failed_task or {}).get("action", "")
    if failed_action in CONFIG_ACTIONS or (
        outcome.verdict is None and outcome.rc in PLAYBOOK_PARSE_ERRORS
    ):
        return EXIT_CONFIG
    if outcome.verdict == "NO_GO":
        return EXIT_NO_GO
    if outcome.planned:
        return EXIT_GO
    if outcome.rc != 0 or outcome.status != "successful" or outcome.verdict is None:
        return EXIT_ERROR
    if outcome.verdict == "GO_WITH_WARNINGS" and warn_exit:
        return EXIT_WARNINGS
    return EXIT_GO


def phase_of(
    event_data: dict[str, Any], strategy_roles: frozenset[str] = frozenset()
) -> str | None:
    """The phase a task belongs to: its role's short name, else the play's own tasks; None for
    a task of a deploy strategy's role (`strategy_roles`, short names), which belongs to the
    step that included it (deploy, rollback, restore)."""
    role = str(event_data.get("role") or "")
    name = role.rsplit(".", 1)[-1] if role else "playbook"
    return None if name in strategy_roles else name


def strategy_role_names() -> frozenset[str]:
    """The short names of every registered deploy strategy's role (built-ins and plugins')."""
    from stagegate.plugins import get_hooks  # noqa: PLC0415 - only the run commands need it

    return frozenset(s.role.rsplit(".", 1)[-1] for s in get_hooks().deploy_strategies().values())


def _phase_status(phase: runrecord.PhaseRun) -> tuple[str, str]:
    """(status, note) of a recorded phase over its hosts: failed on any host, skipped when
    every host skipped it, else ok."""
    hosts = {*phase.ran, *phase.skipped, *phase.failed}
    statuses = {phase.status(host) for host in hosts}
    if "failed" in statuses:
        return "failed", ""
    if statuses == {"skipped"}:
        return "skipped", next(iter(phase.notes.values()), "")
    return "ok", ""


class Progress:
    """Follows runner's events: the phases of the run record at `record_path` (one line when a
    phase starts, one when it ends, with its time and status) and failures as they happen."""

    def __init__(
        self,
        out: TextIO | None,
        record_path: str | os.PathLike[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.out = out
        self.record_path = str(record_path) if record_path else ""
        self.clock = clock
        self.phases: list[Phase] = []
        self.strategy_roles = strategy_role_names()
        self.failed_task: dict[str, str] | None = None
        self.stats: dict[str, Any] = {}

    def _say(self, text: str) -> None:
        if self.out is not None:
            print(f"stagegate: {text}", file=self.out, flush=True)

    def _record(self) -> runrecord.RunRecord | None:
        if not self.record_path:
            return None
        return runrecord.load_current({runrecord.ENV_VAR: self.record_path})

    def follow(self, final: bool = False) -> None:
        """Announce the phases the record started or ended since the last look; with `final`
        (the run is over) a phase still open ends now."""
        record = self._record()
        for index, run in enumerate(record.phases if record else []):
            if index == len(self.phases):
                self.phases.append(Phase(run.name, run.started))
                self._say(f"phase {run.name} started")
            phase = self.phases[index]
            ended = run.ended if run.ended is not None else (self.clock() if final else None)
            if phase.seconds is None and ended is not None:
                phase.seconds = round(ended - run.started, 1)
                phase.status, phase.note = _phase_status(run)
                note = f": {phase.note}" if phase.note else ""
                self._say(f"phase {run.name} {phase.status} ({phase.seconds:.1f} s){note}")

    def __call__(self, event: dict[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        if kind == "playbook_on_task_start":
            self.follow()
        elif kind in ("runner_on_failed", "runner_on_unreachable") and not data.get(
            "ignore_errors"
        ):
            self._record_failure(data)
        elif kind == "playbook_on_stats":
            self.stats = dict(data.get("artifact_data") or {})
        return True  # keep every event in the artifact dir

    def _current_phase(self, data: dict[str, Any]) -> str:
        """The recorded phase that runs, else the task's role (a step tagged `always`, such as
        the configuration check, starts no phase)."""
        record = self._record()
        current = record.current if record else None
        if current is not None:
            return current.name
        return phase_of(data, self.strategy_roles) or "playbook"

    def _record_failure(self, data: dict[str, Any]) -> None:
        self.follow()  # the failed task's phase is announced before its failure
        result = data.get("res") or {}
        message = str(result.get("msg") or result.get("stderr") or "failed")
        self._say(f"  FAILED {data.get('task', '')}: {message.splitlines()[0][:300]}")
        if self.failed_task is None:
            self.failed_task = {
                "task": str(data.get("task", "")),
                "action": str(data.get("task_action", "")),
                "phase": self._current_phase(data),
                "host": str(data.get("host", "")),
                "msg": message,
            }


def runner_dir() -> Path:
    """Where runs keep their runner private data dir (artifacts, job events)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(os.environ.get("STAGEGATE_RUNNER_DIR") or Path(base) / "stagegate" / "runner")


def parse_extra_vars(items: list[str]) -> dict[str, Any]:
    """`-e` values as ansible-playbook reads them: JSON/YAML, `@file`, or `key=value` pairs."""
    import yaml  # noqa: PLC0415 - only the run commands need it

    merged: dict[str, Any] = {}
    for item in items:
        if item.startswith("@"):
            loaded = yaml.safe_load(Path(item[1:]).read_text(encoding="utf-8"))
        elif item.lstrip().startswith(("{", "[")):
            loaded = yaml.safe_load(item)
        else:
            loaded = dict(pair.split("=", 1) for pair in item.split() if "=" in pair)
            if not loaded:
                raise RunInputError(f"-e {item!r}: expected key=value, JSON, or @file")
        if not isinstance(loaded, dict):
            raise RunInputError(f"-e {item!r}: expected a mapping of variables")
        merged.update(loaded)
    return merged


def run_playbook(
    command: str,
    inventory: str | None,
    extravars: dict[str, Any],
    cmdline: list[str],
    progress_out: TextIO | None = sys.stderr,
) -> RunOutcome:
    """Run the command's playbook with ansible_runner.run from the current directory (so its
    ansible.cfg applies) and follow it."""
    import ansible_runner  # noqa: PLC0415 - imported when a run is asked for, not for --help

    playbook = PLAYBOOKS[command]
    private = runner_dir()
    private.mkdir(parents=True, exist_ok=True)
    # The callback keeps the run record where this process reads the phases: a file of the
    # user's (STAGEGATE_RUN_RECORD, kept) or one of this run's, removed when it ends.
    record_path = os.environ.get(runrecord.ENV_VAR, "")
    own_record = not record_path
    if own_record:
        fd, record_path = tempfile.mkstemp(prefix="run-record-", suffix=".json", dir=private)
        os.close(fd)
    progress = Progress(progress_out, record_path)
    kwargs: dict[str, Any] = {
        "private_data_dir": str(private),
        "project_dir": os.getcwd(),
        "playbook": playbook,
        "extravars": extravars,
        "cmdline": " ".join(cmdline) if cmdline else None,
        "quiet": True,
        "event_handler": progress,
        "rotate_artifacts": 20,
        # Not kept in <private dir>/env/: runner writes envvars (and extravars) there only when
        # absent and then prefers the file, so a second run took the first run's record path.
        "suppress_env_files": True,
        "envvars": {"ANSIBLE_NOCOLOR": "1", runrecord.ENV_VAR: record_path},
    }
    if inventory:
        if "," not in inventory and not Path(inventory).exists():
            raise RunInputError(f"-i {inventory}: no such inventory file or directory")
        kwargs["inventory"] = str(Path(inventory).resolve()) if "," not in inventory else inventory
    # The ansible-playbook of this package's own environment first, also when that is not on
    # PATH (a venv's bin/stagegate run without activating the venv).
    own_bin = str(Path(sys.executable).parent)
    kwargs["envvars"]["PATH"] = os.pathsep.join((own_bin, os.environ.get("PATH", os.defpath)))
    try:
        runner = ansible_runner.run(**{k: v for k, v in kwargs.items() if v is not None})
        progress.follow(final=True)
    finally:
        if own_record:
            Path(record_path).unlink(missing_ok=True)
    outcome = RunOutcome(
        playbook=playbook,
        rc=int(runner.rc if runner.rc is not None else -1),
        status=str(runner.status),
        artifact_dir=str(runner.config.artifact_dir),
        stats=progress.stats,
        phases=progress.phases,
        failed_task=progress.failed_task,
        check_mode="--check" in cmdline,
    )
    if runner.rc and progress.failed_task is None:  # failed before any task: say why
        outcome.output = "\n".join(runner.stdout.read().strip().splitlines()[-5:])
    elif outcome.planned:  # the plan is what the user asked for
        outcome.output = plan_of(runner.stdout.read())
    return outcome


def plan_of(stdout: str, lines: int = 40) -> str:
    """What a --check run printed before its recap (the plan and the last task's message),
    its last `lines` lines."""
    text = stdout.split("PLAY RECAP", 1)[0].strip()
    return "\n".join(text.splitlines()[-lines:])


def summary(outcome: RunOutcome, code: int) -> str:
    """The human end-of-run lines (`--json` prints `RunOutcome.as_dict` instead)."""
    name = outcome_name(outcome.verdict, code, outcome.planned)
    lines = [f"stagegate: {outcome.playbook}: {name} (exit {code})"]
    if outcome.planned:
        lines.append("check mode: nothing changed; the plan is the run's output:")
        lines.append(outcome.output)
    if outcome.verdict:
        lines.append(f"verdict {outcome.verdict}, score {outcome.stats.get('stagegate_score')}%")
        failed = outcome.stats.get("stagegate_failed_checks") or []
        lines.append("failed checks: " + (", ".join(map(str, failed)) or "none"))
        lines.append(f"report: {outcome.stats.get('stagegate_report_dir')}")
    if outcome.failed_task and code in (EXIT_CONFIG, EXIT_ERROR):
        task = outcome.failed_task
        lines.append(f"failed in phase {task['phase']}, task {task['task']!r}: {task['msg']}")
    if code == EXIT_ERROR and not (outcome.verdict or outcome.failed_task or outcome.output):
        lines.append("no host ran the playbook: does the inventory have a `staging` group?")
    if outcome.output:
        lines.append(f"ansible-playbook exited {outcome.rc}:\n{outcome.output}")
    lines.append(f"job events and output: {outcome.artifact_dir}")
    return "\n".join(lines)


def dumps(outcome: RunOutcome, code: int) -> str:
    return json.dumps(outcome.as_dict(code), indent=2, default=str)
