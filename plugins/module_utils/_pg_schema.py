# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Schema snapshots (tables, columns, indexes, views, constraints) and their diff."""

from __future__ import annotations

from typing import Any

from ansible_collections.stagegate.release.plugins.module_utils._pg import SYSTEM_SCHEMAS

# kind -> query returning (key, definition) rows for user schemas (%s = system schemas)
SNAPSHOT_QUERIES = {
    "tables": (
        "SELECT n.nspname || '.' || c.relname, c.relkind::text FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND n.nspname <> ALL(%s)"
    ),
    "columns": (
        "SELECT table_schema || '.' || table_name || '.' || column_name, "
        "data_type || CASE WHEN is_nullable = 'NO' THEN ' NOT NULL' ELSE '' END "
        "|| coalesce(' DEFAULT ' || column_default, '') FROM information_schema.columns "
        "WHERE table_schema <> ALL(%s)"
    ),
    "indexes": (
        "SELECT schemaname || '.' || indexname, indexdef FROM pg_indexes "
        "WHERE schemaname <> ALL(%s)"
    ),
    "views": (
        "SELECT schemaname || '.' || viewname, definition FROM pg_views "
        "WHERE schemaname <> ALL(%s) "
        "UNION ALL SELECT schemaname || '.' || matviewname, 'MATERIALIZED ' || definition "
        "FROM pg_matviews WHERE schemaname <> ALL(%s)"
    ),
    "constraints": (
        "SELECT n.nspname || '.' || cl.relname || '.' || co.conname, pg_get_constraintdef(co.oid) "
        "FROM pg_constraint co JOIN pg_class cl ON cl.oid = co.conrelid "
        "JOIN pg_namespace n ON n.oid = cl.relnamespace WHERE n.nspname <> ALL(%s)"
    ),
}


def snapshot(conn: Any, ignore: tuple[str, ...] = ()) -> dict[str, dict[str, str]]:
    """kind -> {qualified name: definition}, leaving out names that start with `ignore`."""
    schemas = list(SYSTEM_SCHEMAS)
    result: dict[str, dict[str, str]] = {}
    for kind, query in SNAPSHOT_QUERIES.items():
        params = (schemas,) * query.count("%s")
        rows = conn.execute(query, params).fetchall()
        result[kind] = {
            str(key): str(definition)
            for key, definition in rows
            if not any(str(key).startswith(prefix) for prefix in ignore)
        }
    return result


def diff(before: dict[str, dict[str, str]], after: dict[str, dict[str, str]]) -> dict[str, Any]:
    """Per kind: added, removed and changed names, plus a one-line summary."""
    result: dict[str, Any] = {}
    summary = []
    for kind in SNAPSHOT_QUERIES:
        old, new = before.get(kind, {}), after.get(kind, {})
        entry = {
            "added": sorted(set(new) - set(old)),
            "removed": sorted(set(old) - set(new)),
            "changed": sorted(k for k in set(old) & set(new) if old[k] != new[k]),
        }
        result[kind] = entry
        counts = [
            f"{sign}{len(entry[key])}"
            for sign, key in (("+", "added"), ("-", "removed"), ("~", "changed"))
            if entry[key]
        ]
        if counts:
            summary.append(f"{kind} {' '.join(counts)}")
    result["summary"] = "; ".join(summary) or "no schema change"
    result["destructive"] = bool(result["tables"]["removed"] or result["columns"]["removed"])
    return result
