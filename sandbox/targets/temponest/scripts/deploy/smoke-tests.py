"""Runbook 002's ./scripts/deploy/smoke-tests.sh for the simulated target: a GET per endpoint
of $WEB_UI_URL, written as JUnit XML (`--junit FILE`); exit 1 when a test failed."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from xml.sax.saxutils import quoteattr

TESTS = (
    ("health reports healthy", "/health", lambda body: body.get("status") == "healthy"),
    ("status answers", "/api/status", lambda body: body.get("status") == "ok"),
    ("costs summary served", "/api/costs/summary", lambda body: "summary" in body),
    ("version answers", "/version", lambda body: bool(body.get("version"))),
)


def run(base: str, path: str, accept: object) -> str:
    try:
        with urllib.request.urlopen(base + path, timeout=10) as resp:  # noqa: S310 - loopback
            body = json.loads(resp.read())
    except (OSError, ValueError) as exc:
        return f"{path}: {exc}"
    return "" if callable(accept) and accept(body) else f"{path}: unexpected body {body!r}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--junit", required=True)
    args = parser.parse_args()
    base = os.environ.get("WEB_UI_URL", "http://127.0.0.1:28080").rstrip("/")
    cases, failures = [], 0
    for name, path, accept in TESTS:
        problem = run(base, path, accept)
        failures += bool(problem)
        failure = f"<failure message={quoteattr(problem)}/>" if problem else ""
        cases.append(f'<testcase classname="smoke" name={quoteattr(name)}>{failure}</testcase>')
    with open(args.junit, "w", encoding="utf-8") as out:
        out.write(
            f'<testsuite name="smoke" tests="{len(TESTS)}" failures="{failures}">'
            + "".join(cases)
            + "</testsuite>\n"
        )
    print(f"{len(TESTS) - failures} of {len(TESTS)} smoke tests passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
