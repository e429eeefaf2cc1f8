"""Fixtures for integration tests: tiny random-weight Wan checkpoints, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelforge.engines.tiny import build_tiny_wan


@pytest.fixture(scope="session")
def tiny_wan_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Folders of tiny Wan checkpoints by task: "t2v", "i2v" (Wan2.1) and "ti2v" (Wan2.2-5B).

    Built offline in well under a second each; they load through the same `from_pretrained`
    path as a real checkpoint.
    """
    root = tmp_path_factory.mktemp("tiny-wan")
    return {task: build_tiny_wan(root / task, task) for task in ("t2v", "i2v", "ti2v")}
