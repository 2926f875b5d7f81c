"""Where `make test`'s time goes: seconds per test file, from pytest's JUnit XML.

    pytest -n 2 --dist loadfile --junitxml=/tmp/before.xml tests
    .venv/bin/python bench/test_time.py /tmp/before.xml [/tmp/after.xml] [--top 40]

Each test case's time in the JUnit file is its setup + call + teardown, so a module-scoped
fixture (a shared stack) counts in its file's first test and the file total is what the file
costs a worker. With one file prints seconds, tests and share of the sum per file, largest
first; with two, both columns and the change. Compare shares between runs made under
different load, not seconds. It also prints the two workers' finishing times with xdist's file
order and with the costliest files first (a simulation of `--dist loadfile`).
"""

from __future__ import annotations

import argparse
import heapq
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path


def per_file(junit: Path) -> dict[str, tuple[float, int]]:
    """{test file: (seconds, test cases)} from one JUnit XML file."""
    seconds: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for case in ET.parse(junit).iter("testcase"):  # noqa: S314
        # classname is the dotted module path (plus a class): tests.unit.test_x.TestY
        parts = case.get("classname", "").split(".")
        module = next((i for i, p in enumerate(parts) if p.startswith("test_")), len(parts) - 1)
        name = "/".join(parts[: module + 1]) + ".py"
        seconds[name] += float(case.get("time", "0"))
        count[name] += 1
    return {name: (seconds[name], count[name]) for name in seconds}


def makespan(costs: dict[str, float], order: list[str], workers: int = 2) -> float:
    """When the last of `workers` finishes, each taking the next file in `order` when free."""
    finish = [0.0] * workers
    for name in order:
        heapq.heappush(finish, heapq.heappop(finish) + costs[name])
    return max(finish)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("junit", type=Path, nargs="+", help="one or two JUnit XML files")
    parser.add_argument("--top", type=int, default=40, help="rows to print (default 40)")
    args = parser.parse_args()
    runs = [per_file(path) for path in args.junit[:2]]
    totals = [sum(s for s, _ in run.values()) for run in runs]
    names = sorted(set().union(*runs), key=lambda n: -max(r.get(n, (0.0, 0))[0] for r in runs))
    header = "".join(f"{'s':>9} {'tests':>5} {'share':>6}" for _ in runs)
    print(f"{'file':<48}{header}")
    for name in names[: args.top]:
        row = ""
        for run, total in zip(runs, totals, strict=True):
            secs, n = run.get(name, (0.0, 0))
            row += f"{secs:9.1f} {n:5d} {100 * secs / total:5.1f}%"
        print(f"{name:<48}{row}")
    summary = "".join(
        f"{total:9.1f} {sum(n for _, n in run.values()):5d} {'':6}"
        for run, total in zip(runs, totals, strict=True)
    )
    print(f"{'all files (sum over workers)':<48}{summary}")
    if len(runs) == 2:
        print(f"change of the sum: {100 * (totals[1] - totals[0]) / totals[0]:+.1f}%")
    for path, run in zip(args.junit, runs, strict=False):
        costs = {name: secs for name, (secs, _) in run.items()}
        # xdist's default: most tests first, ties in collection (path) order
        by_tests = sorted(sorted(run), key=lambda n: -run[n][1])
        by_cost = sorted(run, key=lambda n: -costs[n])
        print(
            f"{path}: two workers finish after {makespan(costs, by_tests):.0f} s taking files "
            f"by number of tests, {makespan(costs, by_cost):.0f} s taking the costliest first"
        )


if __name__ == "__main__":
    main()
