"""The `Storage` contract, the same cases on every store: the local directory and a real
S3-compatible server (SeaweedFS on loopback), each test in a fresh folder or prefix."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelforge.storage import LocalStorage, Storage
from reelforge.storage.base import STREAM_CHUNK_BYTES
from tests.conftest import S3Target

KEY = "jobs/abc/video.mp4"
INVALID_KEYS = ["", "/abs", "a/../b", "a//b", "./a", "a\\b", "jobs/..", "jobs/a\x00b", "a\nb"]


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "artifacts")
    target: S3Target = request.getfixturevalue("s3_target")
    return target.storage()


def _read_stream(storage: Storage, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join(storage.open_stream(key, start, end).chunks)


def test_bytes_put_are_read_back_with_their_size(storage: Storage) -> None:
    stored = storage.put_bytes(KEY, b"video bytes", "video/mp4")
    assert stored.key == KEY and stored.size == 11
    assert storage.get_bytes(KEY) == b"video bytes"
    found = storage.stat(KEY)
    assert found is not None and found.size == 11


def test_a_file_put_is_read_back_whole(storage: Storage, tmp_path: Path) -> None:
    # Over two multipart parts on S3 (8 MiB each), with a short last one.
    data = bytes(range(256)) * (17 * 1024 * 1024 // 256 + 3)
    source = tmp_path / "source.mp4"
    source.write_bytes(data)
    stored = storage.put_file(KEY, source, "video/mp4")
    assert stored.size == len(data)
    found = storage.stat(KEY)
    assert found is not None and found.size == len(data)
    assert _read_stream(storage, KEY) == data


def test_a_put_replaces_the_earlier_object_whole(storage: Storage, tmp_path: Path) -> None:
    storage.put_bytes(KEY, b"first version, the longer one", "video/mp4")
    source = tmp_path / "second.mp4"
    source.write_bytes(b"second")
    storage.put_file(KEY, source, "video/mp4")
    assert storage.get_bytes(KEY) == b"second"
    found = storage.stat(KEY)
    assert found is not None and found.size == 6


def test_a_stream_hands_out_bounded_chunks(storage: Storage) -> None:
    data = b"v" * (4 * STREAM_CHUNK_BYTES + 5)
    storage.put_bytes(KEY, data, "video/mp4")
    stream = storage.open_stream(KEY)
    assert (stream.size, stream.start, stream.end) == (len(data), 0, len(data))
    chunks = list(stream.chunks)
    assert b"".join(chunks) == data
    assert len(chunks) >= 2
    assert max(len(chunk) for chunk in chunks) <= 2 * STREAM_CHUNK_BYTES  # never the whole


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [(0, 4, b"0123"), (3, 7, b"3456"), (6, None, b"6789"), (8, 100, b"89")],
)
def test_a_stream_reads_one_byte_range(
    storage: Storage, start: int, end: int | None, expected: bytes
) -> None:
    storage.put_bytes(KEY, b"0123456789", "video/mp4")
    stream = storage.open_stream(KEY, start, end)
    assert (stream.size, stream.start, stream.end) == (10, start, start + len(expected))
    assert b"".join(stream.chunks) == expected


def test_a_missing_object_is_missing_to_every_reader(storage: Storage) -> None:
    assert storage.stat(KEY) is None
    with pytest.raises(FileNotFoundError):
        storage.get_bytes(KEY)
    with pytest.raises(FileNotFoundError):
        storage.open_stream(KEY)
    storage.delete(KEY)  # deleting what is not there is no error


def test_delete_removes_one_object(storage: Storage) -> None:
    storage.put_bytes(KEY, b"a", "video/mp4")
    storage.put_bytes("jobs/abc/preview.gif", b"b", "image/gif")
    storage.delete(KEY)
    assert storage.stat(KEY) is None
    assert storage.get_bytes("jobs/abc/preview.gif") == b"b"


def test_delete_prefix_removes_that_folder_only(storage: Storage) -> None:
    for key in ("jobs/abc/video.mp4", "jobs/abc/preview.gif", "jobs/abcd/video.mp4"):
        storage.put_bytes(key, b"x", "application/octet-stream")
    storage.put_bytes("inputs/abc/image.png", b"x", "image/png")
    storage.delete_prefix("jobs/abc/")
    assert storage.stat("jobs/abc/video.mp4") is None
    assert storage.stat("jobs/abc/preview.gif") is None
    # A longer name that starts with the same letters is another job's.
    assert storage.stat("jobs/abcd/video.mp4") is not None
    assert storage.stat("inputs/abc/image.png") is not None
    storage.delete_prefix("jobs/never-there/")  # nothing to remove is no error


def test_delete_prefix_removes_more_than_one_listing_page(storage: Storage) -> None:
    keys = [f"jobs/many/{index:04d}.bin" for index in range(60)]  # obstore lists 50 a page
    for key in keys:
        storage.put_bytes(key, b"x", "application/octet-stream")
    storage.delete_prefix("jobs/many/")
    assert [key for key in keys if storage.stat(key) is not None] == []


@pytest.mark.parametrize("key", INVALID_KEYS)
def test_invalid_keys_are_refused_by_every_method(
    storage: Storage, tmp_path: Path, key: str
) -> None:
    source = tmp_path / "source"
    source.write_bytes(b"x")
    for call in (
        lambda: storage.put_bytes(key, b"x", "text/plain"),
        lambda: storage.put_file(key, source, "text/plain"),
        lambda: storage.get_bytes(key),
        lambda: storage.open_stream(key),
    ):
        with pytest.raises(ValueError, match="invalid storage key"):
            call()


def test_a_missing_source_file_is_the_callers_error_not_the_stores(
    storage: Storage, tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError):
        storage.put_file(KEY, tmp_path / "never-written.mp4", "video/mp4")
    assert storage.stat(KEY) is None
