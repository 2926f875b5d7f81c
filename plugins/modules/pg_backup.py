#!/usr/bin/python
# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_backup
short_description: Verified pg_dump backup with checksum, manifest and retention
description:
  - Dumps one database with C(pg_dump) (custom or directory format) to a temporary name in
    O(backup_dir), verifies it, writes its manifest JSON (C(<archive>.manifest.json)) and only
    then renames the archive to its final name.
  - A backup is reported good only when C(pg_dump) exited 0 B(and) wrote no error, the
    archive is non-empty, C(pg_restore --list) reads it and it holds data for every expected
    table, and (O(verify=restore)) a full restore into a scratch database gives the same row
    counts. A failed or interrupted run leaves no file under the final name.
  - One archive per run (C(<database>-<release>-<run id>)). An earlier verified archive is
    reused only when it is provably of the database as it is now, that is, the same cluster
    (system identifier, postmaster start) and database (oid), no transaction committed
    anywhere in the cluster since its dump (the same transaction snapshot), the same
    sequence values, its content still has the sha256 of its manifest, and it was verified
    at least as O(verify) asks. Anything else,
    or anything that cannot be proven (a sequence the role cannot read), takes a new backup.
  - Several runs may write into one O(backup_dir) at once; each holds a shared lock on
    C(.stagegate-backup.lock) and uses temporary names of its own. Temporary files of
    interrupted runs are removed only by a run that is alone in the directory.
  - Progress (table by table, bytes written so far) is parsed from C(pg_dump --verbose),
    returned in RV(progress) and appended live to O(progress_file).
  - Retention keeps the newest O(keep) backups of the database and never removes a protected
    one (O(protect), and the C(backup) of C(<state_dir>/releases/<release>/manifest.json) for
    O(release) and O(running_release)).
  - Databases of any server encoding (UTF8, LATIN1, SQL_ASCII, ...) are dumped with
    C(--encoding=UTF8) (SQL_ASCII as is); the manifest records the encoding and locale, and
    restores re-create the database with them.
version_added: 0.1.0
author: stagegate developers (@stagegate)
extends_documentation_fragment:
  - stagegate.release.pg
options:
  backup_dir:
    description: Directory for archives and manifests (created when missing).
    type: path
    required: true
  name:
    description:
      - Archive base name. Default C(<database>-<release>-<run_id>) (parts not set are left
        out; a UTC timestamp to the microsecond stands for a missing O(run_id)).
      - With O(name) set, only an archive of that name is considered for reuse; a new backup
        replaces it.
      - Custom format archives get the suffix C(.dump).
      - O(name), O(release) and O(run_id) must each be one file name (no C(/) or C(\\), not
        C(.) or C(..), no leading C(.)); anything else is refused before anything is written.
    type: str
  release:
    description: Release this backup belongs to; recorded in the manifest, part of its name.
    type: str
  run_id:
    description:
      - The run this backup belongs to (C(stagegate_run_id)); recorded in the manifest and
        part of the archive name, so every run has its own archive.
    type: str
  format:
    description: C(pg_dump) archive format.
    type: str
    choices: [custom, directory]
    default: custom
  jobs:
    description: Parallel dump jobs (directory format only) and restore-rehearsal jobs.
    type: int
    default: 1
  compress:
    description: Compression level 0-9 (C(pg_dump --compress)); default is pg_dump's own.
    type: int
  row_counts:
    description:
      - V(exact) counts rows with C(count(*)) in the very snapshot C(pg_dump) reads
        (C(pg_export_snapshot)), concurrently with the dump; restores are then verified
        exactly. V(estimate) records C(pg_class.reltuples) only.
    type: str
    choices: [exact, estimate]
    default: exact
  verify:
    description:
      - V(list) reads the archive with C(pg_restore --list) and checks the expected tables;
        V(restore) also restores it into a scratch database and compares row counts (the
        scratch is always dropped); V(none) skips both (not recommended).
    type: str
    choices: [none, list, restore]
    default: list
  expected_tables:
    description: Tables (C(schema.table)) the archive must hold; default every ordinary table.
    type: list
    elements: str
  keep:
    description:
      - Keep the newest N backups of this database in O(backup_dir), counting the one this
        run takes or finds; 0 keeps all.
    type: int
    default: 0
  protect:
    description: Archive paths retention never removes.
    type: list
    elements: path
    default: []
  state_dir:
    description:
      - The stagegate state directory; the C(backup) field of
        C(<state_dir>/releases/<release>/manifest.json) is protected from retention.
    type: path
  running_release:
    description:
      - The release that runs, when the backup is taken for another one (a promotion's backup
        is named after the release it promotes). Its manifest's C(backup), what a rollback from
        it restores, is protected from retention too.
    type: str
  force:
    description: Take a new backup even when an earlier one is provably of the current state.
    type: bool
    default: false
  progress_file:
    description: File to append progress lines to while the dump runs (C(tail -f) it).
    type: path
attributes:
  check_mode:
    support: full
    description: Connects and reads the catalog, reports the plan; writes nothing.
  diff_mode:
    support: none
    description: Returns no diff.
  idempotent:
    support: partial
    description:
      - A second run reuses the archive of the first (C(changed=false)) only while nothing in
        the cluster committed since; any commit, also by this module's own O(verify=restore)
        rehearsal, makes the next run take a new backup.
notes:
  - Directory format in a container is dumped inside the container, then copied out.
seealso:
  - name: pg_dump
    description: The tool this module wraps.
    link: https://www.postgresql.org/docs/15/app-pgdump.html
  - module: stagegate.release.pg_restore
"""

EXAMPLES = r"""
- name: Back up the staging database before the deploy
  stagegate.release.pg_backup:
    db: "{{ stagegate_db }}"
    backup_dir: "{{ stagegate_state_dir }}/backups"
    release: "{{ stagegate_release }}"
    run_id: "{{ stagegate_run_id }}"
    verify: restore
    keep: 5
    state_dir: "{{ stagegate_state_dir }}"

- name: Dump through docker exec into the compose service postgres
  stagegate.release.pg_backup:
    db:
      host: 127.0.0.1
      port: 55432
      name: app
      user: app
      password: "{{ vault_db_password }}"
      container: postgres
    backup_dir: /var/lib/stagegate/staging/backups
"""

RETURN = r"""
path:
  description: Final archive path.
  returned: always
  type: str
manifest_path:
  description: Manifest path.
  returned: always
  type: str
manifest:
  description:
    - The manifest (database, server_version, size_bytes, sha256, duration_seconds,
      release, run_id, tables, locale, state, verification).
  returned: success
  type: dict
progress:
  description: Progress events C({table, bytes, seconds}) parsed from pg_dump --verbose.
  returned: when a dump ran
  type: list
  elements: dict
reused:
  description: Whether an earlier archive, provably of the current state, was reused.
  returned: always
  type: bool
reuse_check:
  description: Why an earlier archive was or was not reused.
  returned: unless O(force)
  type: str
swept:
  description: Temporary files of interrupted earlier runs that this run removed.
  returned: when a backup was taken
  type: list
  elements: str
removed:
  description: Archives removed (or, in check mode, that would be removed) by retention.
  returned: always
  type: list
  elements: str
tables:
  description: In check mode, the tables a dump would hold (row estimates, bytes).
  returned: check mode, when a backup would be taken
  type: dict
dsn:
  description: The connection, without its password.
  returned: always
  type: str
"""

import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ansible_collections.stagegate.release.plugins.module_utils._paths import (
    UnsafeNameError,
    safe_component,
)
from ansible_collections.stagegate.release.plugins.module_utils._pg import (
    PgError,
    PgTarget,
    ProgressLog,
    cleanup_on_signals,
    count_rows,
    database_locale,
    database_state,
    fail_json_from,
    list_tables,
    pg_module,
    psycopg,
    resolve_container,
    run_checked,
    run_manager,
    run_tool,
    same_state,
    server_version,
)
from ansible_collections.stagegate.release.plugins.module_utils._pg_archive import (
    MANIFEST_SUFFIX,
    BackupDirRun,
    expected_rows,
    load_json_file,
    manifest_path,
    protected_backups,
    publish,
    read_manifest,
    rehearse_restore,
    remove_path,
    retention_plan,
    sha256_of,
    size_of,
    staged_archive,
    verify_listing,
)

ARGUMENT_SPEC: dict[str, Any] = {
    "backup_dir": {"type": "path", "required": True},
    "name": {"type": "str"},
    "release": {"type": "str"},
    "running_release": {"type": "str"},
    "run_id": {"type": "str"},
    "format": {"type": "str", "choices": ["custom", "directory"], "default": "custom"},
    "jobs": {"type": "int", "default": 1},
    "compress": {"type": "int"},
    "row_counts": {"type": "str", "choices": ["exact", "estimate"], "default": "exact"},
    "verify": {"type": "str", "choices": ["none", "list", "restore"], "default": "list"},
    "expected_tables": {"type": "list", "elements": "str"},
    "keep": {"type": "int", "default": 0},
    "protect": {"type": "list", "elements": "path", "default": []},
    "state_dir": {"type": "path"},
    "force": {"type": "bool", "default": False},
    "progress_file": {"type": "path"},
}


VERIFY_LEVELS = {"none": 0, "list": 1, "restore": 2}


class BackupManager:
    def __init__(self, module: Any) -> None:
        self.module = module
        self.params = module.params
        self.target = PgTarget.from_module_params(module.params)
        self.backup_dir = Path(self.params["backup_dir"])
        self.archive = self.backup_dir / self._archive_name()
        self.result: dict[str, Any] = {
            "changed": False,
            "reused": False,
            "path": str(self.archive),
            "manifest_path": str(manifest_path(self.archive)),
            "dsn": self.target.redacted_dsn,
            "removed": [],
        }

    def _archive_name(self) -> str:
        """`name`, else `<database>-<release>-<run id>` (parts that are not set left out; a
        UTC timestamp when there is no run id): one archive per run."""
        checked = {
            option: safe_component(self.params[option], option)
            for option in ("name", "release", "run_id")
            if self.params[option] not in (None, "")
        }
        base = checked.get("name")
        if not base:
            # to the microsecond: two runs without a run id in one second get two archives
            now = datetime.now(timezone.utc)
            stamp = checked.get("run_id") or now.strftime("%Y%m%dT%H%M%S%fZ")
            parts = [self.target.dbname, checked.get("release"), stamp]
            base = safe_component("-".join(p for p in parts if p), "database name")
        return f"{base}.dump" if self.params["format"] == "custom" else base

    def run(self) -> dict[str, Any]:
        if self.params["jobs"] > 1 and self.params["format"] != "directory":
            raise PgError("jobs > 1 needs format=directory (pg_dump dumps in parallel only then)")
        # read before anything changes: a damaged release manifest stops the run here
        self.protected = protected_backups(
            self.params["state_dir"],
            [self.params["release"], self.params["running_release"]],
            self.params["protect"],
        )
        reusable = None if self.params["force"] else self._reusable()
        if reusable:
            self.archive, manifest = reusable
            self.result.update(
                reused=True,
                manifest=manifest,
                path=str(self.archive),
                manifest_path=str(manifest_path(self.archive)),
            )
        else:
            self.result["changed"] = True
            with self.target.connect() as conn:  # unreachable: fail before anything is written
                tables = list_tables(conn)
            if self.module.check_mode:
                self.result["tables"] = tables
            else:
                with cleanup_on_signals(), BackupDirRun(self.backup_dir) as claim:
                    self.result["swept"] = claim.swept
                    self.result["manifest"] = self._backup(claim)
        self._retention()
        return self.result

    # -- reuse: only a backup provably of the database as it is now ---------------------

    def _reusable(self) -> tuple[Path, dict[str, Any]] | None:
        """The newest verified archive of this database whose recorded state equals the
        database's state now (same cluster and database, no commit and no sequence change
        since) and whose content still has its recorded sha256; else None, with the reason
        in `reuse_check`."""
        candidates = self._candidates()
        if not candidates:
            self.result["reuse_check"] = "no earlier verified backup of this database here"
            return None
        with self.target.connect(autocommit=False) as conn:
            now = database_state(conn)
            conn.rollback()
        for archive, manifest in candidates:
            if not same_state(manifest.get("state"), now):
                continue
            if sha256_of(archive) != manifest.get("sha256"):
                self.module.warn(f"backup {archive} no longer matches its sha256: not reused")
                continue
            self.result["reuse_check"] = (
                f"{archive.name} holds the database as it is now (no commit since)"
            )
            return archive, manifest
        self.result["reuse_check"] = (
            "the database changed since the newest backup here (or that cannot be proven)"
        )
        return None

    def _candidates(self) -> list[tuple[Path, dict[str, Any]]]:
        """Verified archives of this database in this format, verified at least as `verify`
        asks (a listed archive does not stand in for a rehearsed one), newest first (only
        `name` itself when set)."""
        if not self.backup_dir.is_dir():
            return []
        if self.params["name"]:
            paths = [manifest_path(self.archive)] if self.archive.exists() else []
        else:
            paths = list(self.backup_dir.glob(f"*{MANIFEST_SUFFIX}"))
        found = []
        for path in paths:
            if path.name.startswith("."):
                continue
            try:
                manifest = load_json_file(path, "backup manifest")
            except PgError as exc:  # another backup's damaged manifest: not a candidate
                self.module.warn(f"{exc.msg}; it is not reused")
                continue
            archive = Path(str(path)[: -len(MANIFEST_SUFFIX)])
            level = (manifest.get("verification") or {}).get("level", "none")
            if (
                manifest.get("verified")
                and manifest.get("database") == self.target.dbname
                and manifest.get("format") == self.params["format"]
                and VERIFY_LEVELS.get(level, -1) >= VERIFY_LEVELS[self.params["verify"]]
                and archive.exists()
            ):
                found.append((str(manifest.get("created", "")), archive, manifest))
        found.sort(key=lambda item: item[0], reverse=True)
        return [(archive, manifest) for _, archive, manifest in found]

    # -- a new backup -------------------------------------------------------------------

    def _backup(self, claim: BackupDirRun) -> dict[str, Any]:
        if self.params["name"]:
            read_manifest(self.archive)  # a damaged manifest of the same name fails here
        partial = claim.partial(self.archive.name)
        try:
            manifest = self._dump_and_verify(partial)
            publish(partial, self.archive, manifest)
        finally:
            remove_path(partial)
        return manifest

    def _dump_and_verify(self, partial: Path) -> dict[str, Any]:
        created = datetime.now(timezone.utc).isoformat()
        with self.target.connect(autocommit=False) as conn:
            # one REPEATABLE READ snapshot for the catalog, the row counts and pg_dump itself
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            version = server_version(conn)
            tables = list_tables(conn)
            state = database_state(conn)
            locale = database_locale(conn, self.target.dbname)
            snapshot = str(conn.execute("SELECT pg_export_snapshot()").fetchone()[0])
            counts: dict[str, int] = {}

            def count_while_dumping() -> None:
                if self.params["row_counts"] == "exact":
                    counts.update(count_rows(conn, sorted(tables)))

            # names in the archive in UTF8, as psycopg reads them (SQL_ASCII: no conversion
            # exists, its bytes are dumped as they are)
            encoding = "SQL_ASCII" if (locale or {}).get("encoding") == "SQL_ASCII" else "UTF8"
            run = self._dump(partial, snapshot, count_while_dumping, encoding)
            try:
                if run.ok and database_state(conn)["sequences_sha256"] != state["sequences_sha256"]:
                    state["provable"] = False  # a sequence moved while pg_dump ran
                conn.rollback()
            except psycopg.Error:
                if run.ok:  # else the dump's own failure (e.g. server gone) is the story
                    raise
        self.result["progress"] = run.progress
        if not run.ok:
            raise run.failure("pg_dump")
        for name, rows in counts.items():
            tables[name]["rows"] = rows
        manifest: dict[str, Any] = {
            "database": self.target.dbname,
            "server_version": version,
            "format": self.params["format"],
            "archive": self.archive.name,
            "path": str(self.archive),
            "created": created,
            "release": self.params["release"],
            "run_id": self.params["run_id"],
            "duration_seconds": round(run.seconds, 3),
            "tables": tables,
            "locale": locale,
            "state": state,
        }
        manifest["verification"] = self._verify(str(partial), manifest)
        sha256 = run.sha256 or sha256_of(partial)  # a directory archive is hashed afterwards
        manifest.update(size_bytes=size_of(partial), sha256=sha256, verified=True)
        return manifest

    def _dump(self, partial: Path, snapshot: str, while_running: Any, encoding: str) -> Any:
        args = [
            "--verbose",
            f"--format={self.params['format']}",
            f"--snapshot={snapshot}",
            f"--encoding={encoding}",
        ]
        if self.params["compress"] is not None:
            args.append(f"--compress={self.params['compress']}")
        if self.params["format"] == "directory":
            args.append(f"--jobs={self.params['jobs']}")
        progress = ProgressLog(self.params["progress_file"], lambda: size_of(partial))
        env = self.target.tool_env()
        if self.params["format"] == "custom":  # through a pipe, hashed as it is written
            argv = self.target.tool_argv("pg_dump", args)
            return run_tool(
                argv, env, progress, stdout_path=str(partial), while_running=while_running
            )
        if not self.target.container:
            argv = self.target.tool_argv("pg_dump", [*args, f"--file={partial}"])
            return run_tool(argv, env, progress, while_running=while_running)
        return self._dump_directory_in_container(partial, args, env, progress, while_running)

    def _dump_directory_in_container(
        self, partial: Path, args: list[str], env: dict[str, str], progress: Any, while_running: Any
    ) -> Any:
        container = resolve_container(str(self.target.container), self.target.compose_project)
        inside = f"/tmp/{partial.name}"  # noqa: S108 - removed in the finally below
        try:
            argv = self.target.tool_argv("pg_dump", [*args, f"--file={inside}"])
            run = run_tool(argv, env, progress, while_running=while_running)
            if run.ok:
                run_checked(["docker", "cp", f"{container}:{inside}", str(partial)])
            return run
        finally:
            subprocess.run(["docker", "exec", container, "rm", "-rf", inside], check=False)

    def _verify(self, archive: str, manifest: dict[str, Any]) -> dict[str, Any]:
        level = self.params["verify"]
        if level == "none":
            return {"level": "none"}
        expected = self.params["expected_tables"] or list(manifest["tables"])
        # one listing serves both levels; the rehearsal restores from one copy (into the
        # database container, if any), which a listing alone does without
        with staged_archive(self.target, archive, for_restore=level != "list") as staged:
            listing = verify_listing(staged, expected)
            if level == "list":
                return listing
            rows, exact = expected_rows(manifest)
            with self.target.for_database("postgres").connect() as admin:
                rehearsal = rehearse_restore(
                    self.target,
                    admin=admin,
                    staged=staged,
                    expected_rows=rows,
                    exact=exact,
                    jobs=self.params["jobs"],
                    locale=manifest.get("locale"),
                )
        return {**rehearsal, "list_seconds": listing["seconds"]}

    def _retention(self) -> None:
        if self.params["keep"] <= 0 or not self.backup_dir.is_dir():
            return
        doomed = retention_plan(
            self.backup_dir, self.target.dbname, self.params["keep"], self.archive, self.protected
        )
        self.result["removed"] = [str(p) for p in doomed]
        if doomed:
            self.result["changed"] = True
        if self.module.check_mode:
            return
        for archive in doomed:
            manifest_path(archive).unlink(missing_ok=True)
            remove_path(archive)


def main() -> None:
    module = pg_module(ARGUMENT_SPEC, supports_check_mode=True)
    try:
        manager = BackupManager(module)
    except UnsafeNameError as exc:
        fail_json_from(module, PgError(str(exc)), changed=False)
    run_manager(module, manager)


if __name__ == "__main__":
    main()
