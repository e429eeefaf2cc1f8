"""Fixtures for integration tests: tiny random-weight Wan checkpoints, built once per session;
real full and read-only filesystems."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reelforge.testing.tiny import TinyTask, build_tiny_wan
from tests.fixtures.filesystems import fill, mounted_tmpfs, remount_read_only


@pytest.fixture(scope="session")
def tiny_wan_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Folders of tiny Wan checkpoints by task: "t2v", "i2v" (Wan2.1), "ti2v" (Wan2.2-5B) and
    "a14b-t2v", "a14b-i2v" (Wan2.2-A14B, two experts).

    Built offline in well under a second each; they load through the same `from_pretrained`
    path as a real checkpoint.
    """
    root = tmp_path_factory.mktemp("tiny-wan")
    tasks: tuple[TinyTask, ...] = ("t2v", "i2v", "ti2v", "a14b-t2v", "a14b-i2v")
    return {task: build_tiny_wan(root / task, task) for task in tasks}


@pytest.fixture
def full_filesystem(tmp_path: Path) -> Iterator[Path]:
    """The root of a tiny tmpfs with no byte left: files can be created, not written to."""
    with mounted_tmpfs(tmp_path / "full") as mount_point:
        fill(mount_point)
        yield mount_point


@pytest.fixture
def read_only_filesystem(tmp_path: Path) -> Iterator[Path]:
    """The root of a tiny tmpfs mounted read-only, as the kernel leaves a disk after errors."""
    with mounted_tmpfs(tmp_path / "read-only") as mount_point:
        remount_read_only(mount_point)
        yield mount_point
