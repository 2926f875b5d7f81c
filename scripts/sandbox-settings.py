"""Print the demo sandbox's non-secret settings from inventory/sandbox as shell assignments,
for scripts/demo.sh and scripts/sandbox-down.sh (one source of truth: the inventory)."""

import shlex
from pathlib import Path

import yaml

GROUP_VARS = Path(__file__).resolve().parent.parent / "inventory/sandbox/group_vars/all"

values: dict[str, object] = {}
for path in sorted(GROUP_VARS.glob("*.yml")):
    values.update(yaml.safe_load(path.read_text()) or {})
settings = {
    "project": values["stagegate_compose_project"],
    "image_prefix": values["sandbox_image_prefix"],
    "state_dir": values["stagegate_state_dir"],
    "base_url": f"http://127.0.0.1:{values['sandbox_api_port']}",
}
for name, value in settings.items():
    print(f"{name}={shlex.quote(str(value))}")
