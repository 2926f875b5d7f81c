# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the controller-side plugins (actions, filters) share: the stagegate package they need.

Each plugin imports what it uses from `stagegate` under try/except and keeps the ImportError;
`require_stagegate` turns it into the one message that says how to install the package.
"""

from __future__ import annotations

from ansible.errors import AnsibleError


def require_stagegate(
    plugin: str, import_error: Exception | None, error_class: type[AnsibleError] = AnsibleError
) -> None:
    """Raise `error_class` naming `plugin` when the stagegate package did not import."""
    if import_error is not None:
        raise error_class(
            f"stagegate.release.{plugin} needs the stagegate Python package on the controller "
            f"(pip install stagegate-release): {import_error}"
        )
