"""Fixtures for the grading and gate tests: real JUnit XML result files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def junit_file(tmp_path: Path) -> Callable[[int, int], Path]:
    """Write a JUnit XML file with `tests` testcases of which the first `failures` fail."""

    def write(tests: int, failures: int) -> Path:
        cases = "".join(
            f'<testcase classname="t" name="t{i}">'
            + ("<failure message='boom'>boom</failure>" if i < failures else "")
            + "</testcase>"
            for i in range(tests)
        )
        path = tmp_path / f"junit-{tests}-{failures}.xml"
        path.write_text(
            f'<?xml version="1.0"?><testsuites><testsuite name="unit" tests="{tests}" '
            f'failures="{failures}" errors="0" skipped="0">{cases}</testsuite></testsuites>',
            encoding="utf-8",
        )
        return path

    return write
