"""An example third-party stagegate plugin, installed through its `stagegate` entry point.

- check type `word_count`: a file on the controller must contain a word at least N times;
- verdict policy: with `config['example_strict']`, GO_WITH_WARNINGS becomes NO_GO.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stagegate import hookimpl
from stagegate.checks import CheckError, CheckType, Outcome, RunContext


def run_word_count(options: dict[str, Any], context: RunContext) -> Outcome:
    try:
        text = Path(options["path"]).read_text(encoding="utf-8")
    except OSError as exc:
        raise CheckError(f"cannot read {options['path']}: {exc.strerror}") from None
    count = text.split().count(options["word"])
    status = "PASS" if count >= options["min_count"] else "FAIL"
    outcome = Outcome(status, f"{options['word']!r} appears {count} times", value=count)
    outcome.measure("count", count)
    return outcome


WORD_COUNT = CheckType(
    name="word_count",
    description="a file contains a word at least min_count times",
    options={
        "path": {"type": "str", "required": True},
        "word": {"type": "str", "required": True},
        "min_count": {"type": "int", "default": 1},
    },
    run=run_word_count,
    host_capable=False,
)


@hookimpl
def stagegate_check_types() -> list[CheckType]:
    return [WORD_COUNT]


@hookimpl(wrapper=True)
def stagegate_adjust_verdict(verdict: str, config: dict[str, Any]) -> Any:
    adjusted = yield
    if config.get("example_strict") and adjusted == "GO_WITH_WARNINGS":
        return "NO_GO"
    return adjusted
