"""The check runner's scheduling (module_utils/_checks_runner.run_bounded), shared by the
controller's engine and the host module: an `alone` job (a load run) starts after every other
job has finished and nothing runs beside it."""

from __future__ import annotations

import threading
import time

from ansible_collections.stagegate.release.plugins.module_utils._checks_runner import (
    Job,
    run_bounded,
)


def test_an_alone_job_runs_after_the_others_with_nothing_beside_it() -> None:
    lock = threading.Lock()
    running: set[str] = set()
    seen: list[tuple[str, frozenset[str]]] = []  # (started, what else was running then)

    def job(name: str, alone: bool = False) -> Job[str]:
        def run(_: threading.Event) -> str:
            with lock:
                seen.append((name, frozenset(running)))
                running.add(name)
            time.sleep(0.05)
            with lock:
                running.discard(name)
            return name

        return Job(run=run, deadline_s=5, on_timeout=lambda: "late", alone=alone)

    jobs = [job("load", alone=True), job("a"), job("b"), job("c"), job("soak", alone=True)]

    results = run_bounded(jobs, concurrency=3)

    assert results == ["load", "a", "b", "c", "soak"]  # the jobs' order, as before
    order = [name for name, _ in seen]
    assert set(order[:3]) == {"a", "b", "c"}
    assert order[3:] == ["load", "soak"]
    assert dict(seen)["load"] == frozenset()
    assert dict(seen)["soak"] == frozenset()
