"""stagegate: staging promotion and rollback with graded verdicts."""

from __future__ import annotations

__version__ = "0.1.0"
