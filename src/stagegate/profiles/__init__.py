"""Ready gate profiles shipped with stagegate (`stagegate_gates.profiles: [name]`).

A profile is a YAML file next to this module with `rules` and `recommendations` in the
`stagegate_gates` form; its file name (without `.yml`) is its name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

_HERE = Path(__file__).parent


def load_profiles() -> dict[str, dict[str, Any]]:
    """Every shipped profile by name."""
    return {
        path.stem: yaml.safe_load(path.read_text(encoding="utf-8"))
        for path in sorted(_HERE.glob("*.yml"))
    }
