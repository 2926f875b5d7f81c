"""Each task's wall time in one playbook run, for bench/staging_bench.py (not a product plugin).

Enabled by the bench only (ANSIBLE_CALLBACK_PLUGINS=bench/callback,
ANSIBLE_CALLBACKS_ENABLED=...,task_times); writes one JSON object to the file named by
STAGEGATE_BENCH_TASK_TIMES: the wall-clock time of the first task's start and of the run's end,
and per task its name, action, seconds (from its start to the next task's start, so the
strategy's own work between tasks is counted with the task before it) and whether a module ran
on the host (its result carries `invocation`, which only a module run returns).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: task_times
type: aggregate
short_description: each task's wall time, for bench/staging_bench.py
description: Writes each task's wall time to the file named by STAGEGATE_BENCH_TASK_TIMES.
"""


class CallbackModule(CallbackBase):  # type: ignore[misc]
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_times"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.tasks: list[dict[str, Any]] = []
        self.first_start: float | None = None

    def _close_last(self, now: float) -> None:
        if self.tasks and "seconds" not in self.tasks[-1]:
            self.tasks[-1]["seconds"] = now - self.tasks[-1].pop("started")

    def _start(self, task: Any) -> None:
        now = time.time()
        self._close_last(now)
        self.first_start = self.first_start or now
        self.tasks.append(
            {"name": task.get_name(), "action": task.action, "started": now, "module": False}
        )

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        self._start(task)

    def v2_playbook_on_handler_task_start(self, task: Any) -> None:
        self._start(task)

    def _result(self, result: Any, *_: Any, **__: Any) -> None:
        if self.tasks and "invocation" in result._result:
            self.tasks[-1]["module"] = True

    v2_runner_on_ok = v2_runner_on_failed = _result

    def v2_playbook_on_stats(self, stats: Any) -> None:
        now = time.time()
        self._close_last(now)
        path = os.environ.get("STAGEGATE_BENCH_TASK_TIMES")
        if path:
            with open(path, "w", encoding="utf-8") as fh:
                json.dump({"first_task": self.first_start, "end": now, "tasks": self.tasks}, fh)
