"""A scaled-out reelforge on one machine, for tests: API replicas (`serve` with no workers)
and standalone `reelforge worker` processes, each with its own data dir as if on its own
host, sharing only a PostgreSQL database and an artifact store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import REPO_ROOT, START_TIMEOUT_S, free_port, wait_for


@dataclass
class Member:
    """One process of the deployment; restartable on the same data dir (and port)."""

    name: str
    command: list[str]
    env: dict[str, str]
    data_dir: Path
    port: int | None = None
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> Member:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        env = {**os.environ, **self.env, "REELFORGE_DATA_DIR": str(self.data_dir)}
        if self.port is not None:
            env["REELFORGE_PORT"] = str(self.port)
        with open(self.log_path, "ab") as log:
            log.write(f"--- start {self.starts} ---\n".encode())
            self.process = subprocess.Popen(
                [sys.executable, "-m", "reelforge", *self.command],
                env=env,
                stdout=log,
                stderr=log,
            )
        return self

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.name}.log"

    def log(self, tail: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:] if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL, and reap it."""
        if self.alive():
            assert self.process is not None
            self.process.kill()
            self.process.wait()

    def stop(self, timeout_s: float = 30) -> int | None:
        if self.process is None:
            return None
        if self.alive():
            self.process.send_signal(signal.SIGCONT)  # a frozen process cannot stop
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@dataclass
class Deployment:
    """N API replicas and M workers over one database and one store (`shared_env`)."""

    root: Path
    shared_env: dict[str, str]
    members: list[Member] = field(default_factory=list)

    def _env(self, extra: dict[str, str]) -> dict[str, str]:
        return {"PYTHONPATH": str(REPO_ROOT), **self.shared_env, **extra}

    def api(self, name: str, **settings: str) -> Member:
        env = self._env({"REELFORGE_WORKERS": "0", **_settings(settings)})
        member = Member(name, ["serve"], env, self.root / name / "data", port=free_port())
        self.members.append(member)
        member.start()
        wait_for(lambda: self.answers(member), START_TIMEOUT_S, f"{name} to listen")
        return member

    def worker(self, name: str, **settings: str) -> Member:
        member = Member(name, ["worker"], self._env(_settings(settings)), self.root / name / "data")
        self.members.append(member)
        return member.start()

    def answers(self, member: Member) -> bool:
        if not member.alive():
            code = member.process.returncode if member.process else None
            pytest.fail(f"{member.name} exited with {code}:\n{member.log()}")
        try:  # any answer: an API replica without workers is not "healthy" on its own
            httpx.get(member.base_url + "/healthz", timeout=2)
            return True
        except httpx.TransportError:
            return False

    def close(self) -> None:
        for member in self.members:
            member.stop()


def _settings(settings: dict[str, str]) -> dict[str, str]:
    return {f"REELFORGE_{key.upper()}": str(value) for key, value in settings.items()}
