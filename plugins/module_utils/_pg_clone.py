# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Scratch copies of a database: CREATE DATABASE .. TEMPLATE, with a policy for busy sources.

PostgreSQL refuses a template that has other sessions ("source database ... is being accessed
by other users", SQLSTATE 55006). `when_busy` chooses what to do then:
- `wait`: retry until `busy_timeout` seconds have passed, then fail naming the session count;
- `terminate`: pg_terminate_backend the source's other sessions, then retry; refused unless
  the environment is in `terminate_environments` (staging by default, never by accident;
  compared like every environment name, ignoring case and surrounding spaces);
- `dump_restore`: create an empty scratch and pipe pg_dump of the source into pg_restore.
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

from ansible_collections.stagegate.release.plugins.module_utils._environments import (
    environment_in,
)
from ansible_collections.stagegate.release.plugins.module_utils._pg import (
    AFTER_TERMINATE_POLL,
    PgError,
    PgTarget,
    ToolRun,
    create_database,
    drop_database,
    other_sessions,
    psycopg,
    server_version_num,
    terminate_sessions,
)

BUSY_POLICIES = ("wait", "terminate", "dump_restore")
STRATEGIES = ("wal_log", "file_copy")


def clone_argument_spec(
    *, busy_policies: tuple[str, ...] = BUSY_POLICIES, strategy: str | None = None
) -> dict[str, Any]:
    """The options of a module that copies a database with `clone_database` (pg_clone,
    pg_migrate_dryrun, pg_snapshot); `strategy` is the default STRATEGY (None: the server's)."""
    return {
        "strategy": {"type": "str", "choices": list(STRATEGIES), "default": strategy},
        "when_busy": {"type": "str", "choices": list(busy_policies), "default": "wait"},
        "busy_timeout": {"type": "float", "default": 30.0},
        "environment": {"type": "str", "default": "staging"},
        "terminate_environments": {"type": "list", "elements": "str", "default": ["staging"]},
    }


def clone_with_params(
    admin: Any, source: PgTarget, scratch: str, params: dict[str, Any]
) -> dict[str, Any]:
    """`clone_database` with the options of `clone_argument_spec` from a module's params."""
    return clone_database(
        admin,
        source,
        scratch,
        strategy=params["strategy"],
        when_busy=params["when_busy"],
        busy_timeout=params["busy_timeout"],
        environment=params["environment"],
        terminate_environments=tuple(params["terminate_environments"]),
    )


def clone_database(
    admin: Any,
    source: PgTarget,
    scratch: str,
    *,
    strategy: str | None = None,
    when_busy: str = "wait",
    busy_timeout: float = 30.0,
    environment: str = "staging",
    terminate_environments: tuple[str, ...] = ("staging",),
) -> dict[str, Any]:
    """Create `scratch` as a copy of `source`; returns how (method, seconds, retries)."""
    if when_busy == "terminate" and not environment_in(environment, terminate_environments):
        raise PgError(
            f"when_busy=terminate refused: environment {environment!r} is not one of "
            f"{list(terminate_environments)} (other sessions are only ended where allowed)"
        )
    if strategy and server_version_num(admin) < 150000:
        strategy = None  # STRATEGY arrived in PostgreSQL 15; older servers copy files anyway
    started = time.monotonic()
    info: dict[str, Any] = {
        "method": "template",
        "strategy": strategy,
        "retries": 0,
        "terminated": 0,
    }
    ended: set[int] = set()
    while True:
        # Look before CREATE DATABASE: the server itself waits 5 s before refusing a busy template.
        busy = other_sessions(admin, source.dbname)
        if busy and when_busy == "dump_restore":
            info["method"] = "dump_restore"
            _dump_restore(admin, source, scratch)
            break
        if busy and time.monotonic() - started > busy_timeout:
            raise PgError(
                f"source database {source.dbname!r} stayed in use by {busy} other session(s) "
                f"for {busy_timeout}s (when_busy={when_busy}; the template copy needs it idle)",
                sqlstate="55006",
            )
        if busy:
            info["retries"] += 1
            if when_busy == "terminate":
                ended |= terminate_sessions(admin, source.dbname)
                info["terminated"] = len(ended)
            time.sleep(AFTER_TERMINATE_POLL if when_busy == "terminate" else 0.2)
            continue
        try:
            create_database(admin, scratch, template=source.dbname, strategy=strategy)
            break
        except psycopg.errors.ObjectInUse:
            continue  # a session arrived between the look and the copy: look again
    info["seconds"] = round(time.monotonic() - started, 3)
    return info


def _dump_restore(admin: Any, source: PgTarget, scratch: str) -> None:
    """pg_dump -Fc source | pg_restore into a new empty scratch (a busy source is fine for it)."""
    create_database(admin, scratch)
    env = source.tool_env()
    dump_argv = source.tool_argv("pg_dump", ["--format=custom", "--compress=0"])
    restore_argv = source.tool_argv("pg_restore", ["--no-owner", "--exit-on-error"], scratch)
    dump = subprocess.Popen(dump_argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    restore = subprocess.run(
        restore_argv, stdin=dump.stdout, capture_output=True, env=env, check=False
    )
    dump.stdout.close()  # type: ignore[union-attr]
    dump_stderr = dump.stderr.read().decode("utf-8", "replace")  # type: ignore[union-attr]
    dump.wait()
    for argv, rc, stderr in (
        (dump_argv, dump.returncode, dump_stderr),
        (restore_argv, restore.returncode, restore.stderr.decode("utf-8", "replace")),
    ):
        run = ToolRun(argv=argv, rc=rc, stderr=stderr)
        if not run.ok:
            drop_database(admin, scratch)
            raise run.failure("dump|restore copy")
