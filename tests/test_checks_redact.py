"""The shared redaction helper masks secrets by value, by name and inline."""

from __future__ import annotations

from stagegate.redact import MASK, Redactor


def test_known_values_and_bearer_credentials_are_masked() -> None:
    redactor = Redactor(["Bearer abc123token"])
    assert redactor.text("sent Bearer abc123token") == f"sent {MASK}"
    assert redactor.text("token abc123token echoed") == f"token {MASK} echoed"


def test_inline_credentials_are_masked_without_being_known() -> None:
    redactor = Redactor()
    assert (
        redactor.text("postgresql://app:pa55word@db:5432/app")
        == f"postgresql://app:{MASK}@db:5432/app"
    )
    assert (
        redactor.text("host=db password=pa55word dbname=app")
        == f"host=db password={MASK} dbname=app"
    )
    assert redactor.text("Authorization: Bearer eyJhbGciOi.x") == f"Authorization: Bearer {MASK}"


def test_secret_named_fields_are_masked_in_structures() -> None:
    redactor = Redactor()
    data = {
        "headers": {"Authorization": "Basic dXNlcjpwYXNz", "Accept": "json"},
        "password": "x",
        "steps": [{"api_key": "k-123456"}],
        "count": 3,
    }
    masked = redactor.data(data)
    assert masked == {
        "headers": {"Authorization": MASK, "Accept": "json"},
        "password": MASK,
        "steps": [{"api_key": MASK}],
        "count": 3,
    }


def test_short_values_do_not_mask_ordinary_words() -> None:
    redactor = Redactor(["on"])
    assert redactor.text("connection refused") == "connection refused"
