# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Redaction: the one implementation, for checks, modules and every report writer.

Standard library only, so modules on the target host mask exactly like the controller.
A `Redactor` knows secret values (passwords, tokens captured by a flow, env values) and
masks them in any text or structure; besides, whatever it is given is masked where it
looks secret without being known:

- values under secret-looking names (Authorization, password, token, api key, ...);
- credentials inline in text: `user:***@` in URLs and DSNs, `password=***` (libpq),
  `?access_token=***` (secret-named query parameters), `--password ***` and
  `--password=***` (argv), `"secret": "***"` (JSON text), after `Bearer`/`Basic`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"

# Words that make a name secret; a name is split into words at every non-alphanumeric
# character and at camelCase humps ("X-Api-Key" -> x, api, key; "dbPassword" -> db, password).
# Not "pass": bands are {pass: ..., warn: ...} and a gate type is pass_rate.
_SECRET_WORDS = frozenset(
    {
        "auth",
        "authorization",
        "cookie",
        "cookies",
        "credential",
        "credentials",
        "dsn",
        "passphrase",
        "passwd",
        "password",
        "pwd",
        "secret",
        "secrets",
        "token",
        "tokens",
        "apikey",
        "privatekey",
    }
)
# ... also glued to a prefix: PGPASSWORD, csrftoken, clientsecret
_SECRET_SUFFIXES = ("password", "passwd", "secret", "token")
_SECRET_PAIRS = frozenset({("api", "key"), ("private", "key"), ("access", "key")})
_WORD_RE = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")

_MIN_SECRET_LEN = 4  # shorter values would mask ordinary words
_NOT_SECRETS = frozenset({"true", "false", "yes", "no", "on", "off", "none", "null"})


def _words(name: str) -> list[str]:
    return [word.lower() for word in _WORD_RE.findall(name)]


def is_secret_name(name: str) -> bool:
    """True for keys, header, variable, query parameter and flag names whose values are
    never shown: `password`, `DB_PASS`, `X-Api-Key`, `access_token`, `--password`, ..."""
    words = _words(str(name))
    if any(word in _SECRET_WORDS or word.endswith(_SECRET_SUFFIXES) for word in words):
        return True
    return any((words[i], words[i + 1]) in _SECRET_PAIRS for i in range(len(words) - 1))


def _masked_if_secret(match: re.Match[str]) -> str:
    value = match["value"]
    if not is_secret_name(match["name"]) or value.strip("'\"") in ("", MASK):
        return match[0]
    quote = value[0] if value[:1] in ("'", '"') else ""
    return match["head"] + quote + MASK + quote


# Patterns that find credentials in text without knowing them. Each keeps `head`.
_INLINE_PATTERNS: tuple[tuple[re.Pattern[str], Any], ...] = (
    # scheme://user:secret@host
    (re.compile(r"(?P<keep>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+(?=@)", re.I), r"\g<keep>" + MASK),
    # Bearer/Basic/Token credentials
    (
        re.compile(r"(?P<keep>\b(bearer|basic|token)\s+)[A-Za-z0-9._~+/=-]{6,}", re.I),
        r"\g<keep>" + MASK,
    ),
    # URL query and form parameters: ?access_token=..., &api_key=...
    (
        re.compile(
            r"(?P<head>[?&;](?P<name>[A-Za-z0-9_.~%-]+)=)(?P<value>(?:[^&#\s'\"<>:]|:(?!\s|$))*)"
        ),
        _masked_if_secret,
    ),
    # argv flags: --password=x, --password x, -password x
    (
        re.compile(
            r"(?P<head>(?<![\w-])--?(?P<name>[A-Za-z][\w-]*)(=|\s+))"
            r"(?P<value>'[^']*'|\"[^\"]*\"|[^\s'\"-][^\s'\"]*)"
        ),
        _masked_if_secret,
    ),
    # JSON text: "password": "x"
    (
        re.compile(r"(?P<head>\"(?P<name>[^\"]{1,64})\"\s*:\s*)(?P<value>\"(?:[^\"\\]|\\.)*\")"),
        _masked_if_secret,
    ),
    # assignments: PASSWORD=x, password = 'x' (libpq conninfo, env lines)
    (
        re.compile(
            r"(?P<head>(?<![\w?&;.-])(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*)"
            r"(?P<value>'[^']*'|\"[^\"]*\"|[^\s&;,'\"]+)"
        ),
        _masked_if_secret,
    ),
)


def redact_text(text: str) -> str:
    """Inline credentials masked (the patterns above), without any known value."""
    for pattern, repl in _INLINE_PATTERNS:
        text = pattern.sub(repl, text)
    return text


def redact_argv(argv: Iterable[Any]) -> list[str]:
    """A command line as it may be shown: the value after a secret-named flag
    (`--password X`, `-token X`), `--password=X` and `PASSWORD=X` masked."""
    shown: list[str] = []
    hide_next = False
    for raw in argv:
        arg = str(raw)
        if hide_next and not arg.startswith("-"):
            shown.append(MASK)
            hide_next = False
            continue
        hide_next = False
        flag, sep, _ = arg.partition("=")
        if flag.startswith("-") and is_secret_name(flag):
            shown.append(f"{flag}={MASK}" if sep else arg)
            hide_next = not sep
        else:
            shown.append(redact_text(arg))
    return shown


def argv_secrets(argv: Iterable[Any]) -> list[str]:
    """The values a command line passes after secret-named flags (to mask them elsewhere,
    e.g. when the command echoes them)."""
    args = [str(a) for a in argv]
    found = []
    for index, arg in enumerate(args):
        flag, sep, value = arg.partition("=")
        if not (flag.startswith("-") or sep) or not is_secret_name(flag):
            continue
        if sep:
            found.append(value)
        elif index + 1 < len(args) and not args[index + 1].startswith("-"):
            found.append(args[index + 1])
    return found


class Redactor:
    """Masks known secret values and whatever looks secret."""

    def __init__(self, secrets: Iterable[Any] | None = None) -> None:
        self._secrets: set[str] = set()
        for value in secrets or []:
            self.add(value)

    def add(self, value: Any) -> None:
        text = "" if value is None or isinstance(value, bool) else str(value)
        if text.lower() in _NOT_SECRETS:  # AUTH_ENABLED: "true" is a switch, not a secret
            return
        if len(text) >= _MIN_SECRET_LEN:
            self._secrets.add(text)
            _, _, credential = text.partition(" ")
            if credential and len(credential) >= _MIN_SECRET_LEN:  # "Bearer <token>"
                self._secrets.add(credential.strip())

    def known(self) -> list[str]:
        """The secret values this redactor masks wherever they appear."""
        return sorted(self._secrets)

    def learn(self, value: Any, key: str = "") -> Redactor:
        """Remember every value under a secret-looking name inside `value` (options of a
        check: headers, step bodies, env) and every value after a secret flag in a `cmd`."""
        if isinstance(value, Mapping):
            for name, item in value.items():
                if str(name) == "cmd" and isinstance(item, (list, tuple)):
                    for secret in argv_secrets(item):
                        self.add(secret)
                self.learn(item, str(name))
        elif isinstance(value, (list, tuple)):
            for item in value:
                self.learn(item, key)
        elif key and is_secret_name(key):
            self.add(value)
        return self

    def text(self, value: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            value = value.replace(secret, MASK)
        return redact_text(value)

    def data(self, value: Any, key: str = "") -> Any:
        """A copy of `value` with secrets masked; values under secret-looking keys become MASK,
        a `cmd` list is masked as a command line."""
        if key and is_secret_name(key) and not isinstance(value, (Mapping, list, tuple, bool)):
            return MASK if value not in (None, "") else value
        if isinstance(value, Mapping):
            return {str(k): self.data(v, str(k)) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            items = [self.data(v) for v in value]
            return redact_argv(items) if key in ("cmd", "argv", "command") else items
        if isinstance(value, str):
            return self.text(value)
        return value


def redact(value: Any, secrets: Iterable[Any] = ()) -> Any:
    """`value` (text or a structure) with `secrets` and everything secret-looking masked."""
    return Redactor(secrets).data(value)
