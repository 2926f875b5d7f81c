"""Where plain Python finds the collection's shared `module_utils`.

The package imports the collection's private `module_utils` (`plugins/module_utils/_*.py`) by
their collection name, `ansible_collections.stagegate.release.plugins.module_utils...`, the
same files the modules run on the deploy host (one implementation, two callers). Inside Ansible
(an action plugin in `ansible-playbook`, an AWX job) Ansible's collection loader resolves that
name to the installed collection, and it stays first: this finder is appended to the end of
`sys.meta_path`, so it answers only what nobody else can. In plain Python (the `stagegate`
command, a test) it serves the copy the wheel carries, which setup.py's build step copies from
`plugins/module_utils/` when the wheel is built, or in a checkout (an editable install) the
checkout's `collections/` link to the repository itself. There is no second copy in the repo.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

PREFIX = ("ansible_collections", "stagegate", "release")
# Inside the wheel: stagegate/_collection/ansible_collections/stagegate/release/plugins/...
BUNDLED = Path(__file__).resolve().parent / "_collection"
# In a checkout (src layout): <repo>/collections/ansible_collections/stagegate/release -> <repo>
CHECKOUT = Path(__file__).resolve().parents[2] / "collections"


class CollectionFinder(importlib.abc.MetaPathFinder):
    """Finds `ansible_collections.stagegate.release[...]` under one root directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        parts = tuple(fullname.split("."))
        if parts[:3] != PREFIX[: len(parts[:3])]:
            return None
        parent = self.root.joinpath(*parts[:-1])
        return importlib.machinery.PathFinder.find_spec(fullname, [str(parent)])


def module_utils_root() -> Path | None:
    """The directory holding `ansible_collections/stagegate/release`, wheel copy first."""
    for root in (BUNDLED, CHECKOUT):
        if root.joinpath(*PREFIX, "plugins", "module_utils").is_dir():
            return root
    return None


def install() -> None:
    """Append the finder once; without a root nothing is found (Ansible's loader may still be)."""
    if any(isinstance(finder, CollectionFinder) for finder in sys.meta_path):
        return
    root = module_utils_root()
    if root is not None:
        sys.meta_path.append(CollectionFinder(root))
