# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who runs this, and which run it is: the one rule for a run's id and owner.

A run is one `ansible-playbook` process (an AWX job is one too). Its id is `awx-<job id>` under
AWX / Tower, else `<UTC start of the ansible-playbook process>-<6 hex>`, the same for every
forked worker of that process, so every host of one run shares it. Its owner is
`<user>@<controller host>`, with ` (AWX job <id>)` under AWX, the user being AWX's
`awx_user_name` there. A value the inventory or `-e` sets (`stagegate_run_id`,
`stagegate_run_owner`) always wins.

Callers: the `validate_config` action (preflight sets both as facts), the `gate` action (the
report's and the ledger's `run_by`), the `rollback_plan` action (a rollback's own identity and the
controller process that an interrupted rollback is resumed from), and `_lock.py` (the owner of a
lock taken without one). Standard library only (Python 3.9+).
"""

from __future__ import annotations

import getpass
import hashlib
import os
import socket
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any


def awx_job_id(
    task_vars: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> str | None:
    """The AWX / Tower job id of this run (`awx_job_id`, `tower_job_id`, `$JOB_ID`), or None."""
    environ = os.environ if environ is None else environ
    job = task_vars.get("awx_job_id") or task_vars.get("tower_job_id") or environ.get("JOB_ID")
    return str(job) if job else None


def local_user() -> str:
    """The user this process runs as; `unknown` without a passwd entry (some containers)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def default_owner() -> str:
    """`user@host` of this process: the owner of a lock taken without one."""
    return f"{local_user()}@{socket.gethostname()}"


def process_start_ticks(pid: int) -> str:
    """The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat), or
    an empty string where there is no such process or no /proc."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def process_start(pid: int) -> float | None:
    """The process's start time in epoch seconds, from /proc; None where that cannot be read."""
    ticks = process_start_ticks(pid)
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            boot = next(int(line.split()[1]) for line in handle if line.startswith("btime "))
        return boot + int(ticks) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def controller_identity(pid: int | None = None) -> dict[str, Any]:
    """The `ansible-playbook` process of this run (a worker's parent): host, pid, start ticks."""
    pid = os.getppid() if pid is None else pid
    return {"host": socket.gethostname(), "pid": pid, "pid_start": process_start_ticks(pid)}


def is_alive_here(controller: Mapping[str, Any]) -> bool:
    """True when the recorded controller process runs on this host now (same host, same pid,
    same start time): the only case where a run is known to be alive."""
    if not controller or controller.get("host") != socket.gethostname():
        return False
    pid = int(controller.get("pid") or 0)
    return pid > 0 and process_start_ticks(pid) == controller.get("pid_start")


def playbook_run_id(pid: int | None = None) -> str:
    """`<UTC start of the ansible-playbook process>-<6 hex>`: forked workers share the parent."""
    pid = os.getppid() if pid is None else pid
    started = process_start(pid) or time.time()
    stamp = datetime.fromtimestamp(started, timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    digest = hashlib.sha256(f"{socket.gethostname()}:{pid}:{started}".encode()).hexdigest()
    return f"{stamp}-{digest[:6]}"


def run_id(task_vars: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> str:
    """`stagegate_run_id` when set, else `awx-<job id>` under AWX, else the playbook's own id."""
    if task_vars.get("stagegate_run_id"):
        return str(task_vars["stagegate_run_id"])
    job = awx_job_id(task_vars, environ)
    return f"awx-{job}" if job else playbook_run_id()


def run_owner(task_vars: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> str:
    """`stagegate_run_owner` when set, else `<user>@<host>` (` (AWX job <id>)` under AWX)."""
    if task_vars.get("stagegate_run_owner"):
        return str(task_vars["stagegate_run_owner"])
    user = task_vars.get("awx_user_name") or task_vars.get("tower_user_name") or local_user()
    owner = f"{user}@{socket.gethostname()}"
    job = awx_job_id(task_vars, environ)
    return f"{owner} (AWX job {job})" if job else owner


def run_identity(
    task_vars: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """{stagegate_run_id, stagegate_run_owner} of this run, as facts."""
    return {
        "stagegate_run_id": run_id(task_vars, environ),
        "stagegate_run_owner": run_owner(task_vars, environ),
    }
