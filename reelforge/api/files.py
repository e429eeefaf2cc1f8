"""Artifact downloads: signed, expiring URLs that any plain HTTP client can fetch.

The hosted API hands out CDN links that need no API key; reelforge does the same with an
HMAC signature over the key and expiry, so links can be shared but not forged or guessed.
A link is a capability: it alone fetches its one file, for whoever holds it, whatever their
tenant, until it expires. It is bound to its job through the file: deleting the job (or the
retention sweep) removes the files, and the link answers 404.
With `REELFORGE_PUBLIC_LINKS=presigned` (an S3 store only) the links are the store's own
presigned GET URLs instead, and clients download from the store directly.

Whatever the store, a download is streamed: a local file as a file response, an object in
S3 a chunk at a time (`Storage.open_stream`), with a single byte range if one is asked for;
no video is ever read whole into the API's memory.

A link is bound to its generation: once a signature checks out, the job its key belongs to
must still exist (one read by primary key), so a deleted generation's links answer 404 even
where its files outlived it (a store that failed during the delete, a worker that stored
files after it), until the sweeper removes them.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import math
import mimetypes
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, PlainTextResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from reelforge.api.openapi import error_responses
from reelforge.errors import ConfigurationError, Forbidden, NotFound
from reelforge.storage import S3Storage, Storage, keys, validate_key

__all__ = [
    "FileLinks",
    "FileSigner",
    "PresignedLinks",
    "build_files_router",
    "build_links",
    "load_or_create_secret",
    "stored_response",
]

FILES_PREFIX = "/files"


class FileSigner:
    """Signs and checks artifact URLs."""

    def __init__(self, secret: bytes, ttl_s: int) -> None:
        self._secret = secret
        self.ttl_s = ttl_s
        # Expiries are rounded up to a whole step (a minute for links that live an hour or
        # more), so every poll of a job within that minute gets the same links and each is
        # signed once (an HMAC per link, three per poll, were a tenth of a poll's time); a
        # browser can cache them too. A link lives at most one step past its TTL.
        self._step = 60 if ttl_s >= 3600 else 1
        self._signed = functools.lru_cache(maxsize=4096)(self._signature)

    def _signature(self, key: str, expires: int) -> str:
        message = f"{key}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:32]

    def url(self, base_url: str, key: str, now: float | None = None) -> str:
        """Absolute, signed URL of `key` under `base_url`."""
        expires = math.ceil((now if now is not None else time.time()) + self.ttl_s)
        expires += -expires % self._step
        # Digits and hex need no escaping: no urlencode, which was most of a link's cost
        # (three links per generation object, in every poll).
        query = f"expires={expires}&signature={self._signed(key, expires)}"
        return f"{base_url.rstrip('/')}{FILES_PREFIX}/{quote(key)}?{query}"

    def check(self, key: str, expires: int, signature: str) -> None:
        # Bytes, not str: compare_digest raises TypeError on non-ASCII text (a 500 that
        # needed no key), and any byte string is a fair (wrong) signature.
        expected = self._signature(key, expires).encode()
        if not hmac.compare_digest(expected, signature.encode("utf-8", "surrogateescape")):
            raise Forbidden("invalid file signature")
        if expires < time.time():
            raise Forbidden("this file link has expired; poll the generation for a fresh one")


class FileLinks(Protocol):
    """What renders a file link in a generation object: the one place links are made."""

    def url(self, base_url: str, key: str) -> str: ...


class PresignedLinks:
    """The S3 store's presigned GET URLs, valid as long as this server's signed links (at
    most the seven days S3 allows); signed locally, no request to the store."""

    def __init__(self, storage: S3Storage, ttl_s: int) -> None:
        self._storage = storage
        self.ttl_s = ttl_s

    def url(self, base_url: str, key: str) -> str:
        return self._storage.presigned_url(key, self.ttl_s)


def build_links(public_links: str, storage: Storage, signer: FileSigner) -> FileLinks:
    """The links of `REELFORGE_PUBLIC_LINKS`: this server's signed ones, or the store's
    presigned URLs (which only an S3 store can sign)."""
    if public_links == "signed":
        return signer
    if not isinstance(storage, S3Storage):
        raise ConfigurationError(
            "REELFORGE_PUBLIC_LINKS=presigned needs an S3 store to sign links "
            "(REELFORGE_STORAGE_URL=s3://bucket/prefix); with local storage use signed"
        )
    return PresignedLinks(storage, signer.ttl_s)


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


def build_files_router(
    storage: Storage, signer: FileSigner, job_exists: Callable[[str], Awaitable[bool]]
) -> APIRouter:
    """`GET /files/{key}`; `job_exists(job_id)` says whether a generation still exists."""
    router = APIRouter()

    @router.get(
        FILES_PREFIX + "/{key:path}",
        tags=["files"],
        response_class=Response,
        # 503: the job database or the artifact store did not answer.
        responses={200: _DOWNLOAD_ANSWER, **error_responses(400, 403, 404, 503)},
    )
    async def download(
        request: Request, key: str, expires: int = Query(...), signature: str = Query(...)
    ) -> Response:
        """An artifact, by a signed link from a generation object (no API key needed);
        a single `Range: bytes=...` is answered with 206."""
        try:
            validate_key(key)
        except ValueError:
            raise NotFound("no such file") from None
        signer.check(key, expires, signature)  # before any read: no forged key costs one
        job_id = keys.job_of(key)
        if job_id is None or not await job_exists(job_id):
            raise NotFound("no such file")
        media_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
        return await run_in_threadpool(
            stored_response,
            storage,
            key,
            media_type,
            request,
            headers={"Cache-Control": "private, max-age=3600"},
            missing="no such file",
        )

    return router


def stored_response(
    storage: Storage,
    key: str,
    media_type: str,
    request: Request,
    *,
    headers: dict[str, str] | None = None,
    missing: str,
) -> Response:
    """The stored object as a streamed response (blocking: call it from a thread). A local
    file goes out as a file response (sendfile, ranges); any other store's object as its
    chunks, the whole of it or the one range asked for. NotFound(`missing`) if it is gone."""
    stored = storage.stat(key)
    if stored is None:
        raise NotFound(missing)
    headers = dict(headers or {})
    if stored.path is not None:
        return FileResponse(stored.path, media_type=media_type, headers=headers)
    try:
        wanted = _requested_range(request, stored.size)
    except _RangeNotSatisfiable:
        return PlainTextResponse(
            "range not satisfiable", 416, headers={"Content-Range": f"bytes */{stored.size}"}
        )
    try:
        stream = storage.open_stream(key, *(wanted or (0, None)))
    except FileNotFoundError:  # deleted since the stat
        raise NotFound(missing) from None
    headers.update({"Accept-Ranges": "bytes", "Content-Length": str(stream.length)})
    status = 200
    if wanted is not None:
        status = 206
        headers["Content-Range"] = f"bytes {stream.start}-{stream.end - 1}/{stream.size}"
    return StreamingResponse(stream.chunks, status, headers=headers, media_type=media_type)


class _RangeNotSatisfiable(Exception):
    pass


# One range, the form every video player sends ("bytes=0-", "bytes=100-199", "bytes=-500").
# Hand-written because Starlette's parser is private to FileResponse; a header this does not
# read (several ranges, another unit) gets the whole file, as RFC 9110 lets a server answer.
_SINGLE_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def _requested_range(request: Request, size: int) -> tuple[int, int] | None:
    """The one byte range `request` asks for, as (start, end exclusive), or None for all."""
    header = request.headers.get("range")
    # If-Range needs a validator these responses do not send, so it can never match.
    if header is None or "if-range" in request.headers:
        return None
    match = _SINGLE_RANGE.fullmatch(header.strip())
    if match is None or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if not first:  # the last N bytes
        if int(last) == 0:
            raise _RangeNotSatisfiable
        return max(0, size - int(last)), size
    start = int(first)
    if last and int(last) < start:  # not a valid range: ignored, as RFC 9110 says
        return None
    end = size if not last else min(int(last) + 1, size)
    if start >= size or end <= start:
        raise _RangeNotSatisfiable
    return start, end
