"""Signing webhook requests the Standard Webhooks way (https://www.standardwebhooks.com).

Each request carries `webhook-id` (the delivery's id, the same on every retry, so a receiver
can drop duplicates), `webhook-timestamp` (epoch seconds of this attempt; receivers refuse
ones more than five minutes off) and `webhook-signature: v1,<base64 HMAC-SHA256 of
"id.timestamp.body">`. The `standardwebhooks` library signs, so a receiver that verifies
with it (or any other implementation of the spec) accepts ours.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path

from standardwebhooks.webhooks import Webhook

from reelforge.errors import ConfigurationError

__all__ = ["SECRET_FILE", "SECRET_PREFIX", "WebhookSigner", "load_or_create_webhook_secret"]

SECRET_PREFIX = "whsec_"
SECRET_FILE = "webhook-secret"
_SECRET_BYTES = 32


class WebhookSigner:
    """Makes the three signature headers of one attempt."""

    def __init__(self, secret: str) -> None:
        self._webhook = Webhook(secret)

    def headers(self, msg_id: str, timestamp: int, body: str) -> dict[str, str]:
        moment = datetime.fromtimestamp(timestamp, UTC)
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": self._webhook.sign(msg_id, moment, body),
        }


def load_or_create_webhook_secret(configured: str, data_dir: Path) -> str:
    """The configured secret (`REELFORGE_WEBHOOK_SECRET`), else one kept in `data_dir`
    (created on first use, mode 0600). Several API replicas must share one: set it for them.

    Raises `ConfigurationError` for a configured secret that is not `whsec_` and base64."""
    if configured:
        _check(configured)
        return configured
    path = data_dir / SECRET_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        secret = SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode()
        temp = path.with_name(f"{SECRET_FILE}.{secrets.token_hex(4)}.tmp")
        # Created 0600, never briefly readable by others; renamed so readers see all or none.
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secret + "\n")
        temp.replace(path)
    return path.read_text().strip()


def _check(secret: str) -> None:
    body = secret.removeprefix(SECRET_PREFIX).rstrip("=")
    try:
        decoded = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if not secret.startswith(SECRET_PREFIX) or not decoded:
        raise ConfigurationError(
            "REELFORGE_WEBHOOK_SECRET must be 'whsec_' followed by base64 (Standard Webhooks), "
            "e.g. whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        )
