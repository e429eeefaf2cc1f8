"""The local artifact store on real filesystems: full and read-only."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelforge.errors import InsufficientStorage, ServiceUnavailable
from reelforge.storage import LocalStorage
from tests.fixtures.filesystems import mounted_tmpfs, remount_read_only

KEY = "jobs/abc/video.mp4"


def _put(storage: LocalStorage, how: str, data: bytes, scratch: Path) -> None:
    if how == "bytes":
        storage.put_bytes(KEY, data, "video/mp4")
    else:
        source = scratch / "source.mp4"
        source.write_bytes(data)
        storage.put_file(KEY, source, "video/mp4")


@pytest.mark.parametrize("how", ["bytes", "file"])
def test_a_full_store_raises_insufficient_storage_and_leaves_no_partial_file(
    full_filesystem: Path, tmp_path: Path, how: str
) -> None:
    storage = LocalStorage(full_filesystem / "artifacts")
    with pytest.raises(InsufficientStorage) as raised:
        _put(storage, how, b"x" * 20_000, tmp_path)
    assert raised.value.message == "the artifact store is full: No space left on device"
    assert storage.stat(KEY) is None
    assert list((full_filesystem / "artifacts").rglob(".tmp-*")) == []


@pytest.mark.parametrize("how", ["bytes", "file"])
def test_a_read_only_store_raises_service_unavailable(
    read_only_filesystem: Path, tmp_path: Path, how: str
) -> None:
    storage = LocalStorage(read_only_filesystem)
    with pytest.raises(ServiceUnavailable) as raised:
        _put(storage, how, b"x" * 100, tmp_path)
    assert raised.value.message == "the artifact store is read-only: Read-only file system"
    assert str(tmp_path) not in raised.value.message


def test_a_store_gone_read_only_still_serves_but_cannot_delete(tmp_path: Path) -> None:
    with mounted_tmpfs(tmp_path / "store") as mount_point:
        storage = LocalStorage(mount_point)
        storage.put_bytes(KEY, b"video", "video/mp4")
        remount_read_only(mount_point)
        assert storage.get_bytes(KEY) == b"video"
        with pytest.raises(ServiceUnavailable, match="read-only"):
            storage.delete(KEY)


def test_a_missing_source_file_is_the_callers_error_not_the_stores(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "artifacts")
    with pytest.raises(FileNotFoundError):
        storage.put_file(KEY, tmp_path / "never-written.mp4", "video/mp4")
