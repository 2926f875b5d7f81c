# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pre-deploy snapshots: the staging database kept as a TEMPLATE copy on the same server, and
the rollback that renames it back in (docs/database.md, "Snapshots"; docs/rollback.md).

Names: `<db>_stagegate_<run id>` for a snapshot, `<db>_stagegate_failed_<run id>` for the
database a snapshot rollback set aside (cut to PostgreSQL's 63 bytes with a hash). Every such
database carries a marker comment (`stagegate-snapshot {json}` / `stagegate-failed {json}`);
retention and the rollback act only on databases with the marker, so a user database that
happens to have such a name is never dropped or renamed, and a name taken by one is refused.

What a TEMPLATE copy does not copy (the database's own row in pg_database and the shared
catalogs): owner, database grants, `ALTER DATABASE .. SET` and `ALTER ROLE .. IN DATABASE ..
SET`, connection limit, comment. They are read from the source when the snapshot is made,
applied to the snapshot at once and again to `<db>` after the swap (`properties`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from typing import Any

from ansible_collections.stagegate.release.plugins.module_utils._pg import (
    PgError,
    PgTarget,
    count_rows,
    database_exists,
    drop_database,
    psycopg,
    resolve_container,
    sql,
)
from ansible_collections.stagegate.release.plugins.module_utils._state_files import utc_now

MAX_NAME_BYTES = 63  # NAMEDATALEN - 1: longer names are cut by the server without a word
SNAPSHOT_MARK = "stagegate-snapshot "
FAILED_MARK = "stagegate-failed "
# GUCs whose value is a list: pg_dump splits them and quotes each element (GUC_LIST_QUOTE).
LIST_GUCS = frozenset(
    {
        "search_path",
        "temp_tablespaces",
        "local_preload_libraries",
        "session_preload_libraries",
        "shared_preload_libraries",
    }
)
VERIFY_MODES = ("catalog", "exact")


def derived_name(source: str, run_id: str, kind: str = "") -> str:
    """`<source>_stagegate_[<kind>_]<run id>`, or, when that exceeds 63 bytes, the source cut
    to fit plus a hash of the full name (the server would otherwise cut it silently, and two
    runs could end on the same name)."""
    infix = f"_stagegate_{kind}_" if kind else "_stagegate_"
    full = f"{source}{infix}{run_id}"
    if len(full.encode()) <= MAX_NAME_BYTES:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:12]
    room = MAX_NAME_BYTES - len(f"{infix}{digest}".encode())
    head = source.encode()[:room].decode("utf-8", "ignore")
    return f"{head}{infix}{digest}"


def split_guc_list(value: str) -> list[str]:
    """A list GUC's stored value (`"$user", public`) as its elements, double quotes removed
    (pg_dump's SplitGUCList)."""
    items, current, quoted, i = [], "", False, 0
    while i < len(value):
        char = value[i]
        if char == '"':
            if quoted and value[i + 1 : i + 2] == '"':
                current += '"'
                i += 1
            else:
                quoted = not quoted
        elif char == "," and not quoted:
            items.append(current.strip())
            current = ""
        else:
            current += char
        i += 1
    items.append(current.strip())
    return [item for item in items if item]


def setting_sql(setting: str) -> sql.Composed:
    """`name = value` for ALTER DATABASE/ROLE .. SET from a pg_db_role_setting entry."""
    name, _, value = setting.partition("=")
    values = split_guc_list(value) if name in LIST_GUCS else [value]
    return sql.SQL("{} = {}").format(
        sql.Identifier(name), sql.SQL(", ").join(sql.Literal(v) for v in values)
    )


def read_marker(comment: str | None) -> tuple[str, dict[str, Any]] | None:
    """("snapshot"|"failed", data) from a database comment stagegate wrote, else None."""
    for kind, mark in (("snapshot", SNAPSHOT_MARK), ("failed", FAILED_MARK)):
        if comment and comment.startswith(mark):
            try:
                data = json.loads(comment[len(mark) :])
            except ValueError:
                return None
            return (kind, data) if isinstance(data, dict) else None
    return None


def marker(kind: str, **data: Any) -> str:
    return (SNAPSHOT_MARK if kind == "snapshot" else FAILED_MARK) + json.dumps(data, sort_keys=True)


# -- what the server says about databases -----------------------------------------------------


def comment_of(conn: Any, name: str) -> str | None:
    row = conn.execute(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
        (name,),
    ).fetchone()
    return row[0] if row else None


def stagegate_databases(conn: Any, source: str) -> list[dict[str, Any]]:
    """Snapshots and set-aside databases of `source` (by their marker), oldest first."""
    rows = conn.execute(
        "SELECT datname, shobj_description(oid, 'pg_database'), pg_database_size(oid) "
        "FROM pg_database WHERE datname <> %s",
        (source,),
    ).fetchall()
    found = []
    for name, comment, size in rows:
        mark = read_marker(comment)
        if mark and mark[1].get("source") == source:
            found.append({"name": name, "kind": mark[0], "size_bytes": size, **mark[1]})
    return sorted(found, key=lambda d: (str(d.get("created_at", "")), d["name"]))


def read_properties(conn: Any, name: str) -> dict[str, Any]:
    """What CREATE DATABASE .. TEMPLATE does not copy, as the server holds it for `name`."""
    row = conn.execute(
        "SELECT d.oid, r.rolname, d.datacl::text[], d.datconnlimit, d.datallowconn, "
        "shobj_description(d.oid, 'pg_database') "
        "FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = %s",
        (name,),
    ).fetchone()
    if row is None:
        raise PgError(f"database {name!r} does not exist")
    oid, owner, acl, connlimit, allowconn, comment = row
    grants = conn.execute(
        "SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE g.rolname END, a.privilege_type, "
        "a.is_grantable FROM pg_database d, aclexplode(d.datacl) a "
        "LEFT JOIN pg_roles g ON g.oid = a.grantee "
        "WHERE d.oid = %s AND a.grantee <> d.datdba ORDER BY 1 NULLS FIRST, 2",
        (oid,),
    ).fetchall()
    settings = conn.execute(
        "SELECT r.rolname, s.setconfig FROM pg_db_role_setting s "
        "LEFT JOIN pg_roles r ON r.oid = s.setrole WHERE s.setdatabase = %s ORDER BY 1 NULLS FIRST",
        (oid,),
    ).fetchall()
    return {
        "owner": owner,
        "acl": sorted(acl) if acl is not None else None,
        "grants": [{"role": g, "privilege": p, "grantable": o} for g, p, o in grants],
        "settings": [{"role": r, "settings": list(c)} for r, c in settings],
        "connection_limit": connlimit,
        "allow_connections": allowconn,
        "comment": None if read_marker(comment) else comment,
    }


def public_properties(props: dict[str, Any]) -> dict[str, Any]:
    """`props` as a module returns them and the release manifest keeps them: a setting's value
    can be a secret (`ALTER DATABASE .. SET app.jwt_secret = ..`), so settings are named only.
    The values stay on the server: the snapshot got them when it was made, and keeps them."""
    return {
        **props,
        "settings": [
            {"role": entry["role"], "settings": [s.partition("=")[0] for s in entry["settings"]]}
            for entry in props.get("settings") or []
        ],
    }


def apply_properties(
    conn: Any, name: str, props: dict[str, Any], *, allow_connections: bool
) -> list[str]:
    """Give database `name` the owner, grants, settings, connection limit (and comment) of
    `props`; returns what could not be applied (e.g. a role's setting without CREATEROLE)."""
    ident = sql.Identifier(name)
    problems: list[str] = []

    def run(query: sql.Composable, what: str) -> None:
        try:
            with conn.transaction():
                conn.execute(query)
        except psycopg.Error as exc:
            problems.append(f"{what}: {type(exc).__name__}: {str(exc).strip()}")

    run(
        sql.SQL("ALTER DATABASE {} OWNER TO {}").format(ident, sql.Identifier(props["owner"])),
        "owner",
    )
    if props.get("acl") is not None:
        run(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(ident), "grants")
        for grant in props.get("grants", []):
            role = sql.Identifier(grant["role"]) if grant["role"] else sql.SQL("PUBLIC")
            query = sql.SQL("GRANT {} ON DATABASE {} TO {}{}").format(
                sql.SQL(grant["privilege"]),
                ident,
                role,
                sql.SQL(" WITH GRANT OPTION") if grant["grantable"] else sql.SQL(""),
            )
            run(query, f"grant {grant['privilege']} to {grant['role'] or 'PUBLIC'}")
    run(sql.SQL("ALTER DATABASE {} RESET ALL").format(ident), "settings")
    for entry in props.get("settings", []):
        for setting in entry["settings"]:
            if entry["role"]:
                query = sql.SQL("ALTER ROLE {} IN DATABASE {} SET {}").format(
                    sql.Identifier(entry["role"]), ident, setting_sql(setting)
                )
            else:
                query = sql.SQL("ALTER DATABASE {} SET {}").format(ident, setting_sql(setting))
            run(query, f"setting {setting.partition('=')[0]} for {entry['role'] or 'the database'}")
    run(
        sql.SQL("ALTER DATABASE {} CONNECTION LIMIT {}").format(
            ident, sql.Literal(int(props.get("connection_limit", -1)))
        ),
        "connection limit",
    )
    run(
        sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
            ident, sql.SQL("true" if allow_connections else "false")
        ),
        "allow_connections",
    )
    return problems


def compare_properties(wanted: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """The properties that differ (owner, acl, settings, connection limit, allow_connections)."""
    keys = ("owner", "acl", "settings", "connection_limit", "allow_connections")
    return [k for k in keys if _normal(wanted.get(k)) != _normal(actual.get(k))]


def _normal(value: Any) -> Any:
    if isinstance(value, list):
        return sorted(json.dumps(v, sort_keys=True) for v in value)
    return value


def fingerprint(conn: Any) -> dict[str, Any]:
    """Tables of the connected database with what their files say (file node, size, row
    estimate): constant time per table, whatever the data. A snapshot nobody could connect to
    since has the same fingerprint."""
    rows = conn.execute(
        "SELECT n.nspname || '.' || c.relname, c.relfilenode, pg_relation_size(c.oid), c.reltuples "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p', 'm') "
        "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname NOT LIKE 'pg_toast%%' ORDER BY 1"
    ).fetchall()
    return {name: [int(node), int(size), float(tuples)] for name, node, size, tuples in rows}


# -- the free disk under the server's data directory ------------------------------------------


def data_directory(conn: Any) -> str | None:
    try:
        with conn.transaction():
            return str(conn.execute("SELECT current_setting('data_directory')").fetchone()[0])
    except psycopg.Error:  # needs superuser or pg_read_all_settings
        return None


def free_bytes(target: PgTarget, directory: str | None) -> tuple[int | None, str]:
    """Free bytes on the file system of the server's data directory, and how they were read
    (`df` in the database container, `statvfs` on this host), or None and why not. In a
    container, a role that may not read `data_directory` falls back to the container's PGDATA
    (set by the official and the sandbox images)."""
    if target.container:
        docker = shutil.which("docker") or "docker"
        container = resolve_container(target.container, target.compose_project)
        where = directory or "$PGDATA"
        argv = (
            ["df", "-Pk", directory]
            if directory
            else ["sh", "-c", 'test -n "$PGDATA" && df -Pk "$PGDATA"']
        )
        proc = subprocess.run(
            [docker, "exec", container, *argv], capture_output=True, text=True, check=False
        )
        lines = proc.stdout.strip().splitlines()
        if proc.returncode == 0 and len(lines) >= 2:
            return int(lines[-1].split()[3]) * 1024, f"df -Pk {where} in {container[:12]}"
        return None, (
            f"df -Pk {where} in {container[:12]} failed (rc {proc.returncode}): "
            f"{proc.stderr.strip() or 'PGDATA not set'}"
        )
    if not directory:
        return None, "data_directory is not readable by the connecting role"
    if os.path.isdir(directory):
        stat = os.statvfs(directory)
        return stat.f_bavail * stat.f_frsize, f"statvfs {directory}"
    return None, f"{directory} is not on this host (a remote server without container)"


# -- making a snapshot ------------------------------------------------------------------------


def snapshot_record(
    target: PgTarget, name: str, *, run_id: str, props: dict[str, Any], exact_counts: bool
) -> dict[str, Any]:
    """Connect to the new snapshot once: its tables, exact row counts and fingerprint."""
    with target.for_database(name).connect() as conn:
        tables = fingerprint(conn)
        counts = count_rows(conn, list(tables)) if exact_counts else {}
    return {
        "name": name,
        "source": target.dbname,
        "run_id": run_id,
        "created_at": utc_now(),
        "tables": {t: {"rows": counts.get(t)} for t in tables},
        "fingerprint": tables,
        "properties": public_properties(props),
    }


def retention(
    admin: Any, source: str, *, kind: str, keep: int, protect: set[str], dry: bool = False
) -> list[str]:
    """Drop `kind` databases of `source` beyond the newest `keep` (never those in `protect`);
    with `dry`, only name them."""
    mine = [d for d in stagegate_databases(admin, source) if d["kind"] == kind]
    drop = [d["name"] for d in mine[: max(len(mine) - keep, 0)] if d["name"] not in protect]
    for name in [] if dry else drop:
        drop_database(admin, name)
    return drop


# -- rollback: the swap -----------------------------------------------------------------------


def swap_state(admin: Any, source: str, snapshot: str, failed: str) -> str:
    """Where a swap stands, from the names on the server:
    `ready` (db and snapshot, no failed), `half` (snapshot and failed, no db: interrupted
    between two separate renames), `done` (db and failed, no snapshot), `gone` (db only),
    else `broken`."""
    have = tuple(database_exists(admin, n) for n in (source, snapshot, failed))
    return {
        (True, True, False): "ready",
        (False, True, True): "half",
        (True, False, True): "done",
        (True, False, False): "gone",
    }.get(have, "broken")


def renames(admin: Any, source: str, snapshot: str, failed: str) -> None:
    """Both renames in one transaction (ALTER DATABASE .. RENAME may run in one): other
    sessions see `<db>` before or after, never none and never two."""
    with admin.transaction():
        admin.execute(
            sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                sql.Identifier(source), sql.Identifier(failed)
            )
        )
        admin.execute(
            sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                sql.Identifier(snapshot), sql.Identifier(source)
            )
        )
