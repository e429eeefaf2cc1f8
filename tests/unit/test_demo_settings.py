"""`make demo` runs its own server whatever the shell exports (the run itself: tests/e2e)."""

from __future__ import annotations

from reelforge.demo import server_env

USER_SHELL = {
    "PATH": "/usr/bin",
    "REELFORGE_API_KEYS": "key1,key2",
    "REELFORGE_API_KEY": "key1",
    "REELFORGE_WORKERS": "0",
    "REELFORGE_HOST": "10.0.0.5",
    "REELFORGE_DATABASE_URL": "postgresql+psycopg://reelforge@db/reelforge",
    "REELFORGE_STORAGE_URL": "file:///srv/videos",
    "REELFORGE_PUBLIC_BASE_URL": "https://videos.example.com",
    "REELFORGE_BASE_URL": "http://gpu-box:8000",
    "REELFORGE_MODELS_FILE": "/etc/reelforge/models.toml",
    "REELFORGE_DEVICE": "cuda",
}


def test_the_demo_server_gets_its_own_key_data_port_and_worker() -> None:
    env = server_env(USER_SHELL, data_dir="/tmp/demo-data", port=8123, api_key="demo-key")

    assert env["REELFORGE_API_KEYS"] == "demo-key"  # the key the demo's client sends
    assert env["REELFORGE_DATA_DIR"] == "/tmp/demo-data"
    assert env["REELFORGE_PORT"] == "8123"
    assert env["REELFORGE_HOST"] == "127.0.0.1"
    assert env["REELFORGE_WORKERS"] == "1"
    assert env["REELFORGE_DATABASE_URL"] == ""  # SQLite in the demo's data dir
    assert env["REELFORGE_STORAGE_URL"] == ""
    assert env["REELFORGE_PUBLIC_BASE_URL"] == ""
    assert "REELFORGE_BASE_URL" not in env


def test_the_demo_keeps_the_users_choice_of_model_and_device() -> None:
    env = server_env(USER_SHELL, data_dir="/tmp/demo-data", port=8123, api_key="demo-key")
    assert env["REELFORGE_MODELS_FILE"] == "/etc/reelforge/models.toml"
    assert env["REELFORGE_DEVICE"] == "cuda"
    assert env["PATH"] == "/usr/bin"
