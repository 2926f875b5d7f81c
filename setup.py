"""Build step of the `stagegate-release` distribution (everything else is in pyproject.toml).

The package imports the collection's shared `plugins/module_utils/_*.py` (the code the modules
also run on deploy hosts). They live once, in the collection; building the wheel copies them into
`stagegate/_collection/ansible_collections/stagegate/release/plugins/module_utils/`, where
`stagegate._collection_finder` serves them to plain Python. An editable install copies nothing:
the finder uses the checkout's own `collections/` link instead.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

MODULE_UTILS = Path("plugins") / "module_utils"
TARGET = ("stagegate", "_collection", "ansible_collections", "stagegate", "release")


class BuildPyWithModuleUtils(build_py):  # type: ignore[misc]
    """build_py, plus the collection's module_utils copied into the package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        sources = sorted(MODULE_UTILS.glob("_*.py"))
        if not sources:
            raise SystemExit(f"setup.py: no {MODULE_UTILS}/_*.py to bundle (run from the checkout)")
        target = Path(self.build_lib, *TARGET, *MODULE_UTILS.parts)
        self.mkpath(str(target))
        for source in sources:
            self.copy_file(str(source), str(target / source.name))


setup(cmdclass={"build_py": BuildPyWithModuleUtils})
