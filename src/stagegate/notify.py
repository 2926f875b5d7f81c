"""Webhook notifier: POSTs the verdict summary as JSON when a run finishes.

Registered per run as a plugin object on `stagegate_run_finished` when
`stagegate_notify_webhook` is set (`url`, optional `headers`, `timeout`). Only the summary
leaves the machine (verdict, score, release, failed checks, report paths), never check
details; the report it is built from is already redacted.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from stagegate.hookspecs import hookimpl


class NotifyError(RuntimeError):
    """The webhook did not accept the notification; the message names the URL and status."""


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The verdict summary a notification carries."""
    return {
        "event": "stagegate.run_finished",
        "verdict": report["verdict"],
        "score": report["score"],
        "release": report["release"],
        "environment": report.get("environment"),
        "run_by": report.get("run_by"),
        "stopped": report.get("stopped"),
        "failed_checks": [c["name"] for c in report["checks"] if c["status"] in ("FAIL", "ERROR")],
        "failed_gates": [g["name"] for g in report["gates"] if g["status"] in ("FAIL", "ERROR")],
        "blockers": report.get("blockers", []),
        "reports": report.get("report_paths", {}),
    }


@dataclass
class WebhookNotifier:
    """A `stagegate_run_finished` plugin bound to one webhook URL."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise NotifyError(f"stagegate_notify_webhook.url: {self.url!r} is not an http(s) URL")

    @hookimpl
    def stagegate_run_finished(self, report: dict[str, Any]) -> None:
        body = json.dumps(summary(report)).encode("utf-8")
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __post_init__
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", **self.headers},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                status = response.status
        except OSError as exc:
            raise NotifyError(f"webhook {self.shown_url}: {exc}") from exc
        if not 200 <= status < 300:
            raise NotifyError(f"webhook {self.shown_url}: HTTP {status}")

    @property
    def shown_url(self) -> str:
        """Scheme and host only: webhook paths often embed a token (Slack, Teams)."""
        parts = urllib.parse.urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname}:{parts.port or ''}/..."
