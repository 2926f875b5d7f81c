# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Adoption: a release that runs already, but that stagegate did not deploy.

`inspect` tells the three situations apart before anything changes: `managed` (the checkout
has a `.stagegate-release` marker), `fresh` (nothing runs: no container of the compose
project, an absent or empty database) and `unmanaged` (something runs, no marker), which
preflight refuses with the command that adopts it. `baseline` decides which migration files of
the adopted release count as applied: an existing tracking table with rows is read and never
written; otherwise each file is checked against the schema (the tables, indexes, views and
columns it creates must exist) and the applied ones are recorded in stagegate's tracking table,
so the next promotion dry-runs and applies only what is new.
"""

from __future__ import annotations

import os
import re
import subprocess
from typing import Any

from ansible_collections.stagegate.release.plugins.module_utils._paths import RELEASE_MARKER
from ansible_collections.stagegate.release.plugins.module_utils._pg import PgError
from ansible_collections.stagegate.release.plugins.module_utils._pg_migrations import (
    Migration,
    _record,
    alembic_revision,
    applied_versions,
    discover,
    ensure_tracking_table,
    is_applied,
    tracking_columns,
    tracking_values,
)

MANAGED, FRESH, UNMANAGED = "managed", "fresh", "unmanaged"

_NAME = r'((?:"[^"]+"|[\w$]+)(?:\.(?:"[^"]+"|[\w$]+))?)'
_NOT_EXISTS = r"(?:IF\s+NOT\s+EXISTS\s+)?"
CREATES = (
    ("table", re.compile(r"^\s*CREATE\s+(?:UNLOGGED\s+)?TABLE\s+" + _NOT_EXISTS + _NAME, re.I)),
    (
        "index",
        re.compile(
            r"^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?"
            + _NAME
            + r"\s+ON\b",
            re.I,
        ),
    ),
    (
        "view",
        re.compile(
            r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:MATERIALIZED\s+)?VIEW\s+" + _NOT_EXISTS + _NAME,
            re.I,
        ),
    ),
    ("sequence", re.compile(r"^\s*CREATE\s+SEQUENCE\s+(?:IF\s+NOT\s+EXISTS\s+)?" + _NAME, re.I)),
)
ADD_COLUMN = re.compile(r"^\s*ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?" + _NAME, re.I)
COLUMN_CLAUSE = re.compile(
    r"\bADD\s+(?:COLUMN\s+)?(?:IF\s+NOT\s+EXISTS\s+)?(\"[^\"]+\"|[\w$]+)", re.I
)
CONSTRAINT_WORDS = {"constraint", "primary", "unique", "foreign", "check", "exclude"}
DROPS = re.compile(
    r"^\s*DROP\s+(?:MATERIALIZED\s+)?(?:TABLE|INDEX|VIEW|SEQUENCE)\s+(?:CONCURRENTLY\s+)?"
    r"(?:IF\s+EXISTS\s+)?" + _NAME,
    re.I,
)


# --- inspect ---------------------------------------------------------------------------------


def describe_checkout(project_dir: str) -> str | None:
    """`git describe --tags` of a checkout made by hand (the release it probably holds)."""
    if not os.path.isdir(os.path.join(project_dir, ".git")):
        return None
    proc = subprocess.run(
        ["git", "-C", project_dir, "describe", "--tags", "--always"],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def database_facts(target: Any) -> dict[str, Any]:
    """Whether the database answers and the tables it holds outside the system schemas."""
    try:
        conn = target.connect()
    except PgError as exc:
        return {"reachable": False, "error": exc.msg, "tables": []}
    with conn:
        rows = conn.execute(
            "SELECT n.nspname || '.' || c.relname FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') "
            "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 1"
        ).fetchall()
    return {"reachable": True, "tables": [name for (name,) in rows]}


def classify(marker: str | None, containers: list[dict[str, Any]], database: dict[str, Any]) -> str:
    if marker:
        return MANAGED
    if containers or database.get("tables"):
        return UNMANAGED
    return FRESH


def decide(facts: dict[str, Any], adopt_release: str, inventory: str) -> dict[str, Any]:
    """What this run does with the deployment it found: {"adopt", "first_deploy", "summary"};
    raises AdoptError (before anything changes) when it must not go on."""
    status, marker = facts["status"], facts["marker"]
    if status == UNMANAGED and not adopt_release:
        raise AdoptError(refusal(facts, inventory))
    if status == FRESH and adopt_release:
        raise AdoptError(
            f"stagegate_adopt_release={adopt_release}: nothing runs to adopt (no running container "
            f"of {facts['compose_project']!r}, database {facts['database_name']!r} "
            + ("holds no table" if facts["database"].get("reachable") else "does not answer")
            + "); drop stagegate_adopt_release: this is a first deploy"
        )
    if status == MANAGED and adopt_release and adopt_release != marker:
        raise AdoptError(
            f"stagegate_adopt_release={adopt_release}: stagegate deployed this environment "
            f"already ({RELEASE_MARKER} names {marker}); drop stagegate_adopt_release"
        )
    running = len(facts["containers"])
    tables = len(facts["database"].get("tables") or [])
    if status == MANAGED:
        summary = f"{marker} runs, deployed by stagegate ({running} container(s))"
        if adopt_release:
            summary += f"; {adopt_release} was adopted already"
    elif status == UNMANAGED:
        summary = (
            f"{running} container(s) and {tables} table(s) run without {RELEASE_MARKER}: "
            f"adopting them as {adopt_release}"
        )
    else:
        summary = "nothing runs yet: a first deploy (no backup or dry-run to take)"
    return {"adopt": status == UNMANAGED, "first_deploy": status == FRESH, "summary": summary}


class AdoptError(Exception):
    """This run must stop before anything changes; the message says what to run instead."""


def refusal(facts: dict[str, Any], inventory: str) -> str:
    """What preflight says when a release runs that stagegate did not deploy."""
    running = facts["containers"]
    seen = []
    if running:
        services = sorted({c["service"] for c in running})
        seen.append(
            f"compose project {facts['compose_project']!r} runs {len(running)} container(s) "
            f"({', '.join(services)})"
        )
    tables = facts["database"].get("tables") or []
    if tables:
        seen.append(f"database {facts['database_name']!r} holds {len(tables)} table(s)")
    guess = facts.get("release_guess")
    tag = guess or "<the tag that runs>"
    return (
        f"{' and '.join(seen)}, but {facts['project_dir']} has no {RELEASE_MARKER}: a release runs "
        "that stagegate did not deploy. Nothing was changed (no lock, no backup, no ledger "
        "record). Adopt it first (release marker, migration baseline, verified backup, release "
        f"manifest, ledger record of kind adopt): ansible-playbook playbooks/adopt.yml -i "
        f"{inventory} -e stagegate_adopt_release={tag} ; or adopt and promote in one run by adding "
        f"-e stagegate_adopt_release={tag} to this command."
        + (f" ({guess} is what `git describe` says of the checkout.)" if guess else "")
        + " See docs/adopt.md."
    )


# --- baseline ---------------------------------------------------------------------------------


def _unquote(name: str) -> str:
    return ".".join(part.strip('"') for part in re.findall(r'"[^"]+"|[^.]+', name))


def _strip_comments(text: str) -> str:
    return re.sub(r"--[^\n]*|/\*.*?\*/", "", text, flags=re.S)


def created_objects(migration: Migration) -> list[dict[str, str]]:
    """The relations and columns a migration creates, as far as its statements say."""
    found: list[dict[str, str]] = []
    for statement in migration.statements:
        text = _strip_comments(statement.text)
        for kind, pattern in CREATES:
            match = pattern.match(text)
            if match:
                found.append({"kind": kind, "name": _unquote(match.group(1))})
                break
        else:
            table = ADD_COLUMN.match(text)
            if table:
                for column in COLUMN_CLAUSE.findall(text):
                    if column.lower() not in CONSTRAINT_WORDS:
                        found.append(
                            {
                                "kind": "column",
                                "name": f"{_unquote(table.group(1))}.{column.strip(chr(34))}",
                            }
                        )
    return found


def dropped_names(migrations: list[Migration]) -> set[str]:
    names = set()
    for migration in migrations:
        for statement in migration.statements:
            match = DROPS.match(_strip_comments(statement.text))
            if match:
                names.add(_unquote(match.group(1)).split(".")[-1].lower())
    return names


def object_exists(conn: Any, item: dict[str, str]) -> bool:
    if item["kind"] == "column":
        table, _, column = item["name"].rpartition(".")
        schema, _, name = table.rpartition(".")
        row = conn.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = %s "
            "AND table_name = %s AND column_name = %s",
            (schema or "public", name, column),
        ).fetchone()
        return row is not None
    return bool(conn.execute("SELECT to_regclass(%s) IS NOT NULL", (item["name"],)).fetchone()[0])


def judge(conn: Any, migration: Migration, later: list[Migration]) -> dict[str, Any]:
    """One file's baseline: applied (verified or assumed), pending, or partial (an error)."""
    gone = dropped_names(later)
    objects = [
        o for o in created_objects(migration) if o["name"].split(".")[-1].lower() not in gone
    ]
    present = [o["name"] for o in objects if object_exists(conn, o)]
    missing = [o["name"] for o in objects if o["name"] not in present]
    entry: dict[str, Any] = {"filename": migration.filename, "present": present, "missing": missing}
    if not objects:
        entry.update(status="applied", evidence="assumed: creates nothing the schema can show")
    elif not missing:
        entry.update(status="applied", evidence="verified: " + ", ".join(present))
    elif not present:
        entry.update(status="pending", evidence="the schema has none of " + ", ".join(missing))
    else:
        entry.update(
            status="partial",
            evidence=f"present: {', '.join(present)}; missing: {', '.join(missing)}",
        )
    return entry


def baseline(
    conn: Any, migrations_dir: str, pattern: str, tracking_table: str, check_mode: bool
) -> dict[str, Any]:
    """Decide (and unless check mode, record) which migrations of the adopted release ran."""
    migrations = discover(migrations_dir, pattern)
    recorded = applied_versions(conn, tracking_table)
    result: dict[str, Any] = {"tracking_table": tracking_table, "changed": False}
    if recorded:
        result["source"] = "existing tracking table (read, not written)"
        result["migrations"] = [
            {
                "filename": m.filename,
                "status": "applied" if is_applied(m, recorded) else "pending",
                "evidence": f"{tracking_table} "
                + ("lists it" if is_applied(m, recorded) else "lacks it"),
            }
            for m in migrations
        ]
    else:
        result["source"] = "schema check"
        result["migrations"] = [
            judge(conn, m, migrations[i + 1 :]) for i, m in enumerate(migrations)
        ]
        partial = [m for m in result["migrations"] if m["status"] == "partial"]
        if partial:
            raise PgError(
                "cannot baseline: the schema holds only part of "
                + "; ".join(f"{m['filename']} ({m['evidence']})" for m in partial)
                + ". Finish or undo that migration by hand, then adopt again.",
                baseline=result["migrations"],
            )
        applied = [m for m in migrations if _status(result, m) == "applied"]
        if applied:
            result["changed"] = True
            if not check_mode:
                with conn.transaction():
                    ensure_tracking_table(conn, tracking_table)
                    columns = tracking_columns(conn, tracking_table)
                    for m in applied:  # applied before stagegate: no time known
                        _record(conn, tracking_table, columns, tracking_values(m, 0))
    result["applied"] = [m["filename"] for m in result["migrations"] if m["status"] == "applied"]
    result["pending"] = [m["filename"] for m in result["migrations"] if m["status"] == "pending"]
    # Alembic's own table is read, never written: its pending revisions come from it.
    result["alembic_version"] = alembic_revision(conn)
    return result


def _status(result: dict[str, Any], migration: Migration) -> str:
    return next(m["status"] for m in result["migrations"] if m["filename"] == migration.filename)
