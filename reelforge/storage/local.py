"""Artifacts as files under one directory: the embedded default store."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from reelforge.storage.base import Storage, StoredObject, validate_key
from reelforge.storage.errors import storage_error

__all__ = ["LocalStorage"]


class LocalStorage(Storage):
    """Objects as files below `root`; writes go to a temporary file then rename into place,
    so a reader never sees half an object."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def put_bytes(self, key: str, data: bytes, content_type: str) -> StoredObject:
        target = self._path(key)
        with _as_storage_errors():
            _write_atomically(target, lambda handle: handle.write(data))
        return StoredObject(key, len(data), target)

    def put_file(self, key: str, source: Path, content_type: str) -> StoredObject:
        target = self._path(key)
        # Opened before the translation starts: a missing source is the caller's fault.
        with open(source, "rb") as reader, _as_storage_errors():
            _write_atomically(target, lambda handle: shutil.copyfileobj(reader, handle))
            size = target.stat().st_size
        return StoredObject(key, size, target)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise storage_error(exc) from exc

    def delete(self, key: str) -> None:
        with _as_storage_errors():
            self._path(key).unlink(missing_ok=True)

    def stat(self, key: str) -> StoredObject | None:
        path = self._path(key)
        if not path.is_file():
            return None
        return StoredObject(key, path.stat().st_size, path)


def _write_atomically(target: Path, fill: Callable[[BinaryIO], object]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            fill(handle)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


@contextmanager
def _as_storage_errors() -> Iterator[None]:
    """Raise a failed filesystem call as InsufficientStorage or ServiceUnavailable."""
    try:
        yield
    except OSError as exc:
        raise storage_error(exc) from exc
