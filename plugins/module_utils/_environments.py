# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which environment names count as production: the one rule every guard uses.

Standard library only: `pg_restore` runs it on the deploy host, the
`stagegate.release.is_production` filter (preflight's and rollback's guards) on the controller.
Environment names are case-insensitive (`Production`, `PROD` and ` live ` are the same as
`production`, `prod`, `live`); the set that counts as production is
`stagegate_production_environments` (default below, docs/preflight.md).
"""

from __future__ import annotations

from collections.abc import Iterable

DEFAULT_PRODUCTION_ENVIRONMENTS = ("production", "prod", "live")


def normalise(name: object) -> str:
    """An environment name as compared: surrounding spaces dropped, case folded."""
    return str(name if name is not None else "").strip().casefold()


def environment_in(environment: object, names: Iterable[object]) -> bool:
    """Whether `environment` is one of `names`, ignoring case and surrounding spaces."""
    wanted = normalise(environment)
    return bool(wanted) and any(normalise(name) == wanted for name in names)


def is_production(
    environment: object, production_environments: Iterable[object] | None = None
) -> bool:
    """Whether `environment` counts as production (None means the default list)."""
    names = (
        DEFAULT_PRODUCTION_ENVIRONMENTS
        if production_environments is None
        else production_environments
    )
    return environment_in(environment, names)
