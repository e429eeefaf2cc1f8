"""Fixtures for integration tests: tiny random-weight Wan checkpoints, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelforge.engines.tiny import TinyTask, build_tiny_wan


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
