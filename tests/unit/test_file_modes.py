"""Stored artifacts and downloaded videos get the mode a plain open() would give (0666 less
the umask), not tempfile's 0600."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from reelforge.client._common import partial_file
from reelforge.storage import LocalStorage


@pytest.fixture(params=[0o022, 0o027])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    yield int(request.param)
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_stored_objects_follow_the_umask(tmp_path: Path, umask: int) -> None:
    storage = LocalStorage(tmp_path / "store")
    stored = storage.put_bytes("jobs/a/video.mp4", b"video", "video/mp4")
    source = tmp_path / "preview.gif"
    source.write_bytes(b"gif")
    copied = storage.put_file("jobs/a/preview.gif", source, "image/gif")
    for path in (stored.path, copied.path):
        assert path is not None and mode(path) == 0o666 & ~umask


def test_downloads_follow_the_umask(tmp_path: Path, umask: int) -> None:
    target = tmp_path / "fox.mp4"
    with partial_file(target) as handle:
        handle.write(b"video")
    assert mode(target) == 0o666 & ~umask
