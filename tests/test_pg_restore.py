"""pg_restore on a real PostgreSQL 15 server: round trip against the manifest, guards."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from ansible_collections.stagegate.release.plugins.module_utils._pg import (
    PgError,
    PgTarget,
    other_sessions,
)
from ansible_collections.stagegate.release.plugins.module_utils._pg_archive import (
    staged_archive,
    verify_listing,
)
from conftest import PgCluster, free_port, unique_name
from pg_fixtures import SAMPLE_SCHEMA, db_arg, fingerprint, run_module


@pytest.fixture
def exact_backup(pg_cluster: PgCluster, sample_db: str, tmp_path: Path) -> Path:
    result = run_module(
        "pg_backup",
        {"db": db_arg(pg_cluster, sample_db), "backup_dir": str(tmp_path), "name": "rt"},
    )
    assert result.get("failed") is not True, (result.get("msg"), result.get("stderr"))
    return Path(result["path"])


def test_other_sessions_leave_out_this_process_own_backends(
    pg_cluster: PgCluster, sample_db: str
) -> None:
    # A backend whose client just closed may still be listed while it exits; the restore counts
    # its own such backends out instead of refusing to restore over "other sessions".
    with (
        psycopg.connect(pg_cluster.dsn("postgres"), autocommit=True) as admin,
        psycopg.connect(pg_cluster.dsn(sample_db)) as own,
    ):
        assert other_sessions(admin, sample_db) == 1
        assert other_sessions(admin, sample_db, {own.info.backend_pid}) == 0


@pytest.mark.slow
def test_round_trip_equals_manifest_and_is_idempotent(
    pg_cluster: PgCluster, sample_db: str, exact_backup: Path
) -> None:
    target = f"{sample_db}_restored"
    args = {
        "db": db_arg(pg_cluster, "postgres"),
        "backup": str(exact_backup),
        "name": target,
        "jobs": 2,
    }
    try:
        restored = run_module("pg_restore", args)
        assert restored.get("failed") is not True, (restored.get("msg"), restored.get("stderr"))
        manifest = json.loads(Path(f"{exact_backup}.manifest.json").read_text())
        assert restored["verification"]["exact"] is True
        assert restored["verification"]["rows"] == {
            t: i["rows"] for t, i in manifest["tables"].items()
        }
        assert restored["verification"]["mismatched"] == {}
        assert {e["table"] for e in restored["progress"]} >= {"public.orders", "public.customers"}
        assert fingerprint(pg_cluster, target)[1] == fingerprint(pg_cluster, sample_db)[1]
        assert run_module("pg_restore", args, check_mode=True)["changed"] is False
        assert run_module("pg_restore", args)["changed"] is False
        pg_cluster.psql("DELETE FROM orders WHERE id <= 10", target)  # drifted: restore again
        assert run_module("pg_restore", args, check_mode=True)["changed"] is True
        again = run_module("pg_restore", {**args, "mode": "clean"})
        assert again.get("failed") is not True, (again.get("msg"), again.get("stderr"))
        assert again["changed"] is True
        assert again["verification"]["mismatched"] == {}
        # a migration since the restore (a column added, rows as they were): restored again (a
        # trial's rollback found the mark of an earlier restore of the same dump and restored
        # nothing, yet said so)
        assert run_module("pg_restore", args)["changed"] is False
        pg_cluster.psql("ALTER TABLE orders ADD COLUMN note text", target)
        migrated = run_module("pg_restore", args)
        assert migrated.get("failed") is not True, (migrated.get("msg"), migrated.get("stderr"))
        assert migrated["changed"] is True
        column = "SELECT count(*) FROM information_schema.columns WHERE column_name = 'note'"
        assert pg_cluster.psql(column, target) == "0"
    finally:
        pg_cluster.drop_database(target)


# Names are case-insensitive; `Production`, `PRODUCTION` and `prod` were restored unasked before.
@pytest.mark.parametrize("environment", ["production", "Production", "PRODUCTION", "prod", "Live"])
def test_production_refused_without_confirmation(
    pg_cluster: PgCluster, exact_backup: Path, environment: str
) -> None:
    args = {
        "db": db_arg(pg_cluster, "postgres"),
        "backup": str(exact_backup),
        "name": "sgt_prod_never",
        "environment": environment,
    }
    refused = run_module("pg_restore", args)
    assert refused["failed"] is True
    assert f"environment {environment!r} counts as production" in refused["msg"]
    assert "confirm_production" in refused["msg"]
    assert (
        pg_cluster.psql("SELECT count(*) FROM pg_database WHERE datname = 'sgt_prod_never'") == "0"
    )


@pytest.mark.slow
def test_sessions_ended_only_where_allowed(
    pg_cluster: PgCluster, sample_db: str, exact_backup: Path
) -> None:
    args = {"db": db_arg(pg_cluster, "postgres"), "backup": str(exact_backup), "name": sample_db}
    session = psycopg.connect(pg_cluster.dsn(sample_db), autocommit=True)
    try:
        busy = run_module("pg_restore", {**args, "force": True})
        assert busy["failed"] is True
        assert "other session" in busy["msg"]
        not_here = run_module(
            "pg_restore", {**args, "force": True, "terminate_sessions": True, "environment": "qa"}
        )
        assert not_here["failed"] is True
        done = run_module("pg_restore", {**args, "force": True, "terminate_sessions": True})
        assert done.get("failed") is not True, (done.get("msg"), done.get("stderr"))
        assert done["terminated"] == 1
    finally:
        session.close()


def test_missing_manifest_refused(pg_cluster: PgCluster, exact_backup: Path) -> None:
    Path(f"{exact_backup}.manifest.json").unlink()
    result = run_module(
        "pg_restore", {"db": db_arg(pg_cluster, "postgres"), "backup": str(exact_backup)}
    )
    assert result["failed"] is True
    assert "no manifest" in result["msg"]


def test_non_superuser_skips_extensions_it_cannot_create(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    role = unique_name("r_")
    dbname = unique_name("sgtest_")
    pg_cluster.psql(f'CREATE ROLE "{role}" LOGIN CREATEDB')
    pg_cluster.psql(f'CREATE DATABASE "{dbname}" OWNER "{role}"')
    pg_cluster.psql(f'SET ROLE "{role}"; {SAMPLE_SCHEMA}', dbname)
    pg_cluster.psql("CREATE EXTENSION pg_stat_statements", dbname)  # made by the superuser
    try:
        db = {**db_arg(pg_cluster, dbname), "user": role}
        backup = run_module(
            "pg_backup", {"db": db, "backup_dir": str(tmp_path), "name": "ext", "verify": "restore"}
        )
        assert backup.get("failed") is not True, (backup["msg"], backup.get("stderr"))
        assert backup["manifest"]["verification"]["skipped_extensions"] == ["pg_stat_statements"]
        restore_args = {"db": {**db, "name": "postgres"}, "backup": backup["path"], "mode": "clean"}
        restored = run_module("pg_restore", {**restore_args, "name": dbname, "force": True})
        assert restored.get("failed") is not True, (restored["msg"], restored.get("stderr"))
        assert restored["skipped_extensions"] == ["pg_stat_statements"]
        assert restored["verification"]["mismatched"] == {}
        installed = "SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'"
        assert pg_cluster.psql(installed, dbname) == "1"
    finally:
        pg_cluster.drop_database(dbname)
        pg_cluster.psql(f'DROP ROLE "{role}"')


@pytest.mark.parametrize("encoding", ["SQL_ASCII", "LATIN1", "UTF8"])
def test_databases_of_any_encoding_are_backed_up_and_restored(
    pg_cluster: PgCluster, tmp_path: Path, encoding: str
) -> None:
    # Issue 12 item 7: in a SQL_ASCII database psycopg 3 returned bytes for text and pg_backup
    # crashed with "a bytes-like object is required, not 'str'".
    source, restored_name = unique_name("sgenc_"), unique_name("sgenc_")
    pg_cluster.psql(
        f"CREATE DATABASE {source} ENCODING '{encoding}' LC_COLLATE 'C' LC_CTYPE 'C' "
        "TEMPLATE template0"
    )
    raw_byte = "E'caf\\351'" if encoding == "SQL_ASCII" else "'plain'"  # not UTF-8 at all
    with psycopg.connect(pg_cluster.dsn(source), autocommit=True, client_encoding="UTF8") as conn:
        conn.execute('CREATE TABLE "café" (id serial PRIMARY KEY, t text)')
        conn.execute(
            """INSERT INTO "café" (t) SELECT 'crème ' || g FROM generate_series(1, 50) g"""
        )
        conn.execute("CREATE TABLE raw (t text)")
        conn.execute(f"INSERT INTO raw VALUES ({raw_byte}), ('x')")  # noqa: S608 - test literal
    try:
        db = db_arg(pg_cluster, source)
        backup = run_module(
            "pg_backup", {"db": db, "backup_dir": str(tmp_path), "verify": "restore"}
        )
        assert backup.get("failed") is not True, (backup.get("msg"), backup.get("exception"))
        manifest = backup["manifest"]
        assert manifest["tables"]["public.café"]["rows"] == 50
        assert manifest["tables"]["public.raw"]["rows"] == 2
        assert manifest["locale"] == {"encoding": encoding, "lc_collate": "C", "lc_ctype": "C"}
        assert manifest["verification"]["rows"] == {"public.café": 50, "public.raw": 2}
        restored = run_module(
            "pg_restore",
            {"db": db_arg(pg_cluster, "postgres"), "backup": backup["path"],
             "name": restored_name},
        )  # fmt: skip
        assert restored.get("failed") is not True, (restored.get("msg"), restored.get("stderr"))
        assert restored["verification"]["mismatched"] == {}
        assert restored["verification"]["rows"]["public.café"] == 50
        query = "SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = %s"
        with psycopg.connect(pg_cluster.dsn("postgres")) as conn:
            assert conn.execute(query, (restored_name,)).fetchone() == (encoding,)
    finally:
        pg_cluster.drop_database(source)
        pg_cluster.drop_database(restored_name)


@pytest.fixture
def socket_in_tmp_container() -> Iterator[tuple[str, int]]:
    """A PostgreSQL container listening on port 5433 with its socket in /tmp (neither the
    default), published on a free port; the owner of `appdb` is a non-superuser with a
    password (scram-sha-256 over TCP). Removed afterwards."""
    name, port = unique_name("sgt-pgsock-"), free_port()
    script = (
        "initdb -D /tmp/d -A trust -U postgres >/dev/null && "
        "echo 'host all all all scram-sha-256' >> /tmp/d/pg_hba.conf && "
        "exec postgres -D /tmp/d -c port=5433 -c unix_socket_directories=/tmp "
        "-c listen_addresses='*'"
    )
    subprocess.run(
        ["docker", "run", "-d", "--name", name, "--user", "postgres",
         "-e", "PATH=/usr/lib/postgresql/15/bin:/usr/bin:/bin", "-p", f"127.0.0.1:{port}:5433",
         "stagegate/base:bookworm", "sh", "-c", script],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            proc = subprocess.run(
                ["docker", "exec", name, "psql", "-h", "/tmp", "-p", "5433", "-U", "postgres",
                 "-v", "ON_ERROR_STOP=1",
                 "-c", "CREATE ROLE owner LOGIN CREATEDB PASSWORD 'own-pw'",
                 "-c", "CREATE DATABASE appdb OWNER owner"],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if proc.returncode == 0:
                break
            assert time.monotonic() < deadline, proc.stderr
            time.sleep(0.3)
        with psycopg.connect(
            host="127.0.0.1", port=port, dbname="appdb", user="owner", password="own-pw"
        ) as conn:
            conn.execute(SAMPLE_SCHEMA)
        yield name, port
    finally:
        subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True, check=False)


def owner_db(container_port: tuple[str, int], **extra: str) -> dict[str, object]:
    """The `db` option for `appdb` of socket_in_tmp_container, as its owner."""
    container, port = container_port
    return {"host": "127.0.0.1", "port": port, "name": "appdb", "user": "owner",
            "password": "own-pw", "container": container, **extra}  # fmt: skip


@pytest.mark.docker
def test_container_socket_dir_port_and_non_superuser_owner(
    socket_in_tmp_container: tuple[str, int], tmp_path: Path
) -> None:
    # Issue 12 item 8: pg_dump through docker exec assumed the default socket directory.
    db = owner_db(socket_in_tmp_container)
    without = run_module("pg_backup", {"db": db, "backup_dir": str(tmp_path), "name": "x"})
    assert without["failed"] is True
    assert "db.socket_dir" in without["msg"]  # the cause and the option that fixes it
    assert "own-pw" not in json.dumps(without)
    db["socket_dir"] = "/tmp"  # the port in the container (5433) is the server's own setting
    backup = run_module(
        "pg_backup", {"db": db, "backup_dir": str(tmp_path), "name": "sock", "verify": "restore"}
    )
    assert backup.get("failed") is not True, (backup.get("msg"), backup.get("stderr"))
    assert backup["manifest"]["verification"]["rows"]["public.orders"] == 1000
    restored = run_module(
        "pg_restore", {"db": db, "backup": backup["path"], "mode": "clean", "force": True}
    )
    assert restored.get("failed") is not True, (restored.get("msg"), restored.get("stderr"))
    assert restored["verification"]["mismatched"] == {}
    assert "own-pw" not in json.dumps([backup, restored])


@pytest.mark.docker
def test_container_whose_socket_uses_peer_auth(
    socket_in_tmp_container: tuple[str, int], tmp_path: Path
) -> None:
    # Found as a new user: a server made with `initdb --auth-local=peer` refuses db.user on
    # its socket, and the hint said to set db.socket_dir, which was set already.
    container, _ = socket_in_tmp_container
    subprocess.run(
        ["docker", "exec", container, "sh", "-c",
         "sed -i 's/^local *all *all *trust/local all all peer/' /tmp/d/pg_hba.conf"
         " && pg_ctl -D /tmp/d reload"],
        check=True, capture_output=True,
    )  # fmt: skip
    db = owner_db(socket_in_tmp_container, socket_dir="/tmp")
    refused = run_module("pg_backup", {"db": db, "backup_dir": str(tmp_path), "name": "peer"})
    assert refused["failed"] is True
    assert "Peer authentication failed" in refused["msg"]
    assert "pg_hba.conf" in refused["msg"]
    assert "db.socket_dir to 127.0.0.1" in refused["msg"]
    assert "own-pw" not in json.dumps(refused)
    db["socket_dir"] = "127.0.0.1"  # TCP inside the container, the password from PGPASSWORD
    backup = run_module("pg_backup", {"db": db, "backup_dir": str(tmp_path), "name": "tcp"})
    assert backup.get("failed") is not True, (backup.get("msg"), backup.get("stderr"))
    assert backup["manifest"]["verified"] is True
    assert backup["manifest"]["tables"]["public.orders"]["rows"] == 1000


def copies_in(container: str) -> list[str]:
    """The temporary directories stagegate copies archives into inside `container`."""
    listed = subprocess.run(
        ["docker", "exec", container, "sh", "-c", "ls -d /tmp/stagegate-* 2>/dev/null || true"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return listed.stdout.split()


@pytest.mark.docker
def test_a_listing_in_a_container_streams_a_dump_file_and_a_restore_copies_it(
    socket_in_tmp_container: tuple[str, int], tmp_path: Path
) -> None:
    container, _ = socket_in_tmp_container
    db = owner_db(socket_in_tmp_container, socket_dir="/tmp")
    target = PgTarget.from_module_params({"db": db})
    tables = ["public.customers", "public.orders"]
    archives = {}
    for fmt in ("custom", "directory"):
        backup = run_module(
            "pg_backup", {"db": db, "backup_dir": str(tmp_path), "name": fmt, "format": fmt}
        )
        assert backup.get("failed") is not True, (backup.get("msg"), backup.get("stderr"))
        assert backup["manifest"]["verification"]["level"] == "list"
        archives[fmt] = backup["path"]
    # a dump file goes to pg_restore's stdin: nothing is copied into the container
    with staged_archive(target, archives["custom"]) as staged:
        assert verify_listing(staged, tables)["tables"] >= len(tables)
        assert copies_in(container) == []
    # one that pg_restore will restore from is copied at once, and listed from the copy
    with staged_archive(target, archives["custom"], for_restore=True) as staged:
        assert len(copies_in(container)) == 1
        assert verify_listing(staged, tables)["tables"] >= len(tables)
    # a directory archive cannot stream: it is copied once, and removed afterwards
    with staged_archive(target, archives["directory"]) as staged:
        assert verify_listing(staged, tables)["tables"] >= len(tables)
        assert len(copies_in(container)) == 1
    assert copies_in(container) == []
    # a damaged dump streamed is refused as a damaged dump copied was
    truncated = tmp_path / "truncated.dump"
    truncated.write_bytes(Path(archives["custom"]).read_bytes()[:200])
    with (
        staged_archive(target, str(truncated)) as staged,
        pytest.raises(PgError, match="pg_restore --list cannot read the archive"),
    ):
        verify_listing(staged, tables)


@pytest.mark.slow
def test_archives_stagegate_did_not_make_restore_by_their_listing(
    pg_cluster: PgCluster, sample_db: str, tmp_path: Path
) -> None:
    """pg_dump -Fc / -Ft / -Fd made by hand (no manifest) restore with without_manifest,
    verified by the tables their listing holds; a plain SQL dump is refused before anything."""
    pg_dump = str(pg_cluster.bindir / "pg_dump")
    conn = ["-h", pg_cluster.host, "-p", str(pg_cluster.port), "-U", pg_cluster.user]
    target = f"{sample_db}_foreign"
    try:
        for fmt, name in (("c", "by-hand.dump"), ("t", "by-hand.tar"), ("d", "by-hand.dir")):
            archive = tmp_path / name
            subprocess.run([pg_dump, *conn, f"-F{fmt}", "-f", str(archive), sample_db], check=True)
            args = {"db": db_arg(pg_cluster, "postgres"), "backup": str(archive), "name": target}
            assert run_module("pg_restore", args)["failed"] is True  # a manifest is needed ...
            args["without_manifest"] = True  # ... unless the listing is to stand in for it
            planned = run_module("pg_restore", args, check_mode=True)
            assert planned.get("failed") is not True, planned.get("msg")
            assert planned["archive"]["database"] == sample_db
            assert set(planned["archive"]["tables"]) == {"public.customers", "public.orders"}
            done = run_module("pg_restore", {**args, "force": True})
            assert done.get("failed") is not True, (done.get("msg"), done.get("stderr"))
            assert done["format"] == {"c": "custom", "t": "tar", "d": "directory"}[fmt]
            assert done["verification"]["against"] == "listing"
            assert done["verification"]["mismatched"] == {}
            assert done["verification"]["rows"] == {"public.customers": 200, "public.orders": 1000}
        plain = tmp_path / "plain.sql"
        subprocess.run([pg_dump, *conn, "-f", str(plain), sample_db], check=True)
        refused = run_module(
            "pg_restore",
            {"db": db_arg(pg_cluster, "postgres"), "backup": str(plain), "name": "sgt_never",
             "without_manifest": True},
        )  # fmt: skip
        assert refused["failed"] is True
        assert f"{plain} is a plain SQL dump" in refused["msg"]
        assert "pg_dump -Fc" in refused["msg"]
        never = "SELECT count(*) FROM pg_database WHERE datname = 'sgt_never'"
        assert pg_cluster.psql(never) == "0"
    finally:
        pg_cluster.drop_database(target)
