"""Webhooks: signed, retried deliveries of job events to the URL a generation's creator named.

The store writes a `webhook_deliveries` row with each transition a subscription asks for (the
outbox, `jobs.store`); `WebhookDispatcher` (in the API process) sends them, oldest first per
generation, through the outbound guard, signed the Standard Webhooks way, and retries on the
`RetrySchedule`; `jobs.webhooks.WebhookOutbox` is its view of the tables.
"""

from __future__ import annotations

from reelforge.webhooks.dispatcher import Envelope, Renderer, WebhookDispatcher, whole_body
from reelforge.webhooks.schedule import RetrySchedule
from reelforge.webhooks.signing import WebhookSigner, load_or_create_webhook_secret

__all__ = [
    "Envelope",
    "Renderer",
    "RetrySchedule",
    "WebhookDispatcher",
    "WebhookSigner",
    "load_or_create_webhook_secret",
    "whole_body",
]
