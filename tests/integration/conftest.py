"""Fixtures for integration tests: the tiny random-weight Wan checkpoints by task; real full
and read-only filesystems; a keyed API's parts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reelforge.jobs import open_store
from reelforge.settings import Settings
from reelforge.tenancy.keys import KeyStore
from tests.conftest import TinyCheckpoints
from tests.fixtures.filesystems import fill, mounted_tmpfs, remount_read_only
from tests.integration.keyed_api import Parts

# The Wan layouts (`reelforge.testing.tiny.TinyTask`) and the architectures that have them.
WAN_TASKS = {
    "t2v": "wan2.1-t2v",
    "i2v": "wan2.1-i2v",
    "ti2v": "wan2.2-ti2v",
    "a14b-t2v": "wan2.2-a14b-t2v",
    "a14b-i2v": "wan2.2-a14b-i2v",
}


@pytest.fixture(scope="session")
def tiny_wan_checkpoints(tiny_checkpoints: TinyCheckpoints) -> dict[str, Path]:
    """Folders of tiny Wan checkpoints by task: "t2v", "i2v" (Wan2.1), "ti2v" (Wan2.2-5B) and
    "a14b-t2v", "a14b-i2v" (Wan2.2-A14B, two experts).

    Built offline in well under a second each (once per session, shared with every layer's
    tests); they load through the same `from_pretrained` path as a real checkpoint.
    """
    return {task: tiny_checkpoints[arch] for task, arch in WAN_TASKS.items()}


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


@pytest.fixture
def parts(tmp_path: Path, database_url: str) -> Iterator[Parts]:
    """A keyed API's settings, job store and key store (tests/integration/keyed_api.py), once
    on SQLite and once on PostgreSQL (where quotas take their per-tenant advisory lock)."""
    settings = Settings(data_dir=tmp_path, database_url=database_url)
    store = open_store(settings.resolved_database_url)
    yield settings, store, KeyStore(store.engine)
    store.engine.dispose()
