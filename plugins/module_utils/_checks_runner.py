# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bounded concurrent execution with deadlines, shared by the engine and the module.

Standard library only. Jobs run in daemon threads, at most `concurrency` at once; a job
that outlives its deadline is reported through its `on_timeout` and its slot is freed,
so one hung dependency never hangs the run (its thread is abandoned, and being a daemon
it does not keep the process alive).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ansible_collections.stagegate.release.plugins.module_utils._checks_common import (
    ERROR,
    NOT_RETRIED,
    CheckError,
    CheckType,
    FinalCheckError,
    Outcome,
    RunContext,
    worth_retrying,
)
from ansible_collections.stagegate.release.plugins.module_utils._checks_redact import Redactor

T = TypeVar("T")


@dataclass
class Job(Generic[T]):
    """One unit of work: `run(cancelled)` returns a T; `on_timeout()` replaces it when late,
    `on_skip()` when it never started because the run stopped early; an `alone` job runs after
    the others, with nothing beside it."""

    run: Callable[[threading.Event], T]
    deadline_s: float
    on_timeout: Callable[[], T]
    on_skip: Callable[[], T] | None = None
    alone: bool = False


def run_bounded(
    jobs: list[Job[T]], concurrency: int, stop: Callable[[list[T]], bool] | None = None
) -> list[T]:
    """Run every job, at most `concurrency` at once; results in the jobs' order. `alone` jobs
    start after every other job has finished, one at a time.

    When `stop(finished results)` turns true, jobs not yet started are not started: each
    gets its `on_skip()` result (a failure budget). Running jobs still finish.
    """
    results: list[Any] = [None] * len(jobs)
    finished: queue.Queue[tuple[int, T]] = queue.Queue()
    running: dict[int, tuple[float, threading.Event]] = {}
    pending = sorted(range(len(jobs)), key=lambda index: jobs[index].alone)  # stable
    completed: list[T] = []

    def worker(index: int, cancelled: threading.Event) -> None:
        finished.put((index, jobs[index].run(cancelled)))

    def record(index: int, result: T) -> None:
        results[index] = result
        completed.append(result)

    while len(completed) < len(jobs):
        if pending and stop is not None and stop(completed):
            for index in pending:
                skip = jobs[index].on_skip or jobs[index].on_timeout
                record(index, skip())
            pending = []
            continue
        while pending and len(running) < max(1, concurrency):
            if running and (jobs[pending[0]].alone or any(jobs[i].alone for i in running)):
                break
            index = pending.pop(0)
            cancelled = threading.Event()
            running[index] = (time.monotonic() + jobs[index].deadline_s, cancelled)
            threading.Thread(target=worker, args=(index, cancelled), daemon=True).start()
        wait = max(0.0, min(deadline for deadline, _ in running.values()) - time.monotonic())
        try:
            index, result = finished.get(timeout=wait)
            if index in running:
                del running[index]
                record(index, result)
        except queue.Empty:
            now = time.monotonic()
            for index, (deadline, cancelled) in list(running.items()):
                if deadline <= now:
                    cancelled.set()
                    del running[index]
                    record(index, jobs[index].on_timeout())
    return results


def redactor_for(check_type: CheckType, options: dict[str, Any]) -> Redactor:
    """A redactor that knows this check's secret option values: no_log options, values under
    secret-looking names at any depth (headers, step bodies, env) and secret argv values."""
    redactor = Redactor().learn(options)
    for key in check_type.secret_options():
        value = options.get(key)
        if isinstance(value, (str, int, float)):
            redactor.add(value)
    return redactor


NOT_READ_ONLY = "not run in check mode: the check is not read-only"


def skipped_in_check_mode(check_mode: bool, read_only: bool) -> Outcome | None:
    """The check-mode rule of both runners (the controller's engine and the host module): in
    check mode only read-only checks run; any other is a SKIP outcome, never run."""
    return Outcome("SKIP", NOT_READ_ONLY) if check_mode and not read_only else None


def run_type(check_type: CheckType, options: dict[str, Any], context: RunContext) -> Outcome:
    """One attempt of one check; every failure becomes an ERROR outcome, never a traceback."""
    try:
        outcome = check_type.run(dict(options), context)
    except FinalCheckError as exc:
        outcome = Outcome(ERROR, str(exc), details={NOT_RETRIED: "another attempt gets the same"})
    except CheckError as exc:
        outcome = Outcome(ERROR, str(exc))
    except Exception as exc:
        outcome = Outcome(ERROR, f"check type {check_type.name} raised {type(exc).__name__}: {exc}")
    outcome.message = context.redactor.text(outcome.message)
    outcome.details = context.redactor.data(outcome.details)
    if isinstance(outcome.value, (str, dict, list)):
        outcome.value = context.redactor.data(outcome.value)
    return outcome


def attempts(
    total: int,
    delay: float,
    cancelled: threading.Event,
    attempt: Callable[[], T],
    again: Callable[[T], bool],
) -> tuple[T, int]:
    """Call `attempt` up to `total` times while `again(result)`, sleeping `delay` between."""
    number = 1
    result = attempt()
    while number < total and again(result) and not cancelled.wait(delay):
        number += 1
        result = attempt()
    return result, number


def deadline_for(check: dict[str, Any], check_type: CheckType | None = None) -> float:
    """Overall deadline of a check: every attempt's time (its timeout, plus what its type
    adds, e.g. a latency series), the delays between attempts, and a grace second."""
    attempts_total = int(check.get("retries", 0)) + 1
    timeout = float(check["timeout"])
    per_attempt = (
        check_type.attempt_seconds(check.get("options") or {}, timeout) if check_type else timeout
    )
    return attempts_total * per_attempt + (attempts_total - 1) * float(check["delay"]) + 1.0


def run_checks_here(
    checks: list[dict[str, Any]], types: dict[str, CheckType], concurrency: int, check_mode: bool
) -> list[dict[str, Any]]:
    """Run validated check dicts (CheckSpec.to_dict()) in this process: the host module's path.

    Each returns an outcome dict plus `attempts` and `duration_ms`; bands are graded by the
    controller. Checks that are not read-only are skipped in check mode.
    """

    def job(check: dict[str, Any]) -> Job[dict[str, Any]]:
        check_type = types[check["type"]]

        def run(cancelled: threading.Event) -> dict[str, Any]:
            started = time.monotonic()
            read_only = check_type.is_read_only(check["options"], check.get("read_only"))
            skipped = skipped_in_check_mode(check_mode, read_only)
            if skipped is not None:
                outcome, number = skipped, 0
            else:
                context = RunContext(
                    name=check["name"],
                    timeout=float(check["timeout"]),
                    check_mode=check_mode,
                    cancelled=cancelled,
                    redactor=redactor_for(check_type, check["options"]),
                )
                outcome, number = attempts(
                    int(check.get("retries", 0)) + 1,
                    float(check["delay"]),
                    cancelled,
                    lambda: run_type(check_type, check["options"], context),
                    lambda o: worth_retrying(o.status, o.details),
                )
            data = outcome.to_dict()
            data.update(attempts=number, duration_ms=round((time.monotonic() - started) * 1000, 1))
            return data

        def timed_out() -> dict[str, Any]:
            seconds = deadline_for(check, check_type)
            return {
                **Outcome(ERROR, f"timed out after {seconds:g}s").to_dict(),
                "attempts": int(check.get("retries", 0)) + 1,
                "duration_ms": seconds * 1000,
            }

        return Job(
            run=run,
            deadline_s=deadline_for(check, check_type),
            on_timeout=timed_out,
            alone=check_type.runs_alone,
        )

    return run_bounded([job(check) for check in checks], concurrency)
