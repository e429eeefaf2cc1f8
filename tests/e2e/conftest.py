"""A real `reelforge serve` process on loopback, driven by real clients."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from reelforge.jobs import JobStore, open_store
from tests.conftest import wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


TESTSRC_REGISTRY = REPO_ROOT / "tests" / "fixtures" / "testsrc.toml"


@dataclass
class LiveServer:
    """One server process (API + spawned workers) on a free loopback port."""

    data_dir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait_ready: bool = True) -> LiveServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / f"server-{time.monotonic_ns()}.log"
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "REELFORGE_DATA_DIR": str(self.data_dir),
            "REELFORGE_PORT": str(self.port),
            # The test pattern unless a test names another registry (the embedded default,
            # the micro model, has its own end-to-end test).
            "REELFORGE_MODELS_FILE": str(TESTSRC_REGISTRY),
            # A job still running at teardown is handed back soon, well within `stop`'s wait.
            "REELFORGE_DRAIN_SECONDS": "5",
            **self.env,
        }
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "reelforge", "serve"], env=env, stdout=log, stderr=log
            )
        wait_for(self._listening, START_TIMEOUT_S, "the server to listen")
        if wait_ready:
            wait_for(self.healthy, START_TIMEOUT_S, "a worker to be ready")
        return self

    def _listening(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            pytest.fail(f"server exited with {self.process.returncode}:\n{self.log()}")
        try:
            httpx.get(self.base_url + "/healthz", timeout=2)
            return True
        except httpx.TransportError:
            return False

    def healthy(self) -> bool:
        return httpx.get(self.base_url + "/healthz", timeout=5).status_code == 200

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:] if self.log_path else ""

    def store(self) -> JobStore:
        """Direct access to the server's database, for checks the API does not expose."""
        return open_store(f"sqlite:///{self.data_dir / 'reelforge.db'}")


class ServerPool:
    """Starts servers with extra `REELFORGE_*` settings and stops them all at `close`."""

    def __init__(self, default_data_dir: Path) -> None:
        self.default_data_dir = default_data_dir
        self.servers: list[LiveServer] = []

    def start(
        self, data_dir: Path | None = None, wait_ready: bool = True, **settings: str
    ) -> LiveServer:
        env = {f"REELFORGE_{k.upper()}": str(v) for k, v in settings.items()}
        server = LiveServer(data_dir or self.default_data_dir, env)
        self.servers.append(server)
        return server.start(wait_ready=wait_ready)

    def close(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Start servers with extra `REELFORGE_*` settings; all are stopped after the test."""
    pool = ServerPool(tmp_path / "data")
    yield pool.start
    pool.close()


@pytest.fixture(scope="module")
def module_server_factory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., LiveServer]]:
    """As `server_factory`, for a server that every test of a module shares (a server start
    costs seconds; a model load more): all are stopped after the module. Only for tests that
    each make and check their own generations and leave the server as they found it."""
    pool = ServerPool(tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]) / "data")
    yield pool.start
    pool.close()


@pytest.fixture(scope="module")
def live_server(module_server_factory: Callable[..., LiveServer]) -> LiveServer:
    """A server on the embedded defaults (testsrc engine, SQLite, local files), shared by the
    tests of a module."""
    return module_server_factory()
