# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Names that become one path component: archive names, releases, run ids.

One rule for every caller (pg_backup's `name`, the release in `releases/<release>/`, the run id
in an archive or report directory name): a value is used as a single file name inside a
directory the caller chose, so it must never climb out of it (`..`), replace it (an absolute
path) or reach below it (a separator).

The places on the deploy host named after a release live here too: its directory and manifest
under `<state_dir>/releases/`, and the release marker in the project directory.
"""

from __future__ import annotations

import os
import re
from typing import Any

# Control characters (NUL included) and both separators.
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f/\\]")


EXPECTED_NAME = (
    "one file name: letters, digits and '-', '_', '.', '+', '@', ':' "
    "(no '/', '\\', not '.' or '..', no leading '.')"
)


class UnsafeNameError(ValueError):
    """A value that cannot be used as one path component; the message names option and value,
    `problem` says what is wrong with it."""

    def __init__(self, message: str, problem: str) -> None:
        super().__init__(message)
        self.problem = problem


def safe_component(value: object, option: str) -> str:
    """`value` as a single path component, or UnsafeNameError naming `option`, the value and the
    expected form (no `/` or `\\`, not `.` or `..`, no leading `.`, no control characters)."""
    text = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    problem = ""
    if text is None:
        problem = f"must be a string, got {type(value).__name__}"
    elif not text.strip():
        problem = "is empty"
    elif text in (".", ".."):
        problem = "is a relative directory reference"
    elif text.startswith("/"):
        problem = "is an absolute path"
    elif _FORBIDDEN.search(text):
        problem = "contains a path separator or a control character"
    elif text.startswith("."):
        problem = "starts with '.' (names of hidden and temporary files)"
    if problem:
        raise UnsafeNameError(f"{option}={value!r} {problem}; expected {EXPECTED_NAME}", problem)
    return str(text)


# --- places named after a release ----------------------------------------------------------

RELEASE_MARKER = ".stagegate-release"  # in the project directory: the release it holds
MANIFEST_NAME = "manifest.json"


def releases_dir(state_dir: str) -> str:
    return os.path.join(state_dir, "releases")


def release_manifest_path(state_dir: str, release: object, option: str = "release") -> str:
    """`<state_dir>/releases/<release>/manifest.json`; UnsafeNameError naming `option` when the
    release is not one file name."""
    return os.path.join(releases_dir(state_dir), safe_component(release, option), MANIFEST_NAME)


def read_marker(project_dir: str) -> str | None:
    """The release the project directory's marker names (None: no marker, or an empty one)."""
    try:
        with open(os.path.join(project_dir, RELEASE_MARKER), encoding="utf-8") as handle:
            return handle.read().strip() or None
    except OSError:
        return None


def previous_release(
    marker: str | None,
    interrupted: dict[str, Any] | None = None,
    described: str | None = None,
) -> str:
    """The release that ran before this promotion ("" when nothing ran): the one an interrupted
    deploy had replaced (its manifest's `previous_release`) when this run resumes that deploy,
    else the release the checkout's marker names, else what `git describe` says of a checkout
    made by hand. The source role records it as `stagegate_previous_release`."""
    if interrupted:
        return str(interrupted.get("previous_release") or "")
    if marker and marker.strip():
        return marker.strip()
    return (described or "").strip()
