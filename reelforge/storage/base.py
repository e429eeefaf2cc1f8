"""The artifact store interface: put and get bytes under slash-separated keys.

Keys look like `jobs/<job id>/video.mp4`. The local directory store is the embedded default;
an S3-compatible store implements the same methods.

A store that cannot do its job raises a reelforge server error, never a bare `OSError`:
`InsufficientStorage` (507) when it is full, `ServiceUnavailable` (503) when it is read-only,
refuses or fails (see `reelforge.storage.errors`). A missing object is `FileNotFoundError` from
`get_bytes` and `open_stream`, and None from `stat`.

Reads of whole videos go through `open_stream`, which hands out the object (or one byte
range of it) in chunks, so a reader never holds a whole video in memory.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ObjectStream", "Storage", "StoredObject", "validate_key"]

STREAM_CHUNK_BYTES = 1024 * 1024
"""How much of an object a stream hands out at a time: large enough that a 1 GB video is a
thousand chunks, small enough that a slow client holds little of it in memory."""


class StoredObject:
    """Where a stored object can be read, and how big it is."""

    def __init__(self, key: str, size: int, path: Path | None = None) -> None:
        self.key = key
        self.size = size
        self.path = path  # set by stores that keep objects as local files


@dataclass
class ObjectStream:
    """Bytes `start` to `end` (exclusive) of an object of `size` bytes, as an iterator of
    chunks; opened (so a missing object is already known), read as the consumer pulls."""

    key: str
    size: int
    start: int
    end: int
    chunks: Iterator[bytes]

    @property
    def length(self) -> int:
        return self.end - self.start


def validate_key(key: str) -> str:
    """Refuse keys that could escape the store (absolute, `..`, empty parts, backslashes)
    or that no file system takes (control characters: a NUL made the path calls raise)."""
    parts = key.split("/")
    if (
        not key
        or key.startswith("/")
        or any(p in ("", ".", "..") for p in parts)
        or "\\" in key
        or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in key)
    ):
        raise ValueError(f"invalid storage key {key!r}")
    return key


class Storage(ABC):
    """Artifact storage shared by the API (reads) and workers (writes)."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes, content_type: str) -> StoredObject:
        """Store `data` under `key`, replacing any earlier object, atomically."""

    @abstractmethod
    def put_file(self, key: str, source: Path, content_type: str) -> StoredObject:
        """Store the file at `source` under `key`, atomically."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """Return the object's bytes; raise FileNotFoundError if there is none."""

    @abstractmethod
    def open_stream(self, key: str, start: int = 0, end: int | None = None) -> ObjectStream:
        """Open the object for reading bytes `start` to `end` (exclusive; None: to its end)
        in chunks; raise FileNotFoundError if there is none. `start` must be below its size
        and `end`, if given, above `start`; an `end` past the size is cut to it."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object if it exists."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> None:
        """Remove every object whose key starts with `prefix` (which ends in `/`)."""

    @abstractmethod
    def stat(self, key: str) -> StoredObject | None:
        """Return the object's size and location, or None if it does not exist."""
