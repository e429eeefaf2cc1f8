"""Outbound network access, shared by everything that fetches from or delivers to a URL a
client named (input images and webhooks): the address guard and a bounded fetch."""

from __future__ import annotations

from reelforge.net.fetch import FetchFailed, FetchTooLarge, fetch_bytes
from reelforge.net.guard import OutboundPolicy, OutboundRefused

__all__ = ["FetchFailed", "FetchTooLarge", "OutboundPolicy", "OutboundRefused", "fetch_bytes"]
