"""Verdict policies shipped as ordinary plugins (examples of `stagegate_adjust_verdict`).

Strict mode (`stagegate_strict: true`): a release that would go with warnings does not go.
Written as a wrapper, so it sees the verdict every inner implementation agreed on and only
ever makes it stricter.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from stagegate.hookspecs import hookimpl


@hookimpl(wrapper=True)
def stagegate_adjust_verdict(config: dict[str, Any]) -> Generator[None, str | None, str | None]:
    adjusted = yield
    if config.get("strict") and adjusted == "GO_WITH_WARNINGS":
        return "NO_GO"
    return adjusted
