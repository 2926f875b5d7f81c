"""The runbook maps (docs/runbooks/*.md): each count matches its rows, the README lists them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MAPS = sorted((REPO / "docs" / "runbooks").glob("*.md"))
ROW = re.compile(r"^\| (\d+)(?:-(\d+))? \| (?:[^|\\]|\\\|)*\| (automated|manual|not yet)", re.M)
COVERAGE = re.compile(
    r"\*\*Coverage: (\d+) steps: (\d+) automated, (\d+) manual, (\d+) not yet\.\*\*"
)


def tally(text: str) -> tuple[list[int], dict[str, int]]:
    numbers: list[int] = []
    counts = {"automated": 0, "manual": 0, "not yet": 0}
    for match in ROW.finditer(text):
        first = int(match.group(1))
        last = int(match.group(2) or first)
        numbers += range(first, last + 1)
        counts[match.group(3)] += last - first + 1
    return numbers, counts


def test_five_maps() -> None:
    assert [p.stem for p in MAPS] == [
        "ac6",
        "aragora-production",
        "aragora-staging",
        "lsos",
        "temponest",
    ]


@pytest.mark.parametrize("path", MAPS, ids=[p.stem for p in MAPS])
def test_map_counts_match_its_rows(path: Path) -> None:
    text = path.read_text()
    numbers, counts = tally(text)
    assert numbers == list(range(1, len(numbers) + 1)), "steps numbered in order, none skipped"
    found = COVERAGE.search(text)
    assert found, "a **Coverage: N steps: ...** line"
    total, automated, manual, not_yet = map(int, found.groups())
    assert (total, automated, manual, not_yet) == (
        len(numbers),
        counts["automated"],
        counts["manual"],
        counts["not yet"],
    )
    readme = (REPO / "README.md").read_text()
    assert f"(docs/runbooks/{path.name}) | {automated} / {manual} / {not_yet} |" in readme
