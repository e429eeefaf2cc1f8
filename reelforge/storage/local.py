"""Artifacts as files under one directory: the embedded default store."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from reelforge.errors import ServiceUnavailable
from reelforge.fileperm import as_if_opened
from reelforge.storage.base import (
    STREAM_CHUNK_BYTES,
    ObjectStream,
    Storage,
    StoredObject,
    validate_key,
)
from reelforge.storage.errors import storage_error

__all__ = ["LocalStorage"]


class LocalStorage(Storage):
    """Objects as files below `root`; writes go to a temporary file then rename into place,
    so a reader never sees half an object.

    A key may pass through symlinks below `root` but must end up inside it: one that leads
    out (a linked file or folder) is missing to readers and refused to writers, so `/files`
    cannot be made to serve the rest of the server's disk. Point the store at the real
    directory rather than linking folders into it.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _resolved(self, key: str) -> Path | None:
        """The real file behind `key`, symlinks followed; None if that is outside the root."""
        try:
            path = (self.root / validate_key(key)).resolve()
        except (OSError, RuntimeError):  # a symlink loop (RuntimeError before Python 3.13)
            return None
        return path if path.is_relative_to(self.root) else None

    def _write_path(self, key: str) -> Path:
        """Where to write `key`: the key's own path (a symlink there is replaced, not
        written through), once it is known not to lead out of the root."""
        if self._resolved(key) is None:
            raise ServiceUnavailable(
                "the artifact store refused a key that a symlink leads out of its directory"
            )
        return self.root / key

    def put_bytes(self, key: str, data: bytes, content_type: str) -> StoredObject:
        target = self._write_path(key)
        with _as_storage_errors():
            _write_atomically(target, lambda handle: handle.write(data))
        return StoredObject(key, len(data), target)

    def put_file(self, key: str, source: Path, content_type: str) -> StoredObject:
        target = self._write_path(key)
        # Opened before the translation starts: a missing source is the caller's fault.
        with open(source, "rb") as reader, _as_storage_errors():
            _write_atomically(target, lambda handle: shutil.copyfileobj(reader, handle))
            size = target.stat().st_size
        return StoredObject(key, size, target)

    def get_bytes(self, key: str) -> bytes:
        path = self._resolved(key)
        if path is None or not path.is_file():
            raise FileNotFoundError(f"no object {key!r} in the artifact store")
        try:
            return path.read_bytes()
        except FileNotFoundError:  # deleted since the check: still just missing
            raise
        except OSError as exc:
            raise storage_error(exc) from exc

    def open_stream(self, key: str, start: int = 0, end: int | None = None) -> ObjectStream:
        path = self._resolved(key)
        if path is None or not path.is_file():
            raise FileNotFoundError(f"no object {key!r} in the artifact store")
        try:
            reader = open(path, "rb")  # noqa: SIM115 (closed by the stream's generator)
            size = os.fstat(reader.fileno()).st_size
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise storage_error(exc) from exc
        stop = size if end is None else min(end, size)
        return ObjectStream(key, size, start, stop, _read_chunks(reader, start, stop))

    def delete(self, key: str) -> None:
        if self._resolved(key) is None:
            return  # missing as far as this store goes; never touch what lies outside
        with _as_storage_errors():
            (self.root / key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        folder = self._resolved(prefix.rstrip("/"))
        if folder is None or folder == self.root or not folder.is_dir():
            return
        with _as_storage_errors():
            _remove_tree(folder)

    def stat(self, key: str) -> StoredObject | None:
        # The resolved path, so whoever opens it later does not follow a symlink again.
        path = self._resolved(key)
        if path is None or not path.is_file():
            return None
        return StoredObject(key, path.stat().st_size, path)


def _read_chunks(reader: BinaryIO, start: int, stop: int) -> Iterator[bytes]:
    """Bytes `start` to `stop` of the open file, a chunk at a time; closes it when done or
    abandoned."""
    with reader, _as_storage_errors():
        reader.seek(start)
        left = stop - start
        while left > 0:
            chunk = reader.read(min(STREAM_CHUNK_BYTES, left))
            if not chunk:  # truncated since it was opened
                return
            left -= len(chunk)
            yield chunk


def _remove_tree(folder: Path) -> None:
    """`shutil.rmtree`, where what vanished meanwhile counts as removed: two removers of one
    job's files (the sweepers of two API replicas) both succeed."""

    def ignore_missing(exc: BaseException) -> None:
        if not isinstance(exc, FileNotFoundError):
            raise exc

    if sys.version_info >= (3, 12):
        shutil.rmtree(folder, onexc=lambda _fn, _path, exc: ignore_missing(exc))
    else:
        shutil.rmtree(folder, onerror=lambda _fn, _path, info: ignore_missing(info[1]))


def _write_atomically(target: Path, fill: Callable[[BinaryIO], object]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            fill(handle)
        as_if_opened(temp)  # mkstemp makes 0600
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
