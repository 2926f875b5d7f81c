"""The sandbox application: a small HTTP API and a background worker (stdlib + psycopg2 + redis)."""
