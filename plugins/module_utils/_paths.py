# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Names that become one path component: archive names, releases, run ids.

One rule for every caller (pg_backup's `name`, the release in `releases/<release>/`, the run id
in an archive or report directory name): a value is used as a single file name inside a
directory the caller chose, so it must never climb out of it (`..`), replace it (an absolute
path) or reach below it (a separator).
"""

from __future__ import annotations

import os
import re

# Control characters (NUL included) and both separators.
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f/\\]")


class UnsafeNameError(ValueError):
    """A value that cannot be used as one path component; the message names option and value."""


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
        raise UnsafeNameError(
            f"{option}={value!r} {problem}; expected one file name: letters, digits and "
            "'-', '_', '.', '+', '@', ':' (no '/', '\\', not '.' or '..', no leading '.')"
        )
    return str(text)


# The release manifests on the deploy host: `<state_dir>/releases/<release>/manifest.json`.
RELEASES_DIR = "releases"
MANIFEST_NAME = "manifest.json"


def releases_dir(state_dir: str | os.PathLike[str]) -> str:
    return os.path.join(state_dir, RELEASES_DIR)


def release_manifest_path(state_dir: str | os.PathLike[str], release: str) -> str:
    """The release manifest's path; the caller checks `release` with `safe_component`."""
    return os.path.join(releases_dir(state_dir), release, MANIFEST_NAME)
