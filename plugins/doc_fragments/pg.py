# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options shared by the stagegate.release.pg_* modules."""

from __future__ import annotations


class ModuleDocFragment:
    # The option `db` alone is fragment stagegate.release.pg.db, for a module that reads a
    # database only now and then (rollback_plan); DOCUMENTATION has it with the others.
    _DB = r"""
  db:
    description:
      - The database to work on, in the shape of the C(stagegate_db) inventory variable.
      - SQL goes through psycopg 3 to O(db.host):O(db.port) (the published port when the
        server runs in a container); client tools run on the host, or in O(db.container).
    type: dict
    suboptions:
      host:
        description: Server host name or address.
        type: str
        default: 127.0.0.1
      port:
        description: Server port.
        type: int
        default: 5432
      name:
        description: Database name.
        type: str
        default: postgres
      user:
        description: Role to connect as.
        type: str
        default: postgres
      password:
        description:
          - Password; passed to libpq as a keyword and to client tools as E(PGPASSWORD),
            never on a command line, in a message or in a result.
        type: str
      container:
        description:
          - Container name or compose service name of the database server. When set,
            C(pg_dump)/C(pg_restore) run inside it through C(docker exec) (over its local
            socket) so the tool version matches the server.
        type: str
      socket_dir:
        description:
          - With O(db.container), the directory of the server's Unix socket inside the
            container (its C(unix_socket_directories), e.g. C(/tmp)). Default is libpq's own
            (C(/var/run/postgresql) on Debian images).
        type: str
      container_port:
        description:
          - With O(db.container), the port the server listens on inside the container (the
            socket is named after it). Default is the server's own C(port) setting, read through
            the SQL connection, so a published port that differs needs nothing here.
        type: int
      connect_timeout:
        description: Seconds to wait for a connection.
        type: int
        default: 10
"""
    DB = "options:\n" + _DB
    DOCUMENTATION = (
        "options:\n"
        + _DB
        + r"""
  dsn:
    description:
      - A libpq connection string or URI instead of O(db) (mutually exclusive with it). A
        password in it is stripped from every message (failures name the DSN as
        C(host=.. port=.. dbname=.. user=..)).
    type: str
  container:
    description: Overrides O(db.container).
    type: str
  compose_project:
    description:
      - Compose project of O(db.container) when it names a compose service, so the right
        container is found while several projects run the same service name.
    type: str
  bin_dir:
    description:
      - Directory of the host's client tools. Default is the newest
        C(/usr/lib/postgresql/*/bin), else C(PATH).
    type: path
requirements:
  - psycopg >= 3.1 (the C(psycopg) Python package) on the target
  - PostgreSQL client tools on the target, or O(db.container)
seealso:
  - name: libpq connection strings
    description: Keywords and URIs accepted by O(dsn).
    link: https://www.postgresql.org/docs/15/libpq-connect.html#LIBPQ-CONNSTRING
"""
    )
