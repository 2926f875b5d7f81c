"""The shared redaction helper masks secrets by value, by name and inline."""

from __future__ import annotations

from stagegate.redact import MASK, Redactor, is_secret_name, redact, redact_argv, redact_text


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
    redactor = Redactor(["on"]).learn({"AUTH_ENABLED": "true", "TOKEN_REQUIRED": "false"})
    assert redactor.text("connection refused") == "connection refused"
    assert redactor.known() == []
    assert redactor.text("healthcheck true, retries false") == "healthcheck true, retries false"


def test_secret_names_are_words_not_substrings() -> None:
    for name in ("POSTGRES_PASSWORD", "X-Api-Key", "dbPassword", "access_token", "PGPASSWORD",
                 "Set-Cookie", "SMTP_PASSWD", "--db-token", "private_key"):  # fmt: skip
        assert is_secret_name(name), name
    for name in (
        "passed",
        "gates_passed",
        "authentication",
        "key_checks",
        "bypass",
        "DATABASE_URL",
    ):
        assert not is_secret_name(name), name


def test_query_parameters_argv_and_json_text_are_masked() -> None:
    text = redact_text("GET http://h/x?page=2&access_token=q-77aa91&api_key=k-1234: status 200")
    assert text == f"GET http://h/x?page=2&access_token={MASK}&api_key={MASK}: status 200"
    assert redact_text("sh tool --password hunter22 --db-token=xyz123 --verbose") == (
        f"sh tool --password {MASK} --db-token={MASK} --verbose"
    )
    assert redact_text('{"access_token": "tok-123456", "n": "1"}') == (
        f'{{"access_token": "{MASK}", "n": "1"}}'
    )
    assert (
        redact_text("PGPASSWORD=s3cret-x SANDBOX_RELEASE=v2")
        == f"PGPASSWORD={MASK} SANDBOX_RELEASE=v2"
    )
    assert redact_argv(["tool", "--password", "X1234", "--user", "bob", "--api-key=K9999"]) == [
        "tool", "--password", MASK, "--user", "bob", f"--api-key={MASK}",
    ]  # fmt: skip


def test_a_cmd_in_a_structure_is_masked_as_a_command_line() -> None:
    masked = redact({"details": {"cmd": ["psql", "--password", "pw-4455"], "rc": 0}})
    assert masked == {"details": {"cmd": ["psql", "--password", MASK], "rc": 0}}


def test_learn_collects_secret_values_at_any_depth() -> None:
    options = {
        "headers": {"Authorization": "Bearer abcdef123"},
        "cmd": ["x", "--secret", "S12345"],
        "steps": [{"body": {"password": "pw12345"}}],
        "url": "http://h/",
    }
    redactor = Redactor().learn(options)
    assert set(redactor.known()) == {"Bearer abcdef123", "abcdef123", "S12345", "pw12345"}
    assert redactor.text("echo S12345 and pw12345") == f"echo {MASK} and {MASK}"


def test_report_counters_are_not_mistaken_for_secrets() -> None:
    summary = {
        "passed": 3,
        "gates_passed": 2,
        "steps_passed": ["login"],
        "bands": {"pass": "<= 200ms", "warn": "<= 500ms"},
        "rule": {"type": "pass_rate", "min": "95%"},
    }
    assert redact(summary, ["irrelevant-secret"]) == summary
