"""Redaction of secret values, shared by every check and report (controller side).

One implementation, in `plugins/module_utils/_checks_redact.py`, so that checks running on
the target host mask exactly like the controller does.
"""

from __future__ import annotations

from ansible_collections.stagegate.release.plugins.module_utils._checks_redact import (
    MASK,
    Redactor,
    is_secret_name,
)

__all__ = ["MASK", "Redactor", "is_secret_name"]
