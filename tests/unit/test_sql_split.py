"""The migration-file lexer (plugins/module_utils/_sql_split.py): pure Python, no server.

Each case is a shape real migration files have; the corpus in tests/fixtures/migrations_corpus
runs the same shapes on a real server (tests/test_pg_migrate.py, tests/test_pg_dryrun.py).
"""

from __future__ import annotations

import pytest
from ansible_collections.stagegate.release.plugins.module_utils._sql_split import (
    SqlSplitError,
    Statement,
    copy_direction,
    is_plain_begin,
    is_plain_commit,
    needs_autocommit,
    split_sql,
    split_statements,
    transaction_control,
)


def texts(sql: str) -> list[str]:
    return [s.text for s in split_statements(sql)]


def one(sql: str) -> Statement:
    statements = split_statements(sql)
    assert len(statements) == 1, [s.text for s in statements]
    return statements[0]


def test_plain_statements_lines_and_no_empty_ones() -> None:
    sql = "-- header\n\nCREATE TABLE a (id int);\n;;\n  INSERT INTO a\n  VALUES (1);\nSELECT 1"
    statements = split_statements(sql)
    assert [s.text for s in statements] == [
        "CREATE TABLE a (id int)",
        "INSERT INTO a\n  VALUES (1)",
        "SELECT 1",
    ]
    assert [s.line for s in statements] == [3, 5, 7]


@pytest.mark.parametrize(
    "tag",
    ["$$", "$fn1$", "$body_2$", "$_$", "$Ä1$"],
)
def test_dollar_quotes_with_any_valid_tag(tag: str) -> None:
    sql = (
        f"CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS {tag}\n"
        f"BEGIN PERFORM 1; RETURN 2; END;\n{tag};\nSELECT f();"
    )
    assert texts(sql) == [sql.split(";\nSELECT", maxsplit=1)[0], "SELECT f()"]


def test_nested_dollar_quotes_end_only_at_their_own_tag() -> None:
    sql = (
        "DO $outer$\nBEGIN\n  EXECUTE $inner$ CREATE TABLE t (note text DEFAULT 'a;b') $inner$;\n"
        "  EXECUTE $$ SELECT ';' $$;\nEND\n$outer$;\nSELECT 2;"
    )
    statements = split_statements(sql)
    assert len(statements) == 2
    assert statements[0].text.endswith("$outer$")
    assert statements[1].line == 7


def test_dollar_sign_inside_identifier_and_params_do_not_open_quotes() -> None:
    # ident_cont includes $ (a$b$ is one identifier), $1 is a parameter
    assert texts("SELECT a$b$ FROM t; PREPARE p AS SELECT $1; SELECT 3") == [
        "SELECT a$b$ FROM t",
        "PREPARE p AS SELECT $1",
        "SELECT 3",
    ]


def test_begin_atomic_body_is_one_statement_with_case_end_inside() -> None:
    sql = (
        "CREATE OR REPLACE FUNCTION grade(score int) RETURNS text LANGUAGE sql\n"
        "BEGIN ATOMIC\n"
        "  SELECT CASE WHEN score > 90 THEN 'A' ELSE 'B' END;\n"
        "  SELECT 'unused';\n"
        "END;\n"
        "CREATE PROCEDURE bump() LANGUAGE sql BEGIN ATOMIC UPDATE t SET n = n + 1; END;\n"
        "SELECT grade(95);"
    )
    statements = split_statements(sql)
    assert [s.line for s in statements] == [1, 6, 7]
    assert statements[0].text.endswith("END")
    assert "SELECT 'unused';" in statements[0].text
    assert statements[1].text.endswith("BEGIN ATOMIC UPDATE t SET n = n + 1; END")


def test_transaction_begin_is_not_a_routine_body() -> None:
    assert texts("BEGIN; CREATE TABLE a (id int); COMMIT;") == [
        "BEGIN",
        "CREATE TABLE a (id int)",
        "COMMIT",
    ]


def test_strings_standard_escape_and_quoted_identifiers() -> None:
    sql = (
        "INSERT INTO t VALUES ('it''s; fine', E'back\\\\slash \\' ; quote', "
        "U&'d\\0061t;a', B'101');\n"
        'CREATE TABLE "odd;""name" (id int);\n'
        "SELECT 'a\\'; SELECT 'b';"  # standard strings: the backslash is a character
    )
    assert texts(sql) == [
        "INSERT INTO t VALUES ('it''s; fine', E'back\\\\slash \\' ; quote', "
        "U&'d\\0061t;a', B'101')",
        'CREATE TABLE "odd;""name" (id int)',
        "SELECT 'a\\'",
        "SELECT 'b'",
    ]


def test_e_prefix_only_at_a_token_start() -> None:
    # `type'..'` is an identifier then a standard string: the backslash does not escape
    assert texts("SELECT date'2024-01-01', type'x\\'; SELECT 1") == [
        "SELECT date'2024-01-01', type'x\\'",
        "SELECT 1",
    ]


def test_comments_nested_and_with_quotes_or_semicolons() -> None:
    sql = (
        "/* outer /* inner; 'quote */ still comment; */\n"
        "CREATE TABLE a (id int); -- trailing; it's a comment\n"
        "-- a whole line; with $$ and '\n"
        "SELECT 1 /* ; */ + 1;"
    )
    parsed = split_sql(sql)
    assert [s.text for s in parsed.statements] == [
        "CREATE TABLE a (id int)",
        "SELECT 1 /* ; */ + 1",
    ]
    assert parsed.leading_comments == ["/* outer /* inner; 'quote */ still comment; */"]


def test_parentheses_keep_semicolons_inside_rule_actions() -> None:
    sql = (
        "CREATE RULE log AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); "
        "INSERT INTO b VALUES (2));\nSELECT 1;"
    )
    assert len(texts(sql)) == 2


def test_copy_from_stdin_takes_the_data_lines() -> None:
    sql = (
        "CREATE TABLE t (a int, b text);\n"
        "COPY t (a, b) FROM stdin;\n"
        "1\tsemi;colon\n"
        "2\t-- not a comment\n"
        "3\t\\N\n"
        "\\.\n"
        "SELECT count(*) FROM t;\n"
    )
    statements = split_statements(sql)
    assert [s.text for s in statements] == [
        "CREATE TABLE t (a int, b text)",
        "COPY t (a, b) FROM stdin",
        "SELECT count(*) FROM t",
    ]
    copy = statements[1]
    assert copy_direction(copy) == "FROM STDIN"
    assert copy.copy_data == "1\tsemi;colon\n2\t-- not a comment\n3\t\\N\n"
    assert copy.data_line == 3
    assert statements[2].line == 7


def test_copy_csv_from_stdin_and_copy_from_a_server_file() -> None:
    statements = split_statements(
        "COPY t FROM STDIN WITH (FORMAT csv, HEADER true);\na,b\n1,x\n\\.\n"
        "COPY t FROM '/srv/data.csv' WITH (FORMAT csv);"
    )
    assert statements[0].copy_data == "a,b\n1,x\n"
    assert statements[1].copy_data is None
    assert copy_direction(statements[1]) is None


@pytest.mark.parametrize(
    ("sql", "line", "fragment"),
    [
        ("SELECT 1;\nCOPY t FROM stdin;\n1\n2\n", 2, "no line `\\.`"),
        ("COPY t FROM stdin; SELECT 1;\n1\n\\.\n", 1, "nothing may follow"),
        ("SELECT 1;\n\\set ON_ERROR_STOP on\n", 2, "psql meta-command '\\\\set'"),
        ("SELECT 'never closed;\n", 1, "string starting here is never closed"),
        ("SELECT 1;\nCREATE FUNCTION f() AS $fn1$ SELECT 1; $fn$;", 2, "$fn1$ is never closed"),
        ("SELECT 1; /* open /* nested */\n", 1, "comment starting here is never closed"),
        ('SELECT "never closed', 1, "quoted identifier"),
    ],
)
def test_refused_with_the_line(sql: str, line: int, fragment: str) -> None:
    with pytest.raises(SqlSplitError) as caught:
        split_sql(sql)
    assert caught.value.line == line
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("CREATE INDEX CONCURRENTLY i ON t (a)", "CREATE INDEX CONCURRENTLY"),
        (
            "create unique index concurrently if not exists i on t (a)",
            "CREATE UNIQUE INDEX CONCURRENTLY",
        ),
        ("DROP INDEX CONCURRENTLY IF EXISTS i", "DROP INDEX CONCURRENTLY"),
        ("REINDEX (VERBOSE, CONCURRENTLY) TABLE t", "REINDEX VERBOSE CONCURRENTLY"),
        ("REINDEX DATABASE app", "REINDEX DATABASE"),
        ("VACUUM (ANALYZE) t", "VACUUM"),
        ("vacuum", "VACUUM"),
        ("ALTER TABLE m DETACH PARTITION m_2024 CONCURRENTLY", "ALTER .. CONCURRENTLY"),
        ("ALTER SYSTEM SET work_mem = '64MB'", "ALTER SYSTEM"),
        ("CREATE DATABASE other", "CREATE DATABASE"),
    ],
)
def test_needs_autocommit(sql: str, reason: str) -> None:
    assert needs_autocommit(one(sql)) == reason


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO notes VALUES ('run VACUUM after the import')",
        "COMMENT ON TABLE t IS 'rebuild with CREATE INDEX CONCURRENTLY on production'",
        "INSERT INTO t SELECT $$VACUUM FULL$$",
        "CREATE INDEX i ON t (a) -- not CONCURRENTLY: the table is new",
        "REFRESH MATERIALIZED VIEW CONCURRENTLY mv",  # allowed in a transaction
        'SELECT "vacuum" FROM t',
        "ANALYZE t",
    ],
)
def test_mentions_are_not_statements(sql: str) -> None:
    assert needs_autocommit(one(sql)) is None


@pytest.mark.parametrize(
    ("sql", "control"),
    [
        ("BEGIN", "begin"),
        ("begin isolation level serializable", "begin"),
        ("START TRANSACTION", "begin"),
        ("COMMIT", "commit"),
        ("END", "commit"),
        ("PREPARE TRANSACTION 'x'", "commit"),
        ("ROLLBACK", "rollback"),
        ("ABORT", "rollback"),
        ("ROLLBACK TO SAVEPOINT s", None),
        ("SAVEPOINT s", None),
        ("PREPARE q AS SELECT 1", None),
        ("SELECT 'COMMIT'", None),
        ("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END", None),
    ],
)
def test_transaction_control(sql: str, control: str | None) -> None:
    assert transaction_control(one(sql)) == control


def test_plain_begin_and_commit() -> None:
    assert is_plain_begin(one("begin work"))
    assert is_plain_begin(one("START TRANSACTION"))
    assert not is_plain_begin(one("BEGIN ISOLATION LEVEL SERIALIZABLE"))
    assert is_plain_commit(one("END"))
    assert is_plain_commit(one("commit transaction"))
    assert not is_plain_commit(one("COMMIT AND CHAIN"))


def test_statement_positions_map_to_file_lines() -> None:
    sql = "-- 1\n/* 2\n 3 */ SELECT\n  1;\n\n\nUPDATE t\n SET x = 1"
    statements = split_statements(sql)
    assert [(s.line, s.text) for s in statements] == [
        (3, "SELECT\n  1"),
        (7, "UPDATE t\n SET x = 1"),
    ]


def test_lines_stay_right_over_many_statements() -> None:
    """Lines are counted on from the last statement (a long seed file stays linear)."""
    sql = "".join(f"INSERT INTO t VALUES ({n}, 'a;\nb');\n" for n in range(2000))  # noqa: S608
    statements = split_statements(sql)
    assert [s.line for s in statements[:3]] == [1, 3, 5]
    assert statements[-1].line == 3999
    with pytest.raises(SqlSplitError) as caught:
        split_sql(sql + "SELECT 1;\nSELECT 'never closed")
    assert caught.value.line == 4002
