"""Artifact storage: one interface, a local-directory default."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from reelforge.storage.base import Storage, StoredObject, validate_key
from reelforge.storage.errors import storage_error
from reelforge.storage.local import LocalStorage

__all__ = [
    "LocalStorage",
    "Storage",
    "StoredObject",
    "open_storage",
    "storage_error",
    "validate_key",
]


def open_storage(url: str) -> Storage:
    """Open the store named by `url` (file:///path, or a plain path)."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        path = url2pathname(parsed.path) if parsed.scheme else url
        return LocalStorage(Path(path))
    raise ValueError(f"unsupported storage URL scheme {parsed.scheme!r} in {url!r}")
