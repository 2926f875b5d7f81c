#!/usr/bin/python
# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_snapshot
short_description: Keep a database as a TEMPLATE snapshot on its server and rename it back in
description:
  - O(state=present) makes C(<db>_stagegate_<run id>) as a copy of the O(db) database with
    C(CREATE DATABASE .. TEMPLATE) (the busy-source rules of M(stagegate.release.pg_clone),
    O(when_busy)), after a free-disk check, with the source's owner, grants, database settings
    and connection limit applied to it, its tables, exact row counts and a per-table
    fingerprint recorded, and connections to it disallowed (so it stays as it was). Older
    snapshots of the same database beyond O(keep) are dropped first, newest kept, never those
    the release manifests of O(protect_releases) name or O(protect) lists.
  - O(state=swapped) puts snapshot O(name) back as the database, for a rollback. It checks the
    snapshot against O(expect) (the record O(state=present) returned), ends the sessions on the
    database where O(environment) allows, renames the database to
    C(<db>_stagegate_failed_<run id>) (kept for forensics until O(failed_keep) drops it) and
    the snapshot to C(<db>) in one transaction, and applies the recorded owner, grants,
    settings, connection limit and comment. A re-run finds where an interrupted swap stands from
    the names on the server and finishes it. When the snapshot is gone or fails its check it
    changes nothing and returns RV(method) V(dump) with the RV(reason), so the caller restores the
    dump instead.
  - O(state=planned) changes nothing and says which way a rollback would restore (RV(method)),
    with the estimated time of each way from the ledger in O(state_dir).
  - O(state=absent) drops snapshot O(name) (only a database with stagegate's snapshot marker).
  - Only databases with stagegate's marker comment are ever dropped or renamed as snapshots;
    a name held by any other database is refused.
version_added: 0.2.0
author: stagegate developers (@stagegate)
extends_documentation_fragment:
  - stagegate.release.pg
options:
  state:
    description: What to do (see the description).
    type: str
    choices: [present, swapped, planned, absent]
    default: present
  name:
    description:
      - The snapshot database. Default C(<db>_stagegate_<run_id>) (cut to 63 bytes with a hash).
    type: str
  run_id:
    description: The run that takes the snapshot (C(stagegate_run_id)); names it.
    type: str
  keep:
    description:
      - Snapshots of the database kept, counting the new one (O(state=present)); at least 1.
    type: int
    default: 2
  failed_keep:
    description: Databases set aside by snapshot rollbacks kept for forensics (O(state=swapped)).
    type: int
    default: 1
  protect:
    description: Snapshot names retention never drops.
    type: list
    elements: str
    default: []
  protect_releases:
    description:
      - Releases whose manifest (C(<state_dir>/releases/<release>/manifest.json)) names a
        snapshot (C(backup.snapshot.name)) that retention never drops.
    type: list
    elements: str
    default: []
  state_dir:
    description: The deploy host's state directory (release manifests, ledger).
    type: path
  free_reserve_mb:
    description:
      - Free space that must remain on the server's data directory after the copy (which
        needs about the size of the database). Too little stops before anything is copied.
    type: int
    default: 1024
  disk_check:
    description:
      - V(auto) fails when the free space is measured short and warns when it cannot be
        measured (a remote server without O(db.container), or a role that cannot read
        C(data_directory) outside a container); V(required) also fails then; V(skip) does not
        look.
      - The free space is read with C(df) in O(db.container) (on C(data_directory), or the
        container's C(PGDATA) when the role may not read it), else with C(statvfs) when the
        server's data directory is on this host.
    type: str
    choices: [auto, required, skip]
    default: auto
  strategy:
    description: C(CREATE DATABASE .. STRATEGY) (PostgreSQL 15+).
    type: str
    choices: [wal_log, file_copy]
    default: file_copy
  row_counts:
    description:
      - V(exact) counts every table's rows in the snapshot once it is made (the record's
        C(tables)); V(none) does not.
    type: str
    choices: [exact, none]
    default: exact
  when_busy:
    description:
      - What to do when other sessions use the source (O(state=present)), as in
        M(stagegate.release.pg_clone).
    type: str
    choices: [wait, terminate]
    default: wait
  busy_timeout:
    description: Seconds to wait for the database (and snapshot) to be idle.
    type: float
    default: 30
  expect:
    description:
      - The snapshot record O(state=present) returned (kept in the release manifest), for
        O(state=swapped) and O(state=planned).
    type: dict
  verify:
    description:
      - How O(state=swapped) checks the snapshot before the swap. V(catalog) compares every
        table's file node, size and row estimate with the record (constant time whatever the
        size); V(exact) also counts the rows (time grows with the data).
    type: str
    choices: [catalog, exact]
    default: catalog
  terminate_sessions:
    description:
      - End the other sessions on the database before the swap (where O(environment) allows).
    type: bool
    default: true
  environment:
    description: The environment of the database (C(stagegate_environment)).
    type: str
    default: staging
  terminate_environments:
    description: Environments where sessions may be ended.
    type: list
    elements: str
    default: [staging]
  backup_manifest:
    description:
      - The dump's manifest (O(state=planned)), whose size and dump duration estimate the dump
        restore.
    type: path
  plan_estimate:
    description:
      - The rollback plan's estimate (M(stagegate.release.rollback_plan) C(plan.estimate)), which
        assumes the snapshot it expects is there (O(state=planned)). Its database part is
        replaced by the way chosen, returned as RV(rollback_estimate) and printed.
    type: dict
attributes:
  check_mode:
    support: full
    description:
      - Reports what it would create, drop or rename and the free-disk check; changes nothing.
  diff_mode:
    support: none
    description: Returns no diff.
  idempotent:
    support: full
    description:
      - A snapshot of the same run that exists is kept (present); a finished swap is found
        finished (swapped); a missing snapshot is not dropped again (absent).
notes:
  - Not carried over by the copy nor re-applied - the data written after the snapshot (as with a
    dump), cumulative statistics (C(pg_stat_*), reset), logical replication slots and
    subscriptions (they stay with the set-aside database), security labels on the database.
seealso:
  - name: CREATE DATABASE
    description: TEMPLATE and STRATEGY; what a copy does not copy.
    link: https://www.postgresql.org/docs/15/sql-createdatabase.html
  - name: ALTER DATABASE
    description: RENAME, OWNER, SET, CONNECTION LIMIT, ALLOW_CONNECTIONS.
    link: https://www.postgresql.org/docs/15/sql-alterdatabase.html
  - module: stagegate.release.pg_clone
  - module: stagegate.release.pg_restore
"""

EXAMPLES = r"""
- name: Keep the database as a snapshot before migrating
  stagegate.release.pg_snapshot:
    db: "{{ stagegate_db }}"
    run_id: "{{ stagegate_run_id }}"
    keep: 2
    state_dir: "{{ stagegate_state_dir }}"
    protect_releases: ["{{ stagegate_previous_release }}"]
  register: snapshot

- name: Put it back (rollback)
  stagegate.release.pg_snapshot:
    db: "{{ stagegate_db }}"
    state: swapped
    name: "{{ snapshot.snapshot.name }}"
    expect: "{{ snapshot.snapshot }}"
"""

RETURN = r"""
snapshot:
  description:
    - O(state=present) - the record of the snapshot (C(name), C(source), C(run_id),
      C(created_at), C(seconds), C(size_bytes), C(tables) with exact C(rows), C(fingerprint),
      C(properties), whose C(settings) are named without their values, which can be secrets);
      the release manifest keeps it for the rollback.
  returned: state=present
  type: dict
method:
  description:
    - V(snapshot) when the snapshot is (or would be) swapped in, V(dump) when the dump must be
      restored instead.
  returned: state=swapped or state=planned
  type: str
reason:
  description: Why RV(method) is what it is (e.g. the snapshot is gone, or failed its check).
  returned: state=swapped or state=planned
  type: str
swap:
  description:
    - The swap (C(found) state, C(renamed), C(failed_name), C(seconds), C(sessions_ended),
      C(verified)).
  returned: state=swapped and method=snapshot
  type: dict
properties:
  description:
    - Owner, grants, settings (named, without values), connection limit after the swap;
      C(problems) lists what could not be applied, C(differ) what differs from the record.
  returned: state=swapped and method=snapshot
  type: dict
backup_bytes:
  description: Size of the dump (from O(backup_manifest)), or null.
  returned: state=planned
  type: int
summary:
  description: Lines that say which way a rollback restores and the estimate of each.
  returned: state=planned
  type: list
  elements: str
estimate:
  description:
    - Estimated seconds of a C(snapshot) and a C(dump) restore, each with its C(basis) (null
      when the ledger has no measurement).
  returned: state=planned
  type: dict
rollback_estimate:
  description:
    - O(plan_estimate) with its database part the way chosen (C(seconds), C(text), C(parts),
      C(unmeasured)).
  returned: state=planned and plan_estimate given
  type: dict
disk:
  description: >-
    The free-disk check (C(free_bytes), C(needed_bytes), C(how)); C(free_bytes) is absent when
    the free disk could not be measured (C(how) says why); empty when reused.
  returned: state=present
  type: dict
removed:
  description: Snapshots (and set-aside databases) dropped by retention.
  returned: always
  type: list
  elements: str
dsn:
  description: The connection, without its password.
  returned: always
  type: str
"""

import json
import os
import time
from typing import Any

from ansible_collections.stagegate.release.plugins.module_utils import _ledger
from ansible_collections.stagegate.release.plugins.module_utils._environments import (
    environment_in,
)
from ansible_collections.stagegate.release.plugins.module_utils._pg import (
    AFTER_TERMINATE_POLL,
    PgError,
    PgTarget,
    cleanup_on_signals,
    count_rows,
    database_exists,
    drop_database,
    other_sessions,
    pg_module,
    psycopg,
    run_manager,
    sql,
    terminate_sessions,
)
from ansible_collections.stagegate.release.plugins.module_utils._pg_clone import (
    clone_argument_spec,
    clone_with_params,
)
from ansible_collections.stagegate.release.plugins.module_utils._pg_snapshot import (
    VERIFY_MODES,
    apply_properties,
    comment_of,
    compare_properties,
    data_directory,
    derived_name,
    fingerprint,
    free_bytes,
    marker,
    public_properties,
    read_marker,
    read_properties,
    renames,
    retention,
    snapshot_record,
    swap_state,
)
from ansible_collections.stagegate.release.plugins.module_utils._rollback_time import (
    backup_figures,
    database_estimate,
    with_database_way,
)
from ansible_collections.stagegate.release.plugins.module_utils._state_files import utc_now

ARGUMENT_SPEC: dict[str, Any] = {
    "state": {
        "type": "str",
        "choices": ["present", "swapped", "planned", "absent"],
        "default": "present",
    },
    "name": {"type": "str"},
    "run_id": {"type": "str"},
    "keep": {"type": "int", "default": 2},
    "failed_keep": {"type": "int", "default": 1},
    "protect": {"type": "list", "elements": "str", "default": []},
    "protect_releases": {"type": "list", "elements": "str", "default": []},
    "state_dir": {"type": "path"},
    "free_reserve_mb": {"type": "int", "default": 1024},
    "disk_check": {"type": "str", "choices": ["auto", "required", "skip"], "default": "auto"},
    "row_counts": {"type": "str", "choices": ["exact", "none"], "default": "exact"},
    "expect": {"type": "dict"},
    "verify": {"type": "str", "choices": list(VERIFY_MODES), "default": "catalog"},
    "terminate_sessions": {"type": "bool", "default": True},
    "backup_manifest": {"type": "path"},
    "plan_estimate": {"type": "dict"},
    # A snapshot is the database itself, never a dump|restore copy; file_copy: no WAL flood.
    **clone_argument_spec(busy_policies=("wait", "terminate"), strategy="file_copy"),
}


class SnapshotManager:
    def __init__(self, module: Any) -> None:
        self.module = module
        self.params = module.params
        self.target = PgTarget.from_module_params(module.params)
        self.source = self.target.dbname
        self.result: dict[str, Any] = {
            "changed": False,
            "dsn": self.target.redacted_dsn,
            "removed": [],
        }

    # -- options ------------------------------------------------------------------------------

    def _name(self) -> str:
        name = self.params["name"] or (self.params["expect"] or {}).get("name")
        if name:
            return str(name)
        if not self.params["run_id"]:
            raise PgError(
                f"state={self.params['state']} needs name or run_id (got neither): the snapshot "
                "is named <db>_stagegate_<run id>"
            )
        return derived_name(self.source, self.params["run_id"])

    def _check_options(self, name: str) -> None:
        if name == self.source:
            raise PgError(f"name {name!r} is the database itself; expected another name")
        if self.params["keep"] < 1:
            raise PgError(f"keep must be at least 1 (got {self.params['keep']})")
        if self.params["failed_keep"] < 0:
            raise PgError(f"failed_keep must be 0 or more (got {self.params['failed_keep']})")

    def _allowed_to_end_sessions(self) -> bool:
        return environment_in(self.params["environment"], self.params["terminate_environments"])

    # -- dispatch -----------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        if self.params["state"] == "planned" and not (
            self.params["name"] or (self.params["expect"] or {}).get("name")
        ):
            self.result.update(
                method="dump",
                reason="no snapshot to use (none recorded for the release, or snapshots are off)",
                swap_state=None,
                backup_bytes=self._backup_info()[0],
                estimate=self._estimate(),
            )
            self.result["summary"] = self._summary(None)
            return self.result
        name = self._name()
        self._check_options(name)
        state = self.params["state"]
        with self.target.for_database("postgres").connect() as admin, cleanup_on_signals():
            if state == "present":
                self._present(admin, name)
            elif state == "absent":
                self._absent(admin, name)
            elif state == "planned":
                self._info(admin, name)
            else:
                self._swapped(admin, name)
        return self.result

    # -- present ------------------------------------------------------------------------------

    def _present(self, admin: Any, name: str) -> None:
        if database_exists(admin, name):
            mark = read_marker(comment_of(admin, name))
            if not mark or mark[0] != "snapshot" or mark[1].get("source") != self.source:
                raise PgError(
                    f"name {name!r}: a database of that name exists and is not a stagegate "
                    f"snapshot of {self.source!r}; choose another name or run_id"
                )
            self.result.update(reused=True, disk={}, snapshot={"name": name, "source": self.source})
            if not self.module.check_mode:  # a re-run of the same run: record it again
                self._reuse(admin, name)
            return
        self.result["reused"] = False
        protect = set(self.params["protect"]) | self._protected_by_manifests()
        size = int(admin.execute("SELECT pg_database_size(%s)", (self.source,)).fetchone()[0])
        self._disk_check(admin, size)
        self.result["changed"] = True
        self.result["removed"] = retention(
            admin,
            self.source,
            kind="snapshot",
            keep=self.params["keep"] - 1,
            protect=protect,
            dry=self.module.check_mode,
        )
        if self.module.check_mode:
            self.result["snapshot"] = {"name": name, "source": self.source, "size_bytes": size}
            return
        self._create(admin, name)

    def _reuse(self, admin: Any, name: str) -> None:
        props = read_properties(admin, self.source)
        self._open(admin, name, True)
        try:
            record = self._record(name, props)
        finally:
            self._open(admin, name, False)
        size = admin.execute("SELECT pg_database_size(%s)", (name,)).fetchone()[0]
        self.result["snapshot"] = {**record, "seconds": 0.0, "size_bytes": int(size)}

    def _record(self, name: str, props: dict[str, Any]) -> dict[str, Any]:
        return snapshot_record(
            self.target,
            name,
            run_id=self.params["run_id"] or name,
            props=props,
            exact_counts=self.params["row_counts"] == "exact",
        )

    def _open(self, admin: Any, name: str, allow: bool) -> None:
        admin.execute(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
                sql.Identifier(name), sql.SQL("true" if allow else "false")
            )
        )

    def _protected_by_manifests(self) -> set[str]:
        names: set[str] = set()
        for release in self.params["protect_releases"]:
            if not release or not self.params["state_dir"]:
                continue
            path = os.path.join(self.params["state_dir"], "releases", release, "manifest.json")
            try:
                with open(path, encoding="utf-8") as handle:
                    manifest = json.load(handle)
            except FileNotFoundError:
                continue
            except (OSError, ValueError) as exc:
                raise PgError(
                    f"release manifest {path} cannot be read ({exc}); its snapshot would not be "
                    "protected from retention"
                ) from exc
            snapshot = ((manifest or {}).get("backup") or {}).get("snapshot") or {}
            if isinstance(snapshot, dict) and snapshot.get("name"):
                names.add(str(snapshot["name"]))
        return names

    def _disk_check(self, admin: Any, size: int) -> None:
        needed = size + self.params["free_reserve_mb"] * 1024 * 1024
        disk: dict[str, Any] = {"needed_bytes": needed, "source_bytes": size}
        self.result["disk"] = disk
        if self.params["disk_check"] == "skip":
            disk["how"] = "skipped (disk_check=skip)"
            return
        free, how = free_bytes(self.target, data_directory(admin))
        disk["how"] = how
        if free is None:
            message = f"free disk for the snapshot not measured: {how}"
            if self.params["disk_check"] == "required":
                raise PgError(f"{message} (disk_check=required; use auto or skip to go on)")
            self.module.warn(message)
            return
        disk["free_bytes"] = free
        if free < needed:
            raise PgError(
                f"not enough free disk for a snapshot of {self.source!r}: {free} bytes free "
                f"({how}), the copy needs {size} and free_reserve_mb="
                f"{self.params['free_reserve_mb']} must remain ({needed} in all); lower keep, "
                "free space, or turn snapshots off",
                free_bytes=free,
                needed_bytes=needed,
            )

    def _create(self, admin: Any, name: str) -> None:
        props = read_properties(admin, self.source)
        started = time.monotonic()
        try:
            clone = clone_with_params(admin, self.target, name, self.params)
            copied = time.monotonic() - started
            record = self._record(name, props)
            problems = apply_properties(admin, name, props, allow_connections=False)
            record.update(
                seconds=round(time.monotonic() - started, 3),
                copy_seconds=round(copied, 3),
                clone=clone,
                size_bytes=int(admin.execute("SELECT pg_database_size(%s)", (name,)).fetchone()[0]),
                properties_problems=problems,
            )
            mark = marker(
                "snapshot",
                source=self.source,
                run_id=record["run_id"],
                created_at=record["created_at"],
            )
            admin.execute(
                sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                    sql.Identifier(name), sql.Literal(mark)
                )
            )
        except BaseException:
            drop_database(admin, name)  # never a half-made snapshot under its final name
            raise
        self.result["snapshot"] = record

    # -- absent -------------------------------------------------------------------------------

    def _absent(self, admin: Any, name: str) -> None:
        if not database_exists(admin, name):
            return
        mark = read_marker(comment_of(admin, name))
        if not mark or mark[1].get("source") != self.source:
            raise PgError(
                f"name {name!r} is not a stagegate snapshot of {self.source!r} (no marker); "
                "refusing to drop it"
            )
        self.result["changed"] = True
        self.result["removed"] = [name]
        if not self.module.check_mode:
            drop_database(admin, name)

    # -- planned ------------------------------------------------------------------------------

    def _failed_name(self, name: str) -> str:
        expect = self.params["expect"] or {}
        run_id = expect.get("run_id") or self.params["run_id"] or name
        return derived_name(self.source, str(run_id), "failed")

    def _usable(self, admin: Any, name: str) -> str | None:
        """Why snapshot `name` cannot be swapped in, from pg_database alone (None: it can)."""
        if not database_exists(admin, name):
            return f"the snapshot {name} is gone (dropped since the promotion)"
        mark = read_marker(comment_of(admin, name))
        if not mark or mark[0] != "snapshot" or mark[1].get("source") != self.source:
            return f"{name} has no stagegate snapshot marker for {self.source}"
        return None

    def _info(self, admin: Any, name: str) -> None:
        state = swap_state(admin, self.source, name, self._failed_name(name))
        unusable = None if state in ("half", "done") else self._usable(admin, name)
        self.result["method"] = "dump" if unusable else "snapshot"
        self.result["reason"] = unusable or (
            f"interrupted swap of {name} found ({state}); a re-run finishes it"
            if state in ("half", "done")
            else f"snapshot {name} exists (checked against its record before the swap)"
        )
        self.result["swap_state"] = state
        self.result["backup_bytes"] = self._backup_info()[0]
        self.result["estimate"] = self._estimate()
        if self.params["plan_estimate"]:
            method = self.result["method"]
            self.result["rollback_estimate"] = with_database_way(
                self.params["plan_estimate"], method, self.result["estimate"].get(method)
            )
        self.result["summary"] = self._summary(name)

    def _estimate(self) -> dict[str, Any]:
        records: list[dict[str, Any]] = []
        if self.params["state_dir"]:
            records, _warnings = _ledger.scan(_ledger.ledger_path(self.params["state_dir"]))
        size, seconds = self._backup_info()
        return database_estimate(records, backup_bytes=size, dump_seconds=seconds)

    def _summary(self, name: str | None) -> list[str]:
        """The lines rollback.yml (also --check) prints: the way chosen, and both estimates."""
        est = self.result["estimate"]

        def line(way: str, what: str) -> str:
            found = est.get(way)
            if not found:
                return f"  {way:<9}{what}: no measurement in the ledger yet"
            return f"  {way:<9}{what}: ~{found['seconds']} s ({found['basis']})"

        lines = [
            f"Database restore by: {self.result['method']} ({self.result['reason']})",
            line("snapshot", f" rename {name} back in" if name else " none"),
            line("dump", " pg_restore of the backup"),
        ]
        if "rollback_estimate" in self.result:
            whole = self.result["rollback_estimate"]["text"]
            lines.append(f"Estimated time with the database by {self.result['method']}: {whole}")
        return lines

    def _backup_info(self) -> tuple[int | None, float | None]:
        """Size and dump duration from the dump's manifest (None when not known)."""
        return backup_figures(self.params["backup_manifest"])

    # -- swapped ------------------------------------------------------------------------------

    def _swapped(self, admin: Any, name: str) -> None:
        failed = self._failed_name(name)
        self.result["failed_name"] = failed
        state = swap_state(admin, self.source, name, failed)
        swap: dict[str, Any] = {"found": state, "failed_name": failed, "renamed": []}
        if state == "broken":
            have = [n for n in (self.source, name, failed) if database_exists(admin, n)]
            raise PgError(
                f"cannot swap {name} in: of {self.source}, {name} and {failed} the server has "
                f"{have or 'none'}; expected {self.source} with {name}, or a swap half done. "
                "Look at the databases and restore the dump (stagegate_rollback_snapshot=false)"
            )
        if state == "gone":
            self.result.update(method="dump", reason=f"the snapshot {name} is gone")
            return
        if state == "ready":
            why = self._usable(admin, name)
            if why:
                self.result.update(method="dump", reason=why)
                return
        self.result.update(method="snapshot", changed=state != "done")
        if self.module.check_mode:
            self.result["reason"] = f"would swap {name} in ({state})"
            self.result["swap"] = swap
            return
        started = time.monotonic()
        if state == "ready":
            self._open(admin, name, True)
            try:
                why = self._verify(name)
            finally:
                self._open(admin, name, False)  # closed again until the swap
            if why:
                self.result.update(method="dump", reason=why, changed=False)
                return
            swap["verified"] = self.params["verify"]
            swap["sessions_ended"] = self._swap(admin, name, failed)
            swap["renamed"] = [f"{self.source} -> {failed}", f"{name} -> {self.source}"]
        elif state == "half":
            admin.execute(
                sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                    sql.Identifier(name), sql.Identifier(self.source)
                )
            )
            swap["renamed"] = [f"{name} -> {self.source}"]
        self._finish(admin, failed, swap)
        swap["seconds"] = round(time.monotonic() - started, 3)
        self.result["swap"] = swap
        self.result["reason"] = f"snapshot {name} swapped in ({state})"

    def _verify(self, name: str) -> str | None:
        """Why the snapshot does not match its record (None: it matches)."""
        expect = self.params["expect"] or {}
        with self.target.for_database(name).connect() as conn:
            if "fingerprint" in expect and fingerprint(conn) != {
                k: [int(v[0]), int(v[1]), float(v[2])] for k, v in expect["fingerprint"].items()
            }:
                return (
                    f"the snapshot {name} failed verification: its tables changed since the "
                    "promotion"
                )
            if self.params["verify"] == "exact":
                wanted = {t: i.get("rows") for t, i in (expect.get("tables") or {}).items()}
                counted = count_rows(conn, [t for t, r in wanted.items() if r is not None])
                bad = sorted(t for t, n in counted.items() if n != wanted[t])
                if bad:
                    return f"the snapshot {name} failed verification: row counts differ in {bad}"
        return None

    def _swap(self, admin: Any, name: str, failed: str) -> int:
        """The renames, once neither database has other sessions; returns sessions ended."""
        ended: set[int] = set()
        deadline = time.monotonic() + self.params["busy_timeout"]
        own = (int(admin.info.backend_pid),)
        while True:
            busy = other_sessions(admin, self.source, own) + other_sessions(admin, name, own)
            ending = busy and self.params["terminate_sessions"] and self._allowed_to_end_sessions()
            if ending:
                ended |= terminate_sessions(admin, self.source) | terminate_sessions(admin, name)
            if not busy:
                try:
                    renames(admin, self.source, name, failed)
                except psycopg.errors.ObjectInUse:
                    pass  # a session arrived between the look and the renames
                else:
                    return len(ended)
            if time.monotonic() > deadline:
                raise PgError(
                    f"{self.source} stayed in use by {busy} other session(s) for "
                    f"{self.params['busy_timeout']}s; the swap needs it idle (terminate_sessions="
                    f"{self.params['terminate_sessions']}, "
                    f"environment={self.params['environment']})",
                    sqlstate="55006",
                )
            time.sleep(AFTER_TERMINATE_POLL if ending else 0.2)

    def _finish(self, admin: Any, failed: str, swap: dict[str, Any]) -> None:
        """After the renames (also on a re-run): the recorded properties on `<db>`, the
        set-aside database marked for retention, retention of set-aside databases."""
        recorded = (self.params["expect"] or {}).get("properties") or read_properties(admin, failed)
        # The settings are the snapshot's own, given it from the database when it was made (the
        # record names them only: a value can be a secret); applied again like the rest.
        props = {**recorded, "settings": read_properties(admin, self.source)["settings"]}
        problems = apply_properties(
            admin, self.source, props, allow_connections=bool(props.get("allow_connections", True))
        )
        admin.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(self.source), sql.Literal(props.get("comment"))
            )
        )
        if not read_marker(comment_of(admin, failed)):
            admin.execute(
                sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                    sql.Identifier(failed),
                    sql.Literal(
                        marker(
                            "failed",
                            source=self.source,
                            run_id=(self.params["expect"] or {}).get("run_id"),
                            created_at=utc_now(),
                        )
                    ),
                )
            )
        actual = read_properties(admin, self.source)
        self.result["properties"] = {
            **public_properties(actual),
            "problems": problems,
            "differ": compare_properties(public_properties(recorded), public_properties(actual)),
        }
        self.result["removed"] = retention(
            admin, self.source, kind="failed", keep=self.params["failed_keep"], protect=set()
        )
        swap["failed_kept"] = failed not in self.result["removed"]


def main() -> None:
    module = pg_module(ARGUMENT_SPEC, supports_check_mode=True)
    run_manager(module, SnapshotManager(module))


if __name__ == "__main__":
    main()
