#!/bin/sh
# First start: initdb into the volume, then create the application role and database.
# Every start: run the server in the foreground as PID 1 (it handles SIGTERM itself).
set -eu
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
: "${POSTGRES_DB:=app}" "${POSTGRES_USER:=app}"
export POSTGRES_DB POSTGRES_USER

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  echo "sandbox-postgres: initialising $PGDATA"
  # A sandbox: no fsync (start-up and tests on busy disks are much faster; a crash loses data).
  initdb -D "$PGDATA" -U postgres -E UTF8 --auth-local=trust --auth-host=scram-sha-256 \
    --no-sync >/dev/null
  cat >>"$PGDATA/postgresql.auto.conf" <<CONF
listen_addresses = '*'
fsync = off
shared_preload_libraries = 'pg_stat_statements'
log_line_prefix = '%m [%p] %q%u@%d '
CONF
  # initdb only admits 127.0.0.1 and ::1 over TCP; the app containers come from the network.
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  # \getenv keeps the password out of the process list and out of the SQL text.
  psql -X -q -v ON_ERROR_STOP=1 -U postgres -d postgres <<'SQL'
\getenv app_password POSTGRES_PASSWORD
\getenv app_db POSTGRES_DB
\getenv app_user POSTGRES_USER
-- In template1, so the app database and any database the app role recreates later (a
-- restore) have it: creating pg_stat_statements needs a superuser, which the app role is not.
\connect template1
CREATE EXTENSION pg_stat_statements;
\connect postgres
CREATE ROLE :"app_user" LOGIN CREATEDB PASSWORD :'app_password';
CREATE DATABASE :"app_db" OWNER :"app_user";
SQL
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "sandbox-postgres: database $POSTGRES_DB ready for user $POSTGRES_USER"
fi
exec postgres -D "$PGDATA"
