"""Artifacts in an S3-compatible bucket (AWS S3, SeaweedFS, MinIO, R2, ...), on obstore.

    store = S3Storage.from_url("s3://videos/reelforge", S3Options(endpoint_url=...))

Keys live below the URL's prefix (`s3://bucket/prefix/jobs/<id>/video.mp4`). obstore (the
Rust `object_store` crate) does the signing, retries, multipart uploads and streaming; this
module maps the `Storage` interface onto it and its failures onto reelforge's errors:

    a missing object                  -> FileNotFoundError (get_bytes, open_stream), None (stat)
    credentials refused               -> ServiceUnavailable (503) "the artifact store refused
                                         access: ..." (an operator must fix them)
    anything else (refused, timed out,
    a 5xx, a bad bucket)              -> ServiceUnavailable (503) "the artifact store failed: ..."

The messages name the cause, never the endpoint, bucket, key or credentials; the server log
gets obstore's whole message (which names the request, never a secret).

Credentials and region not given in `S3Options` come from the standard `AWS_*` variables
(`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`, ...), which
obstore reads itself, as every AWS tool does.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import obstore
from obstore.exceptions import PermissionDeniedError, UnauthenticatedError
from obstore.store import S3Store

from reelforge.errors import ServiceUnavailable
from reelforge.storage.base import (
    STREAM_CHUNK_BYTES,
    ObjectStream,
    Storage,
    StoredObject,
    validate_key,
)
from reelforge.storage.errors import ARTIFACT_STORE

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig, S3Config

__all__ = ["S3Options", "S3Storage"]

log = logging.getLogger(__name__)

# A part of a multipart upload, and how many are in flight at once: a put_file holds at most
# PART x CONCURRENCY bytes of the file in memory, whatever the file's size.
_PART_BYTES = 8 * 1024 * 1024
_PART_CONCURRENCY = 4
# S3 refuses presigned URLs that live longer than seven days.
_MAX_PRESIGN_S = 7 * 24 * 3600
_DELETE_BATCH = 1000  # the most keys one S3 DeleteObjects request takes
# A store that is down must fail a request within seconds, not obstore's default of
# 10 retries over 3 minutes: the worker is holding a finished video, the API a client.
_RETRY: RetryConfig = {
    "max_retries": 3,
    "retry_timeout": timedelta(seconds=10),
    "backoff": {
        "init_backoff": timedelta(milliseconds=100),
        "max_backoff": timedelta(seconds=2),
        "base": 2,
    },
}
# No total request timeout: a download streamed to a slow client may rightly take minutes.
# A silent server is caught by the read timeout (no byte for that long).
_CONNECT_TIMEOUT = timedelta(seconds=5)
_READ_TIMEOUT = timedelta(seconds=30)

_REFUSED_RETRY_AFTER_S = 60
_TRANSIENT_RETRY_AFTER_S = 5


@dataclass(frozen=True)
class S3Options:
    """How to reach the bucket; empty fields fall back to the `AWS_*` variables, then to
    AWS's defaults (the AWS endpoint of the region)."""

    endpoint_url: str = ""
    region: str = ""
    allow_http: bool = False
    access_key_id: str = ""
    secret_access_key: str = ""
    session_token: str = ""


class S3Storage(Storage):
    """Objects in one bucket, below one prefix. Every write is one PUT (or one completed
    multipart upload), which S3 makes visible whole or not at all, so readers never see half
    an object."""

    def __init__(self, bucket: str, prefix: str, options: S3Options) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        config: S3Config = {}
        if options.endpoint_url:
            config["endpoint"] = options.endpoint_url
        if options.region:
            config["region"] = options.region
        if options.access_key_id:
            config["access_key_id"] = options.access_key_id
            config["secret_access_key"] = options.secret_access_key
        if options.session_token:
            config["session_token"] = options.session_token
        client: ClientConfig = {
            "allow_http": options.allow_http,
            "connect_timeout": _CONNECT_TIMEOUT,
            "read_timeout": _READ_TIMEOUT,
        }
        self._store = S3Store(
            bucket,
            prefix=self.prefix or None,
            config=config,
            client_options=client,
            retry_config=_RETRY,
        )

    @classmethod
    def from_url(cls, url: str, options: S3Options) -> S3Storage:
        """The store of `s3://bucket[/prefix]`; ValueError names what is wrong with it."""
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"an S3 storage URL is s3://bucket[/prefix], not {url!r}")
        if parsed.query or parsed.fragment or "@" in parsed.netloc:
            raise ValueError("an S3 storage URL takes no credentials, query or fragment")
        endpoint = urlparse(options.endpoint_url)
        if options.endpoint_url and endpoint.scheme not in ("http", "https"):
            raise ValueError(
                f"the S3 endpoint must be an http:// or https:// URL, not {options.endpoint_url!r}"
            )
        if endpoint.scheme == "http" and not options.allow_http:
            raise ValueError(
                "the S3 endpoint is plain http://; set REELFORGE_S3_ALLOW_HTTP=true to allow "
                "it (for a store on loopback or a trusted network)"
            )
        try:
            return cls(parsed.netloc, parsed.path, options)
        except obstore.exceptions.BaseError as exc:  # a setting obstore cannot use
            raise ValueError(f"the S3 store cannot be configured: {_first_line(exc)}") from None

    def __repr__(self) -> str:
        return f"S3Storage(s3://{self.bucket}/{self.prefix})"

    def put_bytes(self, key: str, data: bytes, content_type: str) -> StoredObject:
        validate_key(key)
        with _as_store_errors("store", key):
            obstore.put(self._store, key, data, attributes={"Content-Type": content_type})
        return StoredObject(key, len(data))

    def put_file(self, key: str, source: Path, content_type: str) -> StoredObject:
        validate_key(key)
        # Opened before the translation starts: a missing source is the caller's fault.
        with open(source, "rb") as reader, _as_store_errors("store", key):
            size = Path(source).stat().st_size
            # A file object, not bytes: obstore reads it part by part (multipart above one
            # part's size), so a large video is never all in memory.
            obstore.put(
                self._store,
                key,
                reader,
                attributes={"Content-Type": content_type},
                chunk_size=_PART_BYTES,
                max_concurrency=_PART_CONCURRENCY,
            )
        return StoredObject(key, size)

    def get_bytes(self, key: str) -> bytes:
        validate_key(key)
        with _as_store_errors("read", key):
            return bytes(obstore.get(self._store, key).bytes())

    def open_stream(self, key: str, start: int = 0, end: int | None = None) -> ObjectStream:
        validate_key(key)
        options: dict[str, Any] = {}
        if start or end is not None:
            options["range"] = (start, end) if end is not None else {"offset": start}
        with _as_store_errors("read", key):
            result = obstore.get(self._store, key, options=options)  # type: ignore[arg-type]
            size = int(result.meta["size"])
            first, stop = result.range
            chunks = result.stream(min_chunk_size=STREAM_CHUNK_BYTES)
        return ObjectStream(key, size, first, stop, _chunks(chunks, key))

    def delete(self, key: str) -> None:
        validate_key(key)
        with _as_store_errors("delete", key):
            obstore.delete(self._store, key)  # S3 answers success for a missing key

    def delete_prefix(self, prefix: str) -> None:
        validate_key(prefix.rstrip("/"))
        with _as_store_errors("delete", prefix):
            # obstore lists by whole path segments: "jobs/a" never matches "jobs/ab/...".
            listed = obstore.list(self._store, prefix.rstrip("/"), chunk_size=_DELETE_BATCH)
            for batch in listed:
                obstore.delete(self._store, [meta["path"] for meta in batch])

    def keys(self, prefix: str = "") -> list[str]:
        """Every key below `prefix` (a folder, or "" for the whole store), for checks and
        tools; the service itself never lists."""
        with _as_store_errors("list", prefix or "/"):
            listed = obstore.list(self._store, prefix.rstrip("/") or None)
            return sorted(meta["path"] for batch in listed for meta in batch)

    def stat(self, key: str) -> StoredObject | None:
        validate_key(key)
        try:
            with _as_store_errors("read", key):
                meta = obstore.head(self._store, key)
        except FileNotFoundError:
            return None
        return StoredObject(key, int(meta["size"]))

    def presigned_url(self, key: str, ttl_s: int) -> str:
        """A URL that lets anyone GET the object for `ttl_s` seconds (at most seven days),
        signed here with the store's credentials; no request is made."""
        validate_key(key)
        expires = timedelta(seconds=max(1, min(ttl_s, _MAX_PRESIGN_S)))
        with _as_store_errors("sign a link to", key):
            return obstore.sign(self._store, "GET", key, expires)


def _chunks(stream: Iterator[Any], key: str) -> Iterator[bytes]:
    """The stream's chunks as bytes, its failures as reelforge's errors (the response that
    is sending them is already under way, so the server can only cut it short)."""
    with _as_store_errors("read", key):
        for chunk in stream:
            yield bytes(chunk)


@contextmanager
def _as_store_errors(action: str, key: str) -> Iterator[None]:
    """Raise an obstore failure as ServiceUnavailable naming its cause (a missing object
    stays FileNotFoundError, which obstore's NotFoundError is)."""
    try:
        yield
    except FileNotFoundError:
        raise
    except (PermissionDeniedError, UnauthenticatedError) as exc:
        log.warning("artifact store: could not %s %s: %s", action, key, _first_line(exc))
        raise ServiceUnavailable(
            f"{ARTIFACT_STORE} refused access: {_cause(exc)}; check its credentials",
            retry_after_s=_REFUSED_RETRY_AFTER_S,
        ) from exc
    except Exception as exc:
        if not isinstance(exc, obstore.exceptions.BaseError | OSError):
            raise
        log.warning("artifact store: could not %s %s: %s", action, key, _first_line(exc))
        raise ServiceUnavailable(
            f"{ARTIFACT_STORE} failed: {_cause(exc)}", retry_after_s=_TRANSIENT_RETRY_AFTER_S
        ) from exc


def _first_line(exc: BaseException) -> str:
    return str(exc).split("\n", 1)[0]


# obstore's messages name the URL of the request; clients get only the kind of failure.
_S3_CODE = re.compile(r"<Code>(\w+)</Code>")
_STATUS = re.compile(r"status code: (\d{3}[A-Za-z ]*)")
_CAUSES = (
    ("connection refused", "connection refused"),
    ("timed out", "timed out"),
    ("timeout", "timed out"),
    ("dns error", "its host name does not resolve"),
    ("connection reset", "connection reset"),
    ("error sending request", "could not send the request"),
)


def _cause(exc: BaseException) -> str:
    text = str(exc)
    code = _S3_CODE.search(text)
    status = _STATUS.search(text)
    if status or code:
        parts = [f"HTTP {status.group(1).strip()}" if status else "", code.group(1) if code else ""]
        return " ".join(part for part in parts if part)
    lowered = text.lower()
    for needle, cause in _CAUSES:
        if needle in lowered:
            return cause
    return type(exc).__name__
