"""Artifact storage: one interface, a local-directory default."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from reelforge.storage.base import ObjectStream, Storage, StoredObject, validate_key
from reelforge.storage.errors import storage_error
from reelforge.storage.local import LocalStorage
from reelforge.storage.s3 import S3Options, S3Storage

__all__ = [
    "LocalStorage",
    "ObjectStream",
    "S3Options",
    "S3Storage",
    "Storage",
    "StoredObject",
    "open_storage",
    "storage_error",
    "validate_key",
]


def open_storage(url: str, s3: S3Options | None = None) -> Storage:
    """Open the store named by `url` (file:///path, a plain path, or s3://bucket/prefix
    reached with `s3`); ValueError says what is wrong with them."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        path = url2pathname(parsed.path) if parsed.scheme else url
        return LocalStorage(Path(path))
    if parsed.scheme == "s3":
        return S3Storage.from_url(url, s3 or S3Options())
    raise ValueError(f"unsupported storage URL scheme {parsed.scheme!r} in {url!r}")
