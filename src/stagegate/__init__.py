"""stagegate: staging promotion and rollback with graded verdicts."""

from __future__ import annotations

from typing import Any

from stagegate._collection_finder import install as _install_collection_finder

_install_collection_finder()  # before any submodule imports the collection's module_utils

__version__ = "0.1.0"
__all__ = ["__version__", "hookimpl"]


def __getattr__(name: str) -> Any:
    # Lazy so that `import stagegate` stays cheap (pluggy loads only when a plugin needs it).
    if name == "hookimpl":
        from stagegate.hookspecs import hookimpl  # noqa: PLC0415

        return hookimpl
    raise AttributeError(f"module 'stagegate' has no attribute {name!r}")
