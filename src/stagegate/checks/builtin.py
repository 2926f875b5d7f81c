"""Registers each built-in check type as its own plugin, named `stagegate.checks.<type>`,
so that `STAGEGATE_BLOCK_PLUGINS=stagegate.checks.http` or a third-party type of the same
name replaces it exactly as any plugin would."""

from __future__ import annotations

import pluggy
from ansible_collections.stagegate.release.plugins.module_utils._checks_builtin import (
    BUILTIN_TYPES,
)

from stagegate.checks import CheckType
from stagegate.hookspecs import hookimpl


class BuiltinCheckType:
    """A plugin object that provides one built-in check type."""

    def __init__(self, check_type: CheckType) -> None:
        self.check_type = check_type

    @hookimpl
    def stagegate_check_types(self) -> list[CheckType]:
        return [self.check_type]


def register_plugins(pm: pluggy.PluginManager) -> None:
    for check_type in BUILTIN_TYPES:
        name = f"stagegate.checks.{check_type.name}"
        if not pm.is_blocked(name):
            pm.register(BuiltinCheckType(check_type), name=name)
