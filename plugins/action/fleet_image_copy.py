# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of stagegate.release.fleet_image_copy (documented in
plugins/modules/fleet_image_copy.py): `docker save` on the build host streamed through the
controller into `docker load` on this host, both over SSH as Ansible reaches them."""

from __future__ import annotations

import subprocess
import tempfile
import threading
import time
from typing import IO, Any, cast

from ansible.plugins.action import ActionBase
from ansible_collections.stagegate.release.plugins.plugin_utils._stagegate import require_stagegate

try:
    from stagegate.fleet import FleetError, remote_command, ssh_command
    from stagegate.reports import human
except ImportError as exc:  # the controller needs: pip install stagegate-release
    STAGEGATE_IMPORT_ERROR = exc
else:
    STAGEGATE_IMPORT_ERROR = None

ARGUMENT_SPEC = {
    "source": {"type": "str", "required": True},
    "images": {"type": "list", "elements": "str", "required": True},
    "timeout": {"type": "int", "default": 3600},
}
CHUNK = 1 << 20


def _tail(stream: IO[bytes]) -> str:
    stream.seek(0)
    return stream.read().decode(errors="replace").strip()[-2000:]


def stream(save: list[str], load: list[str], timeout: float) -> tuple[int, float, str]:
    """Pipes `save`'s output into `load` through this process: (bytes, seconds, error)."""
    start = time.monotonic()
    with tempfile.TemporaryFile() as save_err, tempfile.TemporaryFile() as load_out:
        pipe = subprocess.PIPE
        saver = subprocess.Popen(save, stdin=subprocess.DEVNULL, stdout=pipe, stderr=save_err)
        loader = subprocess.Popen(load, stdin=pipe, stdout=load_out, stderr=subprocess.STDOUT)
        source, sink = cast("IO[bytes]", saver.stdout), cast("IO[bytes]", loader.stdin)
        # A stalled connection would block the reads below forever: both are killed instead.
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            saver.kill()
            loader.kill()

        watchdog = threading.Timer(timeout, expire)
        watchdog.start()
        copied = 0
        try:
            while chunk := source.read(CHUNK):
                sink.write(chunk)
                copied += len(chunk)
            sink.close()
        except BrokenPipeError:  # the loader ended early: its output says why
            saver.kill()
        finally:
            source.close()
            saver.wait()
            loader.wait()
            watchdog.cancel()
        seconds = time.monotonic() - start
        if expired.is_set():
            return copied, seconds, f"stopped after {timeout} s (timeout)"
        for name, process, output in (("save", saver, save_err), ("load", loader, load_out)):
            if process.returncode:
                why = _tail(output)
                return copied, seconds, f"docker {name} failed (exit {process.returncode}): {why}"
    return copied, seconds, ""


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        require_stagegate("fleet_image_copy", STAGEGATE_IMPORT_ERROR)
        _, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        host, source, images = task_vars["inventory_hostname"], args["source"], args["images"]
        hostvars = task_vars["hostvars"]
        if source not in hostvars:
            return {**result, "failed": True,
                    "msg": f"source: {source!r} is not a host of the inventory"}  # fmt: skip
        done = {**result, "changed": False, "source": source, "images": images}
        if not images:
            return {**done, "bytes": 0, "seconds": 0.0, "ids": {}, "msg": "nothing to copy"}
        try:
            save = ssh_command(source, hostvars[source])
            into = ssh_command(host, hostvars[host])
        except FleetError as exc:
            return {**done, "failed": True, "msg": str(exc)}
        what = f"{len(images)} image(s) from {source} ({', '.join(images)})"
        if self._task.check_mode:
            return {**done, "changed": True, "msg": f"{host}: would copy {what}"}
        copied, seconds, error = stream(
            remote_command(save, ["docker", "save", *images]),
            remote_command(into, ["docker", "load"]),
            args["timeout"],
        )
        if error:
            return {**done, "failed": True, "bytes": copied, "seconds": round(seconds, 2),
                    "msg": f"{host}: copying {what}: {error}"}  # fmt: skip
        # Read again on this host: save/load keeps the image ID, so these must be the build's.
        # One line per image, in order: its ID, or "-" for one the host still lacks.
        script = (
            'for ref; do id=$(docker image inspect --format "{{.Id}}" "$ref" 2>/dev/null); '
            'echo "${id:--}"; done'
        )
        inspect = subprocess.run(
            remote_command(into, ["sh", "-c", script, "sh", *images]),
            capture_output=True, text=True, check=False, timeout=300,
        )  # fmt: skip
        lines = [line.strip() for line in inspect.stdout.splitlines()]
        ids = {ref: line for ref, line in zip(images, lines) if line.startswith("sha256:")}
        return {
            **done,
            "changed": True,
            "bytes": copied,
            "seconds": round(seconds, 2),
            "ids": {ref: ids.get(ref, "") for ref in images},
            "msg": f"{host}: copied {what}, {human(copied, 'b')} ({copied} bytes) "
            f"in {seconds:.1f} s",
        }
