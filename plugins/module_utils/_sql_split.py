# Copyright: stagegate developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Split a PostgreSQL migration file into statements the way psql does: with a lexer.

The rules are those of psql's own scanner (PostgreSQL's src/fe_utils/psqlscan.l), which is
what runs a file given to `psql -f`: a `;` ends a statement only outside quotes ('..', E'..'
with backslash escapes, "..", dollar quotes `$tag$..$tag$` whose tag may hold digits),
outside comments (`--`, nested `/* */`), outside parentheses, and outside the `BEGIN ..
END` body of a `CREATE [OR REPLACE] FUNCTION|PROCEDURE` (SQL-standard `BEGIN ATOMIC`, with
`CASE .. END` inside it). `COPY .. FROM STDIN` takes its data from the lines that follow, up
to a line `\\.`, as in a pg_dump script. psql meta-commands (a backslash outside quotes) are
not SQL and are refused. Standard library only: this runs on the deploy host.

Each statement keeps its 1-based line in the file and its words (keywords and bare
identifiers, upper-cased, with their parenthesis depth), from which `transaction_control` and
`needs_autocommit` classify it without ever looking inside a string or a comment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# One token at a time, by psqlscan.l's rules. Strings are matched whole (unrolled loops, no
# backtracking); an opening quote that does not match its whole form is never closed.
# ident_start [A-Za-z\200-\377_], ident_cont adds [0-9$]; a dollar-quote tag has no `$`.
_LETTER = "A-Za-z_\u0080-\U0010ffff"
_TOKEN = re.compile(
    rf"""
    (?P<space>\s+)
    | (?P<line_comment>--[^\n]*)
    | (?P<block_comment>/\*)
    | (?P<estring>[eE]'[^'\\]*(?:(?:\\.|'')[^'\\]*)*')
    | (?P<string>'[^']*(?:''[^']*)*')
    | (?P<quoted>"[^"]*(?:""[^"]*)*")
    | (?P<open>[eE]?['"])
    | (?P<dollar>\$(?:[{_LETTER}][{_LETTER}0-9]*)?\$)
    | (?P<param>\$[0-9]+)
    | (?P<word>[{_LETTER}][{_LETTER}0-9$]*)
    | (?P<number>[0-9][0-9A-Za-z_.]*)
    | (?P<semicolon>;)
    | (?P<lparen>\()
    | (?P<rparen>\))
    | (?P<backslash>\\)
    | (?P<other>[^\s;'"$\\(){_LETTER}0-9/-]+|.)
    """,
    re.VERBOSE | re.DOTALL,
)
_COPY_END = re.compile(r"^\\\.\r?$", re.MULTILINE)

_ROUTINE_WORDS = ("CREATE", "FUNCTION", "PROCEDURE", "OR", "REPLACE")
Word = tuple[int, str]  # (parenthesis depth, upper-cased word)


class SqlSplitError(ValueError):
    """The file cannot be split: unterminated quote/comment, a psql meta-command, bad COPY."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(f"line {line}: {message}")
        self.message = message
        self.line = line


@dataclass
class Statement:
    """One statement as sent to the server (without its `;`), and where it is in the file."""

    text: str
    line: int
    words: list[Word] = field(default_factory=list)
    copy_data: str | None = None
    data_line: int | None = None

    @property
    def keywords(self) -> list[str]:
        """The words outside parentheses, upper-cased: `CREATE INDEX CONCURRENTLY I ON T`."""
        return [word for depth, word in self.words if depth == 0]

    def head(self, count: int = 3) -> str:
        """The leading keywords, for messages (`CREATE INDEX CONCURRENTLY`)."""
        return " ".join(self.keywords[:count])


@dataclass
class SqlFile:
    statements: list[Statement]
    leading_comments: list[str]


@dataclass
class _State:
    """psqlscan.l's per-statement state."""

    start: int = -1
    paren_depth: int = 0
    begin_depth: int = 0
    identifiers: list[str] = field(default_factory=list)
    identifier_count: int = 0
    words: list[Word] = field(default_factory=list)


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.statements: list[Statement] = []
        self.leading_comments: list[str] = []
        self.state = _State()
        self._line = (0, 1)  # (offset, its line): offsets mostly grow, so count on from there

    def line_at(self, offset: int) -> int:
        known, line = self._line if offset >= self._line[0] else (0, 1)
        line += self.text.count("\n", known, offset)
        self._line = (offset, line)
        return line

    def fail(self, message: str, offset: int) -> SqlSplitError:
        return SqlSplitError(message, self.line_at(offset))

    def run(self) -> SqlFile:
        text = self.text
        while self.i < len(text):
            match = _TOKEN.match(text, self.i)
            if match is None:  # pragma: no cover - `other` matches any character
                raise self.fail("cannot read this", self.i)
            kind = match.lastgroup or "other"
            if kind == "space":
                self.i = match.end()
            elif kind == "line_comment":
                self._comment(match.end())
            elif kind == "block_comment":
                self._comment(self._block_comment_end())
            elif kind == "semicolon":
                self._semicolon()
            else:
                self._begin_token()
                self._token(kind, match)
        self._end_statement(len(text))
        return SqlFile(self.statements, self.leading_comments)

    def _comment(self, end: int) -> None:
        if not self.statements and self.state.start < 0:
            self.leading_comments.append(self.text[self.i : end])
        self.i = end

    def _begin_token(self) -> None:
        if self.state.start < 0:
            self.state.start = self.i

    def _token(self, kind: str, match: re.Match[str]) -> None:
        start, end = match.span()
        if kind == "open":
            what = "quoted identifier" if match.group().endswith('"') else "string"
            raise self.fail(f"{what} starting here is never closed", start)
        if kind == "dollar":
            found = self.text.find(match.group(), end)
            if found < 0:
                raise self.fail(f"dollar quote {match.group()} is never closed", start)
            end = found + len(match.group())
        elif kind == "backslash":
            command = re.match(r"\\[A-Za-z!?]*", self.text[start : start + 40])
            raise self.fail(
                f"psql meta-command {command.group() if command else chr(92)!r} is not SQL; "
                "migration files are run statement by statement by stagegate, not by psql "
                "(no \\set, \\i, \\copy, \\connect or variables)",
                start,
            )
        elif kind == "lparen":
            self.state.paren_depth += 1
        elif kind == "rparen":
            self.state.paren_depth = max(0, self.state.paren_depth - 1)
        elif kind == "word":
            self._word(match.group())
        self.i = end

    def _word(self, word: str) -> None:
        upper = word.upper()
        state = self.state
        state.words.append((state.paren_depth, upper))
        # psqlscan.l: track BEGIN .. END inside CREATE [OR REPLACE] FUNCTION|PROCEDURE
        if state.identifier_count == 0:
            state.identifiers = ["", "", "", ""]
        if upper in _ROUTINE_WORDS and state.identifier_count < 4:
            state.identifiers[state.identifier_count] = upper[0]
        state.identifier_count += 1
        ids = state.identifiers
        in_routine = ids[0] == "C" and (
            ids[1] in ("F", "P") or (ids[1] == "O" and ids[2] == "R" and ids[3] in ("F", "P"))
        )
        if in_routine and state.paren_depth == 0:
            # CASE also ends with END: counted only inside a BEGIN, as psql does
            if upper == "BEGIN" or (upper == "CASE" and state.begin_depth >= 1):
                state.begin_depth += 1
            elif upper == "END" and state.begin_depth > 0:
                state.begin_depth -= 1

    def _block_comment_end(self) -> int:
        text, i, depth = self.text, self.i, 0
        while i < len(text):
            if text.startswith("/*", i):
                depth += 1
                i += 2
            elif text.startswith("*/", i):
                depth -= 1
                i += 2
                if depth == 0:
                    return i
            else:
                i += 1
        raise self.fail("/* comment starting here is never closed", self.i)

    def _semicolon(self) -> None:
        state = self.state
        if state.paren_depth > 0 or state.begin_depth > 0:
            self._begin_token()
            self.i += 1
            return
        self._end_statement(self.i)
        self.i += 1

    def _end_statement(self, end: int) -> None:
        state = self.state
        if state.start >= 0:
            statement = Statement(
                self.text[state.start : end].rstrip(), self.line_at(state.start), state.words
            )
            self.statements.append(statement)
            if _copy_direction(statement) == "FROM STDIN":
                self._copy_data(statement, end)
        self.state = _State()

    def _copy_data(self, statement: Statement, semicolon: int) -> None:
        """Data lines after `COPY .. FROM STDIN;` up to a line `\\.` (as in a pg_dump script)."""
        text = self.text
        line_end = _find_end(text, "\n", semicolon)
        rest = text[semicolon + 1 : line_end].strip()
        if rest and not rest.startswith("--"):
            raise self.fail(
                "COPY .. FROM STDIN: its data starts on the next line; nothing may follow "
                "the `;` on the same line",
                semicolon,
            )
        match = _COPY_END.search(text, line_end)
        if not match:
            raise self.fail(
                f"{statement.head()}: no line `\\.` ends its data (COPY .. FROM STDIN reads "
                "the lines that follow it up to a line holding only `\\.`)",
                semicolon,
            )
        statement.copy_data = text[line_end : match.start()]
        statement.data_line = self.line_at(line_end)
        self.i = _find_end(text, "\n", match.start()) - 1  # the `;` step adds one


def _find_end(text: str, terminator: str, after: int) -> int:
    found = text.find(terminator, after)
    return len(text) if found < 0 else found + len(terminator)


def _copy_direction(statement: Statement) -> str | None:
    """`FROM STDIN` / `TO STDOUT` for a COPY that talks to the client, else None."""
    words = statement.keywords
    if not words or words[0] != "COPY":
        return None
    for index in range(1, len(words) - 1):
        pair = f"{words[index]} {words[index + 1]}"
        if pair in ("FROM STDIN", "TO STDOUT"):
            return pair
    return None


def split_sql(text: str) -> SqlFile:
    """Statements of a SQL file (psql's rules), and the comments before the first one.

    Raises SqlSplitError (with the line) for an unterminated quote or comment, a psql
    meta-command, or COPY .. FROM STDIN data without its `\\.` line."""
    return _Lexer(text).run()


def split_statements(text: str) -> list[Statement]:
    return split_sql(text).statements


# -- classification -----------------------------------------------------------------

_PLAIN_BEGIN = (["BEGIN"], ["BEGIN", "WORK"], ["BEGIN", "TRANSACTION"], ["START", "TRANSACTION"])
_PLAIN_COMMIT = (
    ["COMMIT"],
    ["COMMIT", "WORK"],
    ["COMMIT", "TRANSACTION"],
    ["END"],
    ["END", "WORK"],
    ["END", "TRANSACTION"],
)


def transaction_control(statement: Statement) -> str | None:
    """`begin`, `commit` or `rollback` when the statement opens or ends a transaction block
    itself (BEGIN, START TRANSACTION, COMMIT, END, ROLLBACK, ABORT, PREPARE TRANSACTION,
    COMMIT/ROLLBACK PREPARED); None otherwise. SAVEPOINT, RELEASE and ROLLBACK TO work inside
    a transaction and are not transaction control here."""
    words = statement.keywords
    first = words[0] if words else ""
    second = words[1] if len(words) > 1 else ""
    if first == "BEGIN" or (first == "START" and second == "TRANSACTION"):
        return "begin"
    if first in ("COMMIT", "END") or (first == "PREPARE" and second == "TRANSACTION"):
        return "commit"
    if first in ("ROLLBACK", "ABORT") and second != "TO":
        return "rollback"
    return None


def is_plain_begin(statement: Statement) -> bool:
    return statement.keywords in _PLAIN_BEGIN


def is_plain_commit(statement: Statement) -> bool:
    return statement.keywords in _PLAIN_COMMIT


def copy_direction(statement: Statement) -> str | None:
    return _copy_direction(statement)


def needs_autocommit(statement: Statement) -> str | None:
    """Why the statement cannot run inside a transaction block (PostgreSQL refuses it with
    SQLSTATE 25001), or None. Only the statement's own words count: a string or comment that
    mentions VACUUM or CONCURRENTLY does not."""
    words = statement.keywords
    first = words[0] if words else ""
    second = words[1] if len(words) > 1 else ""
    if first == "VACUUM":
        return "VACUUM"
    if first in ("CREATE", "DROP") and second in ("DATABASE", "TABLESPACE"):
        return f"{first} {second}"
    if first == "ALTER" and second == "SYSTEM":
        return "ALTER SYSTEM"
    if first == "REINDEX" and second in ("SCHEMA", "DATABASE", "SYSTEM"):
        return f"REINDEX {second}"
    # REINDEX (CONCURRENTLY) TABLE t has it among its options, in parentheses
    scope = [word for _, word in statement.words] if first == "REINDEX" else words
    if first in ("CREATE", "DROP", "ALTER", "REINDEX") and "CONCURRENTLY" in scope:
        at = scope.index("CONCURRENTLY")
        return " ".join(scope[: at + 1]) if at < 4 else f"{first} .. CONCURRENTLY"
    return None
