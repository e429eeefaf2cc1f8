"""The local artifact store on real filesystems: full, read-only, and with symlinks leading
out of its directory. What every store does is in test_storage_contract.py."""

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


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the store, holding a secret."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("not for download")
    return folder


def test_a_symlinked_file_leading_out_is_missing(tmp_path: Path, outside: Path) -> None:
    storage = LocalStorage(tmp_path / "artifacts")
    (storage.root / "jobs").mkdir()
    (storage.root / "jobs" / "secret.txt").symlink_to(outside / "secret.txt")

    assert storage.stat("jobs/secret.txt") is None
    with pytest.raises(FileNotFoundError):
        storage.get_bytes("jobs/secret.txt")
    storage.delete("jobs/secret.txt")
    assert (outside / "secret.txt").read_text() == "not for download"


def test_a_symlinked_folder_leading_out_is_missing_and_not_written_through(
    tmp_path: Path, outside: Path
) -> None:
    storage = LocalStorage(tmp_path / "artifacts")
    (storage.root / "jobs").symlink_to(outside, target_is_directory=True)

    assert storage.stat("jobs/secret.txt") is None
    with pytest.raises(FileNotFoundError):
        storage.get_bytes("jobs/secret.txt")
    with pytest.raises(ServiceUnavailable, match="symlink"):
        storage.put_bytes("jobs/planted.txt", b"x", "text/plain")
    storage.delete("jobs/secret.txt")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def test_links_inside_the_store_work_and_stat_names_the_real_file(tmp_path: Path) -> None:
    real_root = tmp_path / "real"
    (tmp_path / "linked-root").symlink_to(real_root, target_is_directory=True)
    real_root.mkdir()
    storage = LocalStorage(tmp_path / "linked-root")  # the root itself may be a link
    storage.put_bytes(KEY, b"video", "video/mp4")
    (storage.root / "latest.mp4").symlink_to(storage.root / KEY)

    stored = storage.stat("latest.mp4")
    assert stored is not None and stored.size == 5 and stored.path == real_root / KEY
    assert storage.get_bytes("latest.mp4") == b"video"
