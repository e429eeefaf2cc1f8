"""Logging set-up for reelforge processes: one line per record, job ids in the message."""

from __future__ import annotations

import logging
import os

__all__ = ["configure_logging"]


def configure_logging(level: str | None = None) -> None:
    """Send reelforge's logs to stderr once per process (idempotent)."""
    root = logging.getLogger()
    if getattr(root, "_reelforge_configured", False):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")
    )
    root.addHandler(handler)
    root.setLevel(level or os.environ.get("REELFORGE_LOG_LEVEL", "INFO"))
    root._reelforge_configured = True  # type: ignore[attr-defined]
