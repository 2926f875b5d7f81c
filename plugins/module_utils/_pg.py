# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared PostgreSQL plumbing for the pg_* modules: connection, client tools, catalog reads.

SQL always goes through psycopg 3 to `host:port` (a published port when the server runs in a
container). Client tools (pg_dump, pg_restore) run on the host, or inside the database
container through `docker exec` when `container` is set, so their version matches the server.
The password reaches libpq as a keyword argument and the tools as PGPASSWORD in the
environment; it is never in an argument list, a message or a result.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.stagegate.release.plugins.module_utils._checks_redact import (
    MASK,
    redact_argv,
)

try:
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    HAS_PSYCOPG = True
    PSYCOPG_IMPORT_ERROR: str | None = None
except ImportError as exc:  # reported by the module through missing_required_lib
    psycopg = sql = None
    HAS_PSYCOPG = False
    PSYCOPG_IMPORT_ERROR = str(exc)

SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")

# Options every pg_* module shares (documented in doc_fragments/pg.py).
DB_ARGUMENT_SPEC: dict[str, Any] = {
    "db": {
        "type": "dict",
        "options": {
            "host": {"type": "str", "default": "127.0.0.1"},
            "port": {"type": "int", "default": 5432},
            "name": {"type": "str", "default": "postgres"},
            "user": {"type": "str", "default": "postgres"},
            "password": {"type": "str", "no_log": True},
            "container": {"type": "str"},
            "socket_dir": {"type": "str"},
            "container_port": {"type": "int"},
            "connect_timeout": {"type": "int", "default": 10},
        },
    },
    "dsn": {"type": "str", "no_log": True},
    "container": {"type": "str"},
    "compose_project": {"type": "str"},
    "bin_dir": {"type": "path"},
}


class PgError(Exception):
    """A failure worth reporting as-is: `details` carries cmd/rc/stdout/stderr/sqlstate."""

    def __init__(self, msg: str, **details: Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = details


class Interrupted(BaseException):
    """Raised by the SIGTERM/SIGHUP handler so `finally` blocks still clean up."""


@contextmanager
def cleanup_on_signals() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into an exception for the duration, so scratch databases get dropped."""

    def _raise(signum: int, _frame: Any) -> None:
        raise Interrupted(f"interrupted by signal {signum}")

    previous = {sig: signal.signal(sig, _raise) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# The server's own port per connection (one module process talks to one server).
_PORT_CACHE: dict[str, int] = {}


@dataclass(frozen=True)
class PgTarget:
    """Where a database is and how to reach it; `redacted_dsn` is the only printable form."""

    params: dict[str, str]
    password: str | None = None
    container: str | None = None
    bin_dir: str | None = None
    compose_project: str | None = None
    # Inside the container: the server's socket directory and port (default: libpq's
    # directory, and the port the server reports as its own setting).
    socket_dir: str | None = None
    container_port: int | None = None

    @classmethod
    def from_module_params(cls, module_params: dict[str, Any]) -> PgTarget:
        db = module_params.get("db") or {}
        if module_params.get("dsn"):
            params = {k: str(v) for k, v in conninfo_to_dict(module_params["dsn"]).items()}
        else:
            params = {
                "host": str(db.get("host") or "127.0.0.1"),
                "port": str(db.get("port") or 5432),
                "dbname": str(db.get("name") or "postgres"),
                "user": str(db.get("user") or "postgres"),
                "connect_timeout": str(db.get("connect_timeout") or 10),
            }
        password = params.pop("password", None) or db.get("password")
        return cls(
            params=params,
            password=password,
            container=module_params.get("container") or db.get("container"),
            bin_dir=module_params.get("bin_dir"),
            compose_project=module_params.get("compose_project"),
            socket_dir=db.get("socket_dir"),
            container_port=db.get("container_port"),
        )

    @property
    def dbname(self) -> str:
        return self.params.get("dbname", "postgres")

    @property
    def user(self) -> str:
        return self.params.get("user", "postgres")

    @property
    def redacted_dsn(self) -> str:
        shown = {k: v for k, v in self.params.items() if k != "connect_timeout"}
        return make_conninfo(**shown) + (f" password={MASK}" if self.password else "")

    def for_database(self, dbname: str) -> PgTarget:
        return replace(self, params={**self.params, "dbname": dbname})

    def connect(self, autocommit: bool = True) -> Any:
        # UTF8 on the client side whatever the server encoding: the server converts from
        # LATIN1 etc., and for SQL_ASCII (no conversion) psycopg would otherwise return bytes
        # for text and encode queries as ASCII.
        params = {"client_encoding": "UTF8", **self.params}
        try:
            return psycopg.connect(
                make_conninfo(**params), password=self.password, autocommit=autocommit
            )
        except psycopg.Error as exc:
            raise PgError(
                f"cannot connect to {self.redacted_dsn}: {str(exc).strip()}",
                dsn=self.redacted_dsn,
                sqlstate=getattr(exc, "sqlstate", None),
            ) from exc

    # -- client tools -------------------------------------------------------------------

    def tool_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("PGPASSWORD", None)
        if self.password:
            env["PGPASSWORD"] = self.password
        return env

    def tool_argv(self, tool: str, args: list[str], dbname: str | None = None) -> list[str]:
        """argv for a client tool, connected to `dbname` (default: this target's database)."""
        name = dbname or self.dbname
        if self.container:
            exec_env = ["-e", "PGPASSWORD"] if self.password else []
            container = resolve_container(self.container, self.compose_project)
            connection = ["-U", self.user, "-d", name, "-p", str(self.port_in_container())]
            if self.socket_dir:
                connection += ["-h", self.socket_dir]
            return ["docker", "exec", "-i", *exec_env, container, tool, *connection, *args]
        conninfo = make_conninfo(
            **{k: v for k, v in self.params.items() if k != "dbname"}, dbname=name
        )
        return [self.host_tool(tool), "-d", conninfo, *args]

    def port_in_container(self) -> int:
        """The port of the server's socket in its container: `container_port`, else the
        server's own `port` setting (the published port on the host may differ)."""
        if self.container_port:
            return self.container_port
        server = f"{self.params.get('host')}:{self.params.get('port')}"
        if server not in _PORT_CACHE:
            try:  # the maintenance database: the target may not exist yet (a restore)
                conn = self.for_database("postgres").connect()
            except PgError:
                conn = self.connect()
            with conn:
                _PORT_CACHE[server] = int(conn.execute("SHOW port").fetchone()[0])
        return _PORT_CACHE[server]

    def host_tool(self, tool: str) -> str:
        """A client tool on the host: bin_dir, else the newest server bindir, else PATH."""
        if self.bin_dir:
            return str(Path(self.bin_dir) / tool)
        found = sorted(
            Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"), key=lambda p: int(p.parts[-3])
        )
        if found:
            return str(found[-1])
        on_path = shutil.which(tool)
        if not on_path:
            raise PgError(f"{tool} not found: set bin_dir or install the PostgreSQL client tools")
        return on_path


def resolve_container(name: str, compose_project: str | None = None) -> str:
    """A container id from a container name (or an ID of at least 12 characters), or a compose
    service name (within a project). Docker also resolves any unique ID prefix; a service called
    `db` or `cafe` is not one, so a shorter match by ID is not taken."""
    inspect = subprocess.run(
        ["docker", "inspect", "--type", "container", "--format", "{{.Id}} {{.Name}}", name],
        capture_output=True,
        text=True,
        check=False,
    )
    found_id, _, found_name = inspect.stdout.strip().partition(" ")
    # Docker also resolves a prefix of an ID: a service called `db` would find any container
    # whose ID starts with "db". Only a container of that name, or an ID of 12+ digits, counts.
    if inspect.returncode == 0 and (
        found_name == f"/{name}" or (len(name) >= 12 and found_id.startswith(name))
    ):
        return found_id
    filters = ["--filter", f"label=com.docker.compose.service={name}"]
    if compose_project:
        filters += ["--filter", f"label=com.docker.compose.project={compose_project}"]
    listed = subprocess.run(
        ["docker", "ps", "-q", *filters],
        capture_output=True,
        text=True,
        check=False,
    )
    ids = listed.stdout.split()
    if len(ids) != 1:
        raise PgError(
            f"container {name!r}: expected one running container or compose service of that "
            f"name (compose_project={compose_project!r}), found {len(ids)}",
            cmd=listed.args,
            rc=listed.returncode,
            stderr=inspect.stderr + listed.stderr,
        )
    return ids[0]


ERROR_LINE = re.compile(r"\b(error|fatal|panic):", re.IGNORECASE)


# libpq's words when the server refused the role (pg_hba.conf's method, or the password).
AUTH_FAILED = re.compile(r"authentication failed|no pg_hba\.conf entry")


@dataclass
class ToolRun:
    """One client-tool run: its exit code, stderr, error lines and progress events."""

    argv: list[str]
    rc: int = -1
    stderr: str = ""
    seconds: float = 0.0
    progress: list[dict[str, Any]] = field(default_factory=list)
    sha256: str = ""  # of stdout as written to stdout_path, when run_tool was asked to hash it
    write_error: str = ""  # writing stdout_path failed (disk full, ...): the run is not good

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if ERROR_LINE.search(line)]

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.error_lines and not self.write_error

    def failure(self, what: str) -> PgError:
        lines = self.error_lines or self.stderr.strip().splitlines()[-1:] or ["no output"]
        first = f"writing its output: {self.write_error}" if self.write_error else lines[0]
        if self.argv[:2] == ["docker", "exec"] and "on socket" in first:
            if AUTH_FAILED.search(first):
                first += (
                    " (inside the container the tools connect over the server's socket as "
                    "db.user, and its pg_hba.conf does not let that role in with a password "
                    "there (e.g. `local all all peer`): set db.socket_dir to 127.0.0.1 to "
                    "connect over TCP inside the container, or leave db.container unset to run "
                    "the host's client tools)"
                )
            else:
                first += (
                    " (inside the container: set db.socket_dir to the server's "
                    "unix_socket_directories and db.container_port to its port)"
                )
        return PgError(
            f"{what} failed (rc={self.rc}): {first}",
            cmd=redact_argv(self.argv),
            rc=self.rc,
            stderr=self.stderr,
        )


PROGRESS_LINE = re.compile(
    r"(?:dumping contents of table|processing data for table|restoring data for table|"
    r"finished item \d+ TABLE DATA)\s+\"?([^\"]+)\"?"
)


class ProgressLog:
    """Progress events (table by table, bytes so far), kept and appended to an optional file."""

    def __init__(self, path: str | None, size_of: Callable[[], int] | None = None) -> None:
        self.path = path
        self.size_of = size_of
        self.started = time.monotonic()
        self.events: list[dict[str, Any]] = []

    def table(self, table: str) -> None:
        event = {
            "table": table,
            "bytes": self.size_of() if self.size_of else None,
            "seconds": round(time.monotonic() - self.started, 3),
        }
        self.events.append(event)
        if self.path:
            with open(self.path, "a", encoding="utf-8") as fh:
                size = f" {event['bytes']} bytes so far" if event["bytes"] is not None else ""
                fh.write(f"[{event['seconds']:8.2f}s] table {table}{size}\n")


def run_tool(
    argv: list[str],
    env: dict[str, str],
    progress: ProgressLog | None = None,
    stdout_path: str | None = None,
    while_running: Callable[[], None] | None = None,
) -> ToolRun:
    """Run a client tool, parsing its --verbose stderr into progress events as they come.

    With stdout_path, the tool's output is written there and hashed on the way (ToolRun.sha256),
    so a dump is never read back just to checksum it.
    """
    run = ToolRun(argv=argv)
    started = time.monotonic()
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE if stdout_path else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    lines: list[str] = []
    readers = [threading.Thread(target=_read_stderr, args=(proc, lines, progress), daemon=True)]
    if stdout_path:
        readers.append(
            threading.Thread(target=_write_hashed, args=(proc, stdout_path, run), daemon=True)
        )
    for reader in readers:
        reader.start()
    try:
        if while_running:
            while_running()
        run.rc = proc.wait()
    finally:
        if proc.poll() is None:  # interrupted while running: do not leave the tool behind
            proc.kill()
            proc.wait()
        for reader in readers:
            reader.join()
    run.stderr = "".join(lines)
    run.seconds = time.monotonic() - started
    if progress:
        run.progress = progress.events
    return run


def _write_hashed(proc: Any, path: str, run: ToolRun) -> None:
    digest = hashlib.sha256()
    try:
        with open(path, "wb") as out:
            while chunk := proc.stdout.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    except OSError as exc:
        run.write_error = f"{path}: {exc.strerror or exc}"
        proc.stdout.close()  # the tool gets EPIPE and ends instead of blocking on a full pipe
        return
    run.sha256 = digest.hexdigest()


def _read_stderr(proc: Any, lines: list[str], progress: ProgressLog | None) -> None:
    for raw in proc.stderr:
        line = raw.decode("utf-8", "replace")
        lines.append(line)
        match = PROGRESS_LINE.search(line)
        if progress and match:
            progress.table(match.group(1).strip())


def run_checked(
    argv: list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise PgError(
            f"{' '.join(argv[:2])} failed (rc={proc.returncode})",
            cmd=redact_argv(argv),
            rc=proc.returncode,
            stdout=proc.stdout,
            stderr=proc.stderr,
        )
    return proc


@contextmanager
def container_workdir(target: PgTarget) -> Iterator[Callable[[str], str]]:
    """A function that puts host files where the client tools see them: the host path itself,
    or a copy in one temporary directory inside the database container, removed at the end."""
    if not target.container:
        yield lambda host_path: host_path
        return
    container = resolve_container(target.container, target.compose_project)
    inside = f"/tmp/stagegate-{uuid.uuid4().hex[:12]}"  # noqa: S108 - removed below
    made = False  # on the first copy: a caller may need none

    def place(host_path: str) -> str:
        nonlocal made
        if not made:
            run_checked(["docker", "exec", container, "mkdir", "-p", inside])
            made = True
        run_checked(["docker", "cp", host_path, f"{container}:{inside}/"])
        # docker cp makes root the owner and keeps the modes: pg_dump's 0700/0600 directory
        # archives (or a 0600 dump) would be unreadable to the container's postgres user.
        seen = f"{inside}/{Path(host_path).name}"
        run_checked(["docker", "exec", "-u", "0", container, "chmod", "-R", "go+rX", seen])
        return seen

    try:
        yield place
    finally:
        if made:  # as root: the copies are root's (docker cp), whoever the container runs as
            subprocess.run(
                ["docker", "exec", "-u", "0", container, "rm", "-rf", inside], check=False
            )


# -- catalog --------------------------------------------------------------------------


def server_version(conn: Any) -> str:
    return str(conn.execute("SHOW server_version").fetchone()[0])


def server_version_num(conn: Any) -> int:
    return int(conn.execute("SHOW server_version_num").fetchone()[0])


def list_tables(conn: Any) -> dict[str, dict[str, Any]]:
    """Ordinary tables as `schema.name` -> row estimate (reltuples) and size in bytes."""
    rows = conn.execute(
        "SELECT n.nspname || '.' || c.relname, c.reltuples::bigint, pg_total_relation_size(c.oid) "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind = 'r' AND n.nspname <> ALL(%s) AND n.nspname NOT LIKE 'pg_temp%%' "
        "ORDER BY 1",
        (list(SYSTEM_SCHEMAS),),
    ).fetchall()
    return {
        name: {"rows_estimate": max(int(est), 0), "bytes": int(size)} for name, est, size in rows
    }


def database_state(conn: Any) -> dict[str, Any]:
    """What proves that two reads saw the same database: the cluster (system identifier and
    postmaster start: a restart may have emptied unlogged tables), the database (oid, name),
    the committed transactions (the snapshot, cluster-wide: any commit anywhere changes it)
    and the sequences (nextval/setval change them outside any transaction). `provable` is
    false when a sequence cannot be read. In a REPEATABLE READ transaction the snapshot is
    the transaction's own, the one `pg_dump --snapshot` dumps."""
    row = conn.execute(
        "SELECT (SELECT system_identifier::text FROM pg_control_system()), "
        "pg_postmaster_start_time()::text, d.oid::bigint, d.datname, "
        "txid_current_snapshot()::text "
        "FROM pg_database d WHERE d.datname = current_database()"
    ).fetchone()
    sequences = conn.execute(
        "SELECT schemaname, sequencename, last_value::text, "
        "has_sequence_privilege(quote_ident(schemaname) || '.' || quote_ident(sequencename), "
        "'SELECT') "
        "FROM pg_sequences ORDER BY 1, 2"
    ).fetchall()
    digest = hashlib.sha256(repr([tuple(r[:3]) for r in sequences]).encode()).hexdigest()
    return {
        "system_identifier": row[0],
        "postmaster_start": row[1],
        "database_oid": int(row[2]),
        "database": row[3],
        "snapshot": row[4],
        "sequences_sha256": digest,
        "provable": all(r[3] for r in sequences),
    }


def same_state(recorded: Any, current: dict[str, Any]) -> bool:
    """Whether a recorded database_state() proves the database unchanged since."""
    return (
        isinstance(recorded, dict)
        and bool(recorded.get("provable"))
        and bool(current.get("provable"))
        and all(recorded.get(key) == value for key, value in current.items())
    )


def count_rows(conn: Any, tables: list[str]) -> dict[str, int]:
    """Exact row counts (count(*)), in the connection's current transaction/snapshot."""
    counts = {}
    for qualified in tables:
        schema, name = qualified.split(".", 1)
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, name))
        counts[qualified] = int(conn.execute(query).fetchone()[0])
    return counts


def database_exists(conn: Any, name: str) -> bool:
    return (
        conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None
    )


def other_sessions(conn: Any, dbname: str, own_pids: Iterable[int] = ()) -> int:
    """Sessions on `dbname` other than this one and `own_pids` (backends of connections this
    process closed a moment ago: their exit is asynchronous, and slow on a loaded server)."""
    return int(
        conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
            "AND pid <> pg_backend_pid() AND NOT (pid = ANY(%s))",
            (dbname, list(own_pids)),
        ).fetchone()[0]
    )


# How soon a caller looks again after ending sessions: a backend exits within milliseconds of
# the signal. (pg_terminate_backend's own wait, PostgreSQL 14+, sleeps 100 ms per backend.)
AFTER_TERMINATE_POLL = 0.02


def terminate_sessions(conn: Any, dbname: str) -> set[int]:
    """End the client sessions on `dbname`; returns the pids signalled (a caller that looks
    again soon may signal a session still exiting twice: count the union). Backends that
    advertise no role (an autovacuum worker, a connection still authenticating) are left alone:
    a role that is not a superuser may not signal them (PostgreSQL 15 refuses the whole
    statement), and they do not last; DROP DATABASE stops autovacuum workers itself."""
    rows = conn.execute(
        "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = %s AND pid <> pg_backend_pid() AND usesysid IS NOT NULL",
        (dbname,),
    ).fetchall()
    return {int(row[0]) for row in rows}


DROP_RETRIES = 20  # x 0.5 s: a backend that advertises no role yet is gone by then


def drop_database(conn: Any, name: str, force: bool = True) -> None:
    """DROP DATABASE IF EXISTS, WITH (FORCE) when `force`. FORCE refuses while a backend
    without a role (a connection still authenticating) is on the database, for a role that is
    not a superuser: that is retried for a few seconds, a lasting refusal is raised."""
    query = sql.SQL("DROP DATABASE IF EXISTS {}{}").format(
        sql.Identifier(name), sql.SQL(" WITH (FORCE)") if force else sql.SQL("")
    )
    for attempt in range(DROP_RETRIES + 1):
        try:
            conn.execute(query)
        except psycopg.errors.InsufficientPrivilege:
            if not force or attempt == DROP_RETRIES:
                raise
            time.sleep(0.5)
        else:
            return


def create_database(
    conn: Any,
    name: str,
    template: str | None = None,
    strategy: str | None = None,
    locale: dict[str, str] | None = None,
) -> None:
    """CREATE DATABASE; with `locale` ({encoding, lc_collate, lc_ctype}, as database_locale()
    reads them) a copy of template0 with that encoding and locale, so a SQL_ASCII or LATIN1
    database is restored as it was (a UTF8 database refuses its bytes)."""
    query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if locale and not template:
        query += sql.SQL(" TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}").format(
            sql.Literal(locale["encoding"]),
            sql.Literal(locale["lc_collate"]),
            sql.Literal(locale["lc_ctype"]),
        )
    if template:
        query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    if strategy:
        query += sql.SQL(" STRATEGY {}").format(sql.SQL(strategy.upper()))
    try:
        conn.execute(query)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise PgError(privilege_hint(exc, conn.info.user, template), sqlstate=exc.sqlstate) from exc


def privilege_hint(exc: Exception, role: str, template: str | None) -> str:
    """The server's refusal of CREATE DATABASE, with what the role lacks and how to grant it."""
    text = str(exc).strip()
    if "create database" in text:
        need = (
            f"role {role!r} lacks CREATEDB, which stagegate_db.user needs (the dry-run's "
            f'TEMPLATE copy, the restore rehearsal, a restore): ALTER ROLE "{role}" CREATEDB'
        )
    else:
        need = (
            f"role {role!r} must own database {template!r} (or be a superuser) to copy it "
            f'as a TEMPLATE: ALTER DATABASE "{template}" OWNER TO "{role}"'
        )
    return f'{text}: {need} (docs/database.md "Connection")'


def database_locale(conn: Any, dbname: str) -> dict[str, str] | None:
    """Encoding and locale of a database, as CREATE DATABASE takes them."""
    row = conn.execute(
        "SELECT pg_encoding_to_char(encoding), datcollate, datctype FROM pg_database "
        "WHERE datname = %s",
        (dbname,),
    ).fetchone()
    return {"encoding": row[0], "lc_collate": row[1], "lc_ctype": row[2]} if row else None


def scratch_name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def find_leftovers(conn: Any, prefix: str, keep: str | None = None) -> list[str]:
    """Databases whose name starts with `prefix` (scratch copies an earlier run left)."""
    pattern = prefix.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%") + "%"
    rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (pattern,))
    return [row[0] for row in rows.fetchall() if row[0] != keep]


def drop_leftovers(conn: Any, prefix: str, keep: str | None = None) -> list[str]:
    names = find_leftovers(conn, prefix, keep)
    for name in names:
        drop_database(conn, name)
    return names


def fail_json_from(module: Any, exc: PgError, **result: Any) -> None:
    """Report a PgError the same way in every module."""
    details = {k: v for k, v in exc.details.items() if v is not None}
    module.fail_json(msg=exc.msg, **{**result, **details})


def pg_module(argument_spec: dict[str, Any], **kwargs: Any) -> Any:
    """An AnsibleModule with the shared connection options, failing early without psycopg."""
    module = AnsibleModule(
        argument_spec={**DB_ARGUMENT_SPEC, **argument_spec},
        mutually_exclusive=[("db", "dsn"), *kwargs.pop("mutually_exclusive", [])],
        required_one_of=[("db", "dsn"), *kwargs.pop("required_one_of", [])],
        **kwargs,
    )
    if not HAS_PSYCOPG:
        module.fail_json(msg=missing_required_lib("psycopg"), exception=PSYCOPG_IMPORT_ERROR)
    return module


def run_manager(module: Any, manager: Any) -> None:
    """Run a module's manager and exit. Every failure becomes fail_json with a message that
    names its cause: PgError as is, psycopg errors with the DSN and SQLSTATE, OS errors with
    the file, anything else with its type and the traceback in `exception`."""
    try:
        result = manager.run()
    except PgError as exc:
        fail_json_from(module, exc, **manager.result)
    except psycopg.Error as exc:
        fail_json_from(
            module,
            PgError(
                f"{manager.target.redacted_dsn}: {type(exc).__name__}: {str(exc).strip()}",
                sqlstate=exc.sqlstate,
            ),
            **manager.result,
        )
    except Exception as exc:  # reported with its cause, never a bare traceback
        fail_json_from(
            module, unexpected_failure(exc, manager.target.redacted_dsn), **manager.result
        )
    module.exit_json(**result)


def unexpected_failure(exc: BaseException, dsn: str) -> PgError:
    """A PgError for an exception no step expected, naming what it was and where."""
    import traceback  # noqa: PLC0415 - only on this path

    if isinstance(exc, OSError):
        where = f" {exc.filename}" if exc.filename else ""
        text = f"{exc.strerror or exc}{where}"
        cause = f"file system or process error ({type(exc).__name__}): {text}"
    elif isinstance(exc, UnicodeError):
        cause = f"text that is not valid UTF-8 ({exc}); a SQL_ASCII database must hold UTF-8 names"
    else:
        cause = f"unexpected {type(exc).__name__}: {exc}"
    return PgError(
        f"{dsn}: {cause}",
        exception="".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    )
