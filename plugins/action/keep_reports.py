# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of stagegate.release.keep_reports (documented in
plugins/modules/keep_reports.py): packs the report directory on the controller and runs the
module on the deploy host with the archive among its arguments, so a copy of any number of
files is one module run (ansible.builtin.copy of a directory makes two per file), and with the
run's ledger record the append too."""

from __future__ import annotations

import base64
import io
import tarfile
from pathlib import Path
from typing import Any

from ansible.plugins.action import ActionBase

ARGUMENT_SPEC = {
    "src": {"type": "str", "required": True},
    "dest": {"type": "str", "required": True},
    "ledger_state_dir": {"type": "str"},
    "ledger_record": {"type": "dict"},
}


def pack(directory: Path) -> str:
    """The directory as base64 of a gzip'd tar, names relative to it (links kept as links: the
    module refuses them rather than follow one out of the directory)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as archive:
        archive.add(str(directory), arcname=".")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        src = Path(args["src"]).expanduser()
        if not (src / "report.json").is_file():
            return {
                **result,
                "failed": True,
                "msg": f"src: {str(src)!r} holds no report.json (expected the report "
                "directory a gate wrote, on the controller)",
            }
        reply = self._execute_module(
            module_name="stagegate.release.keep_reports",
            module_args={
                **{key: value for key, value in args.items() if value is not None},
                "src": str(src),
                "archive": pack(src),
            },
            task_vars=task_vars,
        )
        return {**result, **reply}
