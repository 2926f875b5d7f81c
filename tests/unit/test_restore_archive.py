"""Which dump restore.yml restores and what it says of it (plugins/module_utils/_pg_archive.py):
the format read from the bytes, the newest archive chosen, the `pg_restore --list` header.
Pure Python; tests/test_restore.py runs the same through restore.yml on a real stack."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest
from ansible_collections.stagegate.release.plugins.module_utils._pg import PgError
from ansible_collections.stagegate.release.plugins.module_utils._pg_archive import (
    archive_format,
    find_archive,
    listing_header,
    restore_summary,
)

# the head of a real `pg_restore --list` of a pg_dump -Fc made by hand (PostgreSQL 15)
LISTING = """;
; Archive created at 2026-11-30 16:02:11 UTC
;     dbname: shop
;     TOC Entries: 12
;     Compression: -1
;     Dump Version: 1.14-0
;     Format: CUSTOM
;     Integer: 4 bytes
;     Offset: 8 bytes
;     Dumped from database version: 15.14 (Debian 15.14-0+deb12u1)
;     Dumped by pg_dump version: 15.14 (Debian 15.14-0+deb12u1)
;
;
; Selected TOC Entries:
;
215; 1259 16390 TABLE public items app
3342; 0 16390 TABLE DATA public items app
"""


def write(path: Path, data: bytes, age: int = 0) -> Path:
    path.write_bytes(data)
    stamp = path.stat().st_mtime - age
    os.utime(path, (stamp, stamp))
    return path


def pg_tar(path: Path) -> Path:
    """A tar archive shaped as pg_dump -Ft writes it: toc.dat first."""
    toc = path.parent / "toc.dat"
    toc.write_bytes(b"PGDMP")
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        tar.add(toc, arcname="toc.dat")
    toc.unlink()
    return path


def test_formats_read_from_the_bytes_not_the_name(tmp_path: Path) -> None:
    assert archive_format(write(tmp_path / "x.sql", b"PGDMP\x01\x0e\x00")) == "custom"
    assert archive_format(pg_tar(tmp_path / "t.dump")) == "tar"
    directory = tmp_path / "dir"
    directory.mkdir()
    (directory / "toc.dat").write_bytes(b"PGDMP")
    assert archive_format(directory) == "directory"


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"--\n-- PostgreSQL database dump\n--\nSET statement_timeout = 0;\n", "plain SQL dump"),
        (b"\x1f\x8b\x08\x00rest", "gzip-compressed"),
        (b"", "empty"),
        (b"\x00\x13garbage bytes", "not a PostgreSQL dump"),
    ],
)
def test_other_files_are_refused_naming_the_file_and_the_expected_forms(
    tmp_path: Path, content: bytes, said: str
) -> None:
    bad = write(tmp_path / "app.dump", content)
    with pytest.raises(PgError) as err:
        archive_format(bad)
    assert str(bad) in err.value.msg
    assert said in err.value.msg
    assert "pg_dump -Fc" in err.value.msg
    assert "-Fd" in err.value.msg


def test_a_directory_without_toc_and_a_missing_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(PgError, match=r"directory without toc\.dat"):
        archive_format(tmp_path)
    with pytest.raises(PgError, match="does not exist"):
        archive_format(tmp_path / "gone.dump")


def test_the_newest_archive_is_chosen_and_newer_other_files_passed_over(tmp_path: Path) -> None:
    write(tmp_path / "old.dump", b"PGDMP", age=300)
    newest = write(tmp_path / "new.dump", b"PGDMP", age=100)
    write(tmp_path / "notes.txt", b"remember the milk", age=10)
    write(tmp_path / "new.dump.manifest.json", b"{}")  # a manifest is never a candidate
    write(tmp_path / ".stagegate-partial-1-x.dump", b"PGDMP")  # nor a temporary file
    chosen, passed = find_archive("", tmp_path)
    assert chosen == newest
    assert [Path(p["path"]).name for p in passed] == ["notes.txt"]
    assert "not a PostgreSQL dump" in passed[0]["reason"]


def test_a_name_is_looked_up_in_the_backup_dir(tmp_path: Path) -> None:
    write(tmp_path / "app-v1.dump", b"PGDMP")
    assert find_archive("app-v1", tmp_path) == (tmp_path / "app-v1.dump", [])
    assert find_archive("app-v1.dump", tmp_path)[0] == tmp_path / "app-v1.dump"
    assert find_archive(str(tmp_path / "app-v1.dump"), "/nonexistent")[0].name == "app-v1.dump"
    with pytest.raises(PgError, match="absolute path or the name"):
        find_archive("sub/app-v1.dump", tmp_path)
    write(tmp_path / "garbage.dump", b"nope")
    with pytest.raises(PgError, match=r"garbage\.dump is not a PostgreSQL dump"):
        find_archive("garbage.dump", tmp_path)  # named: refused, never passed over


def test_no_archive_at_all(tmp_path: Path) -> None:
    write(tmp_path / "notes.txt", b"hello")
    with pytest.raises(PgError, match=r"no archive in .* \(1 other entry\)"):
        find_archive("", tmp_path)
    with pytest.raises(PgError, match="no backup directory"):
        find_archive("", tmp_path / "missing")


def test_listing_header_names_the_source_database() -> None:
    header = listing_header(LISTING)
    assert header == {
        "created": "2026-11-30 16:02:11 UTC",
        "database": "shop",
        "toc_entries": 12,
        "compression": "-1",
        "format": "CUSTOM",
        "server_version": "15.14 (Debian 15.14-0+deb12u1)",
        "pg_dump_version": "15.14 (Debian 15.14-0+deb12u1)",
    }


def test_summary_says_what_is_restored_and_what_stops() -> None:
    info = {
        "path": "/srv/shop.dump",
        "format": "custom",
        "bytes": 2048,
        "modified": "2026-11-30T16:02:11Z",
        "archive": listing_header(LISTING),
        "tables": ["public.items"],
        "manifest": None,
        "passed_over": [{"path": "/srv/notes.txt", "reason": "not a dump"}],
    }
    text = restore_summary(info, database="app", environment="staging", stop=["api", "worker"])
    assert "Restore:          /srv/shop.dump" in text
    assert "not stagegate (no manifest)" in text
    assert "dumped from database shop at 2026-11-30 16:02:11 UTC" in text
    assert "tables with data: 1: public.items" in text
    assert "Into:             database app (dropped and re-created), environment staging" in text
    assert "Passed over:      /srv/notes.txt: not a dump" in text
    assert "Stops:            api, worker (the database keeps running)" in text
    # a trial's restore lost a row written after the dump with no word of it
    assert (
        "Data lost:        everything written to app since the dump was taken "
        "(2026-11-30 16:02:11 UTC): the database is replaced whole" in text
    )
