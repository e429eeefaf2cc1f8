"""Where a server keeps its data, and what it says about it at start-up."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from reelforge.server import log_where
from reelforge.settings import Settings


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh home directory, with no data-dir variable set."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("REELFORGE_DATA_DIR", "XDG_DATA_HOME", "REELFORGE_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    return home


def test_the_data_dir_is_per_user_whichever_folder_serve_starts_in(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = []
    for folder in ("project", "elsewhere"):
        (tmp_path / folder).mkdir()
        monkeypatch.chdir(tmp_path / folder)
        settings = Settings()
        seen.append((settings.data_dir, settings.resolved_database_url))
    expected = home / ".local" / "share" / "reelforge"
    assert seen[0] == seen[1] == (expected, f"sqlite:///{expected / 'reelforge.db'}")


def test_the_data_dir_follows_xdg_data_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    assert Settings().data_dir == home / "data" / "reelforge"


def test_a_relative_xdg_data_home_is_ignored(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", "relative/data")  # the XDG spec: ignore it
    assert Settings().data_dir == home / ".local" / "share" / "reelforge"


def test_the_data_dir_variable_still_wins_and_a_tilde_is_expanded(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("REELFORGE_DATA_DIR", "~/videos")
    assert Settings().data_dir == home / "videos"


def test_serve_logs_where_its_data_lives_and_hides_the_database_password(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url="postgresql+psycopg://reelforge:s3cret@db.internal/jobs",
        host="0.0.0.0",
        port=9000,
        device="cuda",
        workers=2,
    )
    with caplog.at_level(logging.INFO, logger="reelforge.server"):
        log_where(settings)
    text = caplog.text
    assert f"data dir {tmp_path / 'data'}" in text
    assert "database postgresql+psycopg://reelforge:***@db.internal/jobs" in text
    assert "s3cret" not in text
    assert f"storage {(tmp_path / 'data' / 'artifacts').as_uri()}" in text
    assert "device cuda, 2 worker process(es)" in text
    assert "listening on http://0.0.0.0:9000" in text


def test_serve_logs_the_embedded_database_and_an_ipv6_address(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(data_dir=tmp_path, host="::1", port=8000)
    with caplog.at_level(logging.INFO, logger="reelforge.server"):
        log_where(settings)
    assert f"database sqlite:///{tmp_path / 'reelforge.db'}" in caplog.text
    assert "listening on http://[::1]:8000" in caplog.text
