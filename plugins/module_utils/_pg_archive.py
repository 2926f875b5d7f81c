# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Dump archives: checksum, manifest, `pg_restore --list` reading, verification, retention.

A backup is `<name>.dump` (custom format) or `<name>/` (directory format) with
`<name>.dump.manifest.json` / `<name>.manifest.json` beside it. Only after verification passed
is the manifest written (to a temporary name, then renamed), and the archive is renamed to its
final name last: a file under a final archive name always has its manifest, and a manifest
with `"verified": true` never points at a bad or partial archive.

Temporary files are named `.stagegate-partial-<run token>-...`; a run holds a shared `flock` on
`<backup_dir>/.stagegate-backup.lock` while it works, and removes leftovers of interrupted runs
only when it can take that lock exclusively (no other run is in flight in the directory).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ansible_collections.stagegate.release.plugins.module_utils._paths import (
    UnsafeNameError,
    release_manifest_path,
)
from ansible_collections.stagegate.release.plugins.module_utils._pg import (
    PgError,
    PgTarget,
    ProgressLog,
    container_workdir,
    count_rows,
    create_database,
    drop_database,
    run_tool,
    scratch_name,
)
from ansible_collections.stagegate.release.plugins.module_utils._state_files import (
    fsync_dir,
    json_text,
    write_temp,
)

PARTIAL_PREFIX = ".stagegate-partial-"
LOCK_NAME = ".stagegate-backup.lock"
VERIFY_PREFIX = "stagegate_verify_"
MANIFEST_SUFFIX = ".manifest.json"


def manifest_path(archive: str | Path) -> Path:
    return Path(f"{archive}{MANIFEST_SUFFIX}")


def sha256_of(path: str | Path) -> str:
    """sha256 of a file, or of a directory archive's files (name and content, in name order)."""
    digest = hashlib.sha256()
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for item in files:
        if path.is_dir():
            digest.update(item.relative_to(path).as_posix().encode() + b"\0")
        with item.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def size_of(path: str | Path) -> int:
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


def remove_path(path: str | Path) -> None:
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def load_json_file(path: Path, what: str) -> dict[str, Any]:
    """A JSON object from `path`; a truncated or invalid file is a PgError naming it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise PgError(
            f"{what} {path} cannot be read ({reason}): it is truncated or not JSON; "
            "restore it from a copy, or remove it together with what it describes",
            path=str(path),
        ) from exc
    if not isinstance(data, dict):
        raise PgError(f"{what} {path} is not a JSON object", path=str(path))
    return data


def read_manifest(archive: str | Path) -> dict[str, Any] | None:
    """The archive's manifest, None when there is none; a damaged one is a PgError."""
    path = manifest_path(archive)
    if not path.exists():
        return None
    return load_json_file(path, "backup manifest")


def publish(partial: Path, archive: Path, manifest: dict[str, Any]) -> None:
    """Give a verified partial archive its final name: the manifest is written first (temporary
    name, fsync, rename), the archive renamed last. At no moment does a file under the final
    archive name lack its manifest; an archive of the same name taken before is removed first."""
    final_manifest = manifest_path(archive)
    temp = final_manifest.with_name(
        f"{PARTIAL_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}-{final_manifest.name}"
    )  # a partial name: an interrupted run's leftover is swept with the others
    try:
        text = json_text(manifest)
        write_temp(str(final_manifest), text, "the backup manifest", mode=0o644, temp=str(temp))
    except OSError as exc:  # a StateFileError: the errno's own words, as the tools would say
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise PgError(
            f"writing the manifest {final_manifest} failed ({reason}): the "
            f"verified archive is not kept under {archive.name}",
            path=str(archive),
        ) from exc
    try:
        remove_path(archive)
        temp.replace(final_manifest)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    partial.replace(archive)
    fsync_dir(str(archive.parent))


class BackupDirRun:
    """One run's claim on a backup directory: a shared flock on its lock file while the run
    works, per-run temporary names, and the sweep of leftovers of runs that are gone."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.swept: list[str] = []
        self._fd: int | None = None

    def __enter__(self) -> BackupDirRun:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # another run is in flight: its partials are not leftovers, sweep nothing
        else:
            self.swept = sweep_partials(self.directory)
        fcntl.flock(self._fd, fcntl.LOCK_SH)  # a conversion: no partial of ours exists yet
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None

    def partial(self, name: str) -> Path:
        return self.directory / f"{PARTIAL_PREFIX}{self.token}-{name}"


def sweep_partials(directory: Path) -> list[str]:
    """Remove every temporary file in `directory`; call only while holding its lock
    exclusively (then no run that could own one is in flight)."""
    swept = []
    for leftover in sorted(directory.glob(f"{PARTIAL_PREFIX}*")):
        remove_path(leftover)
        swept.append(leftover.name)
    return swept


class StagedArchive:
    """An archive where pg_restore sees it (copied into the database container, when there is
    one, the first time a restore needs it), with its table of contents read once."""

    def __init__(self, target: PgTarget, place: Callable[[str], str], archive: str) -> None:
        self.target = target
        self.place = place
        self.host_path = archive
        self._path: str | None = None
        self._listing: str | None = None

    def stage(self) -> str:
        """The archive's path as pg_restore sees it, copied there on the first call."""
        if self._path is None:
            self._path = self.place(self.host_path)
        return self._path

    def listing(self) -> str:
        """The archive's table of contents as `pg_restore --list` prints it."""
        if self._listing is None:
            # an archive file not copied into the container yet streams to pg_restore's stdin
            # (its table of contents comes first), which saves the copy a listing alone needs
            stream = (
                bool(self.target.container)
                and self._path is None
                and os.path.isfile(self.host_path)
            )
            args = ["--list"] if stream else ["--list", self.stage()]
            # --list takes no connection: drop the -d/-U the helper adds
            argv = _without_connection(self.target.tool_argv("pg_restore", args))
            self._listing = _run_capture(
                argv, self.target.tool_env(), self.host_path if stream else None
            )
        return self._listing


@contextmanager
def staged_archive(
    target: PgTarget, archive: str, for_restore: bool = False
) -> Iterator[StagedArchive]:
    """`for_restore`: pg_restore will read the archive's data, so it is copied into the
    container at once and listed from the copy (a listing alone streams a dump file)."""
    with container_workdir(target) as place:
        staged = StagedArchive(target, place, archive)
        if for_restore:
            staged.stage()
        yield staged


def archive_tables(listing: str) -> list[str]:
    """`schema.table` of every TABLE DATA entry of a `pg_restore --list` listing."""
    tables = []
    for line in listing.splitlines():
        if line.startswith(";") or " TABLE DATA " not in line:
            continue
        rest = line.split(" TABLE DATA ", 1)[1].rsplit(" ", 1)[0]  # drop the owner
        schema, _, name = rest.partition(" ")
        tables.append(f"{schema}.{name}")
    return tables


EXTENSION_ENTRY = re.compile(r"^\d+; \d+ \d+ (?:EXTENSION - |COMMENT - EXTENSION )(\S+)")


def archive_extensions(listing: str) -> set[str]:
    return {m.group(1) for line in listing.splitlines() if (m := EXTENSION_ENTRY.match(line))}


def extensions_to_skip(admin: Any, wanted: set[str], installed: set[str]) -> set[str]:
    """Extensions a non-superuser cannot (re)create: untrusted ones, and installed ones it
    does not own (a clean restore would drop them). A superuser skips none."""
    superuser = admin.execute(
        "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    if superuser and superuser[0]:
        return set()
    trusted = {
        row[0]
        for row in admin.execute(
            "SELECT DISTINCT name FROM pg_available_extension_versions WHERE trusted"
        ).fetchall()
    }
    return {name for name in wanted if name in installed or name not in trusted}


def _without_connection(argv: list[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("-d", "-U"):
            skip = True
            continue
        out.append(arg)
    return out


def _run_capture(argv: list[str], env: dict[str, str], stdin_path: str | None = None) -> str:
    import subprocess  # noqa: PLC0415 - only this path needs captured stdout

    with open(stdin_path or os.devnull, "rb") as stdin:
        proc = subprocess.run(argv, stdin=stdin, capture_output=True, env=env, check=False)
    stderr = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0 or not proc.stdout.strip():
        raise PgError(
            f"pg_restore --list cannot read the archive (rc={proc.returncode}): "
            f"{(stderr.strip().splitlines() or ['empty listing'])[-1]}",
            cmd=argv,
            rc=proc.returncode,
            stderr=stderr,
        )
    # pg_backup dumps in UTF8 (raw bytes from SQL_ASCII); surrogateescape keeps any other
    # byte, so a --use-list written back from these lines has the archive's own bytes
    return proc.stdout.decode("utf-8", "surrogateescape")


def verify_listing(staged: StagedArchive, expected_tables: list[str]) -> dict[str, Any]:
    """The archive is non-empty, readable by pg_restore --list and holds the expected tables."""
    started = time.monotonic()
    archive = staged.host_path
    if size_of(archive) == 0:
        raise PgError(f"backup {archive} is empty", verification="list")
    listed = archive_tables(staged.listing())
    missing = sorted(set(expected_tables) - set(listed))
    if missing:
        raise PgError(
            f"backup {archive} lacks data for {len(missing)} expected table(s): "
            f"{', '.join(missing[:10])}",
            verification="list",
            missing_tables=missing,
        )
    return {"level": "list", "tables": len(listed), "seconds": round(time.monotonic() - started, 3)}


def restore_into(
    target: PgTarget,
    *,
    staged: StagedArchive,
    dbname: str,
    jobs: int,
    progress: ProgressLog | None,
    extra: list[str] | None = None,
    skip_extensions: set[str] | None = None,
) -> Any:
    """pg_restore the staged archive into `dbname`; raises with cmd/rc/stderr on any error.

    `skip_extensions` leaves those extensions' entries out (through --use-list)."""
    args = ["--verbose", "--exit-on-error", f"--jobs={jobs}", *(extra or [])]
    with tempfile.TemporaryDirectory(prefix="stagegate-") as work:
        if skip_extensions:
            kept = [
                line
                for line in staged.listing().splitlines()
                if not ((m := EXTENSION_ENTRY.match(line)) and m.group(1) in skip_extensions)
            ]
            use_list = Path(work) / "use.list"
            use_list.write_text("\n".join(kept) + "\n", encoding="utf-8", errors="surrogateescape")
            use_list.chmod(0o644)
            args.append(f"--use-list={staged.place(str(use_list))}")
        argv = target.tool_argv("pg_restore", [*args, staged.stage()], dbname)
        run = run_tool(argv, target.tool_env(), progress)
    if not run.ok:
        raise run.failure("pg_restore")
    return run


def rehearse_restore(
    target: PgTarget,
    *,
    admin: Any,
    staged: StagedArchive,
    expected_rows: dict[str, int],
    exact: bool,
    jobs: int,
    locale: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Restore into a scratch database (of the source's encoding and locale), compare row
    counts, always drop the scratch."""
    started = time.monotonic()
    scratch = scratch_name(VERIFY_PREFIX)
    skipped = extensions_to_skip(admin, archive_extensions(staged.listing()), set())
    create_database(admin, scratch, locale=locale)
    try:
        restore_into(
            target,
            staged=staged,
            dbname=scratch,
            jobs=jobs,
            progress=None,
            extra=["--no-owner", "--no-privileges"],
            skip_extensions=skipped,
        )
        with target.for_database(scratch).connect() as conn:
            restored = count_rows(conn, sorted(expected_rows))
    finally:
        drop_database(admin, scratch)
    mismatched = compare_rows(expected_rows, restored, exact)
    if mismatched:
        raise PgError(
            f"restore rehearsal: row counts differ for {len(mismatched)} table(s)",
            verification="restore",
            mismatched=mismatched,
        )
    return {
        "level": "restore",
        "rows": restored,
        "skipped_extensions": sorted(skipped),
        "seconds": round(time.monotonic() - started, 3),
    }


def compare_rows(expected: dict[str, int], actual: dict[str, int], exact: bool) -> dict[str, Any]:
    """Tables whose row count differs (exact), or that are empty where rows were estimated."""
    mismatched = {}
    for table, want in expected.items():
        got = actual.get(table)
        if got is None or (got != want if exact else (want > 0 and got == 0)):
            mismatched[table] = {"expected": want, "actual": got}
    return mismatched


def expected_rows(manifest: dict[str, Any]) -> tuple[dict[str, int], bool]:
    """Row counts a manifest promises, and whether they are exact (else reltuples estimates)."""
    tables = manifest.get("tables", {})
    exact = all("rows" in info for info in tables.values())
    key = "rows" if exact else "rows_estimate"
    return {name: int(info.get(key, 0)) for name, info in tables.items()}, exact


def protected_backups(
    state_dir: str | None, releases: list[str | None], extra: list[str]
) -> set[str]:
    """Backups retention must keep: `extra` plus those the manifests of `releases` point at."""
    protected = {str(Path(p).resolve()) for p in extra}
    for release in dict.fromkeys(r for r in releases if r and state_dir):
        try:
            release_manifest = Path(release_manifest_path(state_dir, release))
        except UnsafeNameError as exc:
            raise PgError(str(exc)) from exc
        if release_manifest.exists():
            # unreadable: fail rather than let retention remove the backup it protects
            ref = load_json_file(release_manifest, "release manifest").get("backup")
            ref = ref.get("path") if isinstance(ref, dict) else ref
            if ref:
                protected.add(str(Path(ref).resolve()))
    return protected


def retention_plan(
    backup_dir: Path, database: str, keep: int, current: Path, protected: set[str]
) -> list[Path]:
    """Archives of `database` beyond the newest `keep` (counting `current`, taken now), oldest
    first, minus protected ones."""
    found = []
    for manifest in backup_dir.glob(f"*{MANIFEST_SUFFIX}"):
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        archive = Path(str(manifest)[: -len(MANIFEST_SUFFIX)])
        if data.get("database") == database and archive != current:
            found.append((str(data.get("created", "")), archive))
    found.sort(reverse=True)
    doomed = [archive for _, archive in found[max(keep - 1, 0) :]]
    return [a for a in reversed(doomed) if str(a.resolve()) not in protected]


# -- archives stagegate did not make (restore.yml) -------------------------------------

# The formats pg_restore reads; plain SQL (pg_dump's default, -Fp) is a psql script.
RESTORABLE_FORMATS = ("custom", "directory", "tar")
EXPECTED_FORMS = (
    "a pg_dump archive: custom format (pg_dump -Fc, a file starting with PGDMP), directory "
    "format (pg_dump -Fd, a directory holding toc.dat) or tar format (pg_dump -Ft)"
)
_TAR_MAGIC = slice(257, 262)


def archive_format(path: str | Path) -> str:
    """`custom`, `directory` or `tar` by the archive's own bytes (never by its name); a
    PgError naming the file, what it looks like and the expected forms otherwise."""
    path = Path(path)
    if path.is_dir():
        if (path / "toc.dat").is_file():
            return "directory"
        raise PgError(
            f"{path} is a directory without toc.dat, not {EXPECTED_FORMS}", path=str(path)
        )
    if not path.is_file():
        raise PgError(f"{path} does not exist (expected {EXPECTED_FORMS})", path=str(path))
    with path.open("rb") as fh:
        head = fh.read(512)
    if head.startswith(b"PGDMP"):
        return "custom"
    if len(head) >= 262 and head[_TAR_MAGIC] == b"ustar" and head.startswith(b"toc.dat"):
        return "tar"
    raise PgError(f"{path} is {_what_it_is(head)}, not {EXPECTED_FORMS}", path=str(path))


def _what_it_is(head: bytes) -> str:
    if not head:
        return "empty"
    if head.startswith(b"\x1f\x8b"):
        return "gzip-compressed (unpack it first; a .sql.gz is a plain SQL dump)"
    text = head.decode("utf-8", "replace")
    if "PostgreSQL database dump" in text or text.lstrip().upper().startswith(("SET ", "CREATE ")):
        return "a plain SQL dump (pg_dump -Fp; re-dump it with -Fc, or load it with psql)"
    if len(head) >= 262 and head[_TAR_MAGIC] == b"ustar":
        return "a tar file that is not a pg_dump -Ft archive (no toc.dat first)"
    return "not a PostgreSQL dump (unknown content)"


_HEADER = re.compile(r"^;\s+(?P<key>[A-Za-z][A-Za-z_ ]*?):\s*(?P<value>.*)$")
_CREATED = re.compile(r"^; Archive created at (?P<at>.+)$")
_HEADER_KEYS = {
    "dbname": "database",
    "TOC Entries": "toc_entries",
    "Compression": "compression",
    "Format": "format",
    "Dumped from database version": "server_version",
    "Dumped by pg_dump version": "pg_dump_version",
}


def listing_header(listing: str) -> dict[str, Any]:
    """What a `pg_restore --list` header says of the archive: the database it was dumped from,
    when, by which pg_dump from which server, its format and TOC size."""
    info: dict[str, Any] = {}
    for line in listing.splitlines():
        if not line.startswith(";"):
            break
        if created := _CREATED.match(line):
            info["created"] = created.group("at").strip()
        elif (m := _HEADER.match(line)) and m.group("key") in _HEADER_KEYS:
            info[_HEADER_KEYS[m.group("key")]] = m.group("value").strip()
    if "toc_entries" in info and str(info["toc_entries"]).isdigit():
        info["toc_entries"] = int(info["toc_entries"])
    return info


def is_candidate(entry: Path) -> bool:
    """A name in a backup directory that may be an archive: not hidden (temporary files, the
    lock), not a manifest."""
    return not entry.name.startswith(".") and not entry.name.endswith(MANIFEST_SUFFIX)


def find_archive(source: str, backup_dir: str | Path) -> tuple[Path, list[dict[str, str]]]:
    """The archive to restore, and what was passed over: `source` (an absolute path, or a name
    in `backup_dir`, `.dump` optional), else the newest (by modification time) entry of
    `backup_dir` that is in a restorable format. A named file in another format is refused
    (PgError); an unreadable newest candidate is passed over, and listed."""
    directory = Path(backup_dir)
    if source:
        named = Path(source)
        if not named.is_absolute():
            if len(named.parts) != 1:
                raise PgError(
                    f"stagegate_restore_from={source!r}: expected an absolute path or the name "
                    f"of an archive in the backup directory {directory}"
                )
            named = directory / source
            if not named.exists() and Path(f"{named}.dump").exists():
                named = Path(f"{named}.dump")
        archive_format(named)
        return named, []
    if not directory.is_dir():
        raise PgError(
            f"no backup directory {directory}: name the archive with stagegate_restore_from "
            "(an absolute path)",
            path=str(directory),
        )
    entries = sorted(
        (e for e in directory.iterdir() if is_candidate(e)),
        key=lambda e: (e.stat().st_mtime, e.name),
        reverse=True,
    )
    passed: list[dict[str, str]] = []
    for entry in entries:
        try:
            archive_format(entry)
        except PgError as exc:
            passed.append({"path": str(entry), "reason": exc.msg})
            continue
        return entry, passed
    raise PgError(
        f"no archive in {directory} ({len(passed)} other entr{'y' if len(passed) == 1 else 'ies'}"
        f"); expected {EXPECTED_FORMS}",
        path=str(directory),
        passed_over=passed,
    )


def restore_summary(
    info: dict[str, Any], *, database: str, environment: str, stop: list[str]
) -> str:
    """The restore plan as restore.yml prints it (and `--check` ends with)."""
    header = info.get("archive") or {}
    manifest = info.get("manifest")
    tables = info.get("tables") or []
    made_by = (
        f"stagegate backup, run {manifest.get('run_id')} (release {manifest.get('release')}), "
        f"{'verified' if manifest.get('verified') else 'NOT verified'}"
        if manifest
        else "not stagegate (no manifest): verified by its own table of contents"
    )
    shown = ", ".join(tables[:8]) + (f", ... ({len(tables) - 8} more)" if len(tables) > 8 else "")
    lines = [
        f"Restore:          {info['path']}",
        f"  format {info['format']}, {info['bytes']} bytes, modified {info['modified']}",
        f"  made by {made_by}",
        f"  dumped from database {header.get('database', '?')} at {header.get('created', '?')}"
        f" (server {header.get('server_version', '?')}, "
        f"pg_dump {header.get('pg_dump_version', '?')})",
        f"  tables with data: {len(tables)}" + (f": {shown}" if tables else ""),
        f"Into:             database {database} (dropped and re-created), "
        f"environment {environment}",
        f"Data lost:        everything written to {database} since the dump was taken "
        f"({header.get('created', '?')}): the database is replaced whole; take a backup first "
        "(playbooks/backup.yml) to keep it",
    ]
    lines += [f"Passed over:      {p['path']}: {p['reason']}" for p in info.get("passed_over", [])]
    stops = ", ".join(stop) if stop else "nothing (no stagegate_app_services configured)"
    lines += [
        f"Stops:            {stops} (the database keeps running)",
        "Then:             starts the tiers, verifies (checks, gate, report); afterwards "
        "every table above must exist",
    ]
    return "\n".join(lines)
