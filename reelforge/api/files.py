"""Artifact downloads: signed, expiring URLs that any plain HTTP client can fetch.

The hosted API hands out CDN links that need no API key; reelforge does the same with an
HMAC signature over the key and expiry, so links can be shared but not forged or guessed.
"""

from __future__ import annotations

import hashlib
import hmac
import mimetypes
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, Response

from reelforge.api.openapi import error_responses
from reelforge.errors import Forbidden, NotFound
from reelforge.storage import Storage, validate_key

__all__ = ["FileSigner", "build_files_router", "load_or_create_secret"]

FILES_PREFIX = "/files"


class FileSigner:
    """Signs and checks artifact URLs."""

    def __init__(self, secret: bytes, ttl_s: int) -> None:
        self._secret = secret
        self.ttl_s = ttl_s

    def _signature(self, key: str, expires: int) -> str:
        message = f"{key}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:32]

    def url(self, base_url: str, key: str, now: float | None = None) -> str:
        """Absolute, signed URL of `key` under `base_url`."""
        expires = int((now if now is not None else time.time()) + self.ttl_s)
        query = urlencode({"expires": expires, "signature": self._signature(key, expires)})
        return f"{base_url.rstrip('/')}{FILES_PREFIX}/{quote(key)}?{query}"

    def check(self, key: str, expires: int, signature: str) -> None:
        # Bytes, not str: compare_digest raises TypeError on non-ASCII text (a 500 that
        # needed no key), and any byte string is a fair (wrong) signature.
        expected = self._signature(key, expires).encode()
        if not hmac.compare_digest(expected, signature.encode("utf-8", "surrogateescape")):
            raise Forbidden("invalid file signature")
        if expires < time.time():
            raise Forbidden("this file link has expired; poll the generation for a fresh one")


def load_or_create_secret(configured: str, data_dir: Path) -> bytes:
    """The configured secret, else one kept in `data_dir` (created on first use).

    Several API replicas must share it: set REELFORGE_URL_SIGNING_SECRET for them.
    """
    if configured:
        return configured.encode()
    path = data_dir / "url-signing.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        temp = path.with_suffix(".tmp")
        temp.write_text(secrets.token_hex(32))
        temp.chmod(0o600)
        temp.replace(path)
    return path.read_text().strip().encode()


_BINARY = {"schema": {"type": "string", "format": "binary"}}
_DOWNLOAD_ANSWER: dict[str, Any] = {
    "description": "The file: the video, its GIF preview or its WebP thumbnail.",
    "content": {
        media_type: _BINARY
        for media_type in ("video/mp4", "image/gif", "image/webp", "application/octet-stream")
    },
}


def build_files_router(storage: Storage, signer: FileSigner) -> APIRouter:
    router = APIRouter()

    @router.get(
        FILES_PREFIX + "/{key:path}",
        tags=["files"],
        response_class=Response,
        responses={200: _DOWNLOAD_ANSWER, **error_responses(400, 403, 404)},
    )
    def download(key: str, expires: int = Query(...), signature: str = Query(...)) -> Response:
        """An artifact, by a signed link from a generation object (no API key needed)."""
        try:
            validate_key(key)
        except ValueError:
            raise NotFound("no such file") from None
        signer.check(key, expires, signature)
        stored = storage.stat(key)
        if stored is None:
            raise NotFound("no such file")
        media_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
        headers = {"Cache-Control": "private, max-age=3600"}
        if stored.path is not None:
            return FileResponse(stored.path, media_type=media_type, headers=headers)
        return Response(storage.get_bytes(key), media_type=media_type, headers=headers)

    return router
