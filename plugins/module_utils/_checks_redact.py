# Copyright: stagegate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Redaction shared by every check, on the controller and on the target host.

Standard library only. A `Redactor` knows the secret values of one check (passwords,
tokens captured by a flow, env values) and masks them in any text or structure; names
that look secret (Authorization, password, token, ...) are masked whatever their value.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"

SECRET_NAME_RE = re.compile(
    r"(pass(word|wd)?|secret|token|api[-_]?key|auth(orization)?|cookie|credential|dsn|private)",
    re.IGNORECASE,
)
# user:password@ in URLs and DSNs, password=... in libpq DSNs, bearer/basic credentials
_INLINE_PATTERNS = (
    (re.compile(r"(?P<keep>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+(?=@)", re.I), r"\g<keep>" + MASK),
    (re.compile(r"(?P<keep>\bpassword\s*=\s*)('[^']*'|\S+)", re.I), r"\g<keep>" + MASK),
    (
        re.compile(r"(?P<keep>\b(bearer|basic|token)\s+)[A-Za-z0-9._~+/=-]{6,}", re.I),
        r"\g<keep>" + MASK,
    ),
)
_MIN_SECRET_LEN = 4  # shorter values would mask ordinary words


def is_secret_name(name: str) -> bool:
    """True for keys and header names whose values are never shown."""
    return bool(SECRET_NAME_RE.search(name))


class Redactor:
    """Masks known secret values and secret-looking fields."""

    def __init__(self, secrets: list[str] | None = None) -> None:
        self._secrets: set[str] = set()
        for value in secrets or []:
            self.add(value)

    def add(self, value: Any) -> None:
        text = "" if value is None else str(value)
        if len(text) >= _MIN_SECRET_LEN:
            self._secrets.add(text)
            _, _, credential = text.partition(" ")
            if credential and len(credential) >= _MIN_SECRET_LEN:  # "Bearer <token>"
                self._secrets.add(credential.strip())

    def text(self, value: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            value = value.replace(secret, MASK)
        for pattern, repl in _INLINE_PATTERNS:
            value = pattern.sub(repl, value)
        return value

    def data(self, value: Any, key: str = "") -> Any:
        """A copy of `value` with secrets masked; values under secret-looking keys become MASK."""
        if key and is_secret_name(key) and not isinstance(value, (dict, list)):
            return MASK if value not in (None, "") else value
        if isinstance(value, dict):
            return {k: self.data(v, str(k)) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(v) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value
