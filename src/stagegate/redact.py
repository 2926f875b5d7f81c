"""Redaction of secret values for every writer on the controller (reports, gate, checks).

One implementation, in `plugins/module_utils/_checks_redact.py`, so that modules and checks
running on the target host mask exactly like the controller does.
"""

from __future__ import annotations

from ansible_collections.stagegate.release.plugins.module_utils._checks_redact import (
    MASK,
    Redactor,
    argv_secrets,
    is_secret_name,
    redact,
    redact_argv,
    redact_text,
)

__all__ = [
    "MASK",
    "Redactor",
    "argv_secrets",
    "is_secret_name",
    "redact",
    "redact_argv",
    "redact_text",
]
