"""Standalone `reelforge worker` processes on one job database, for fault tests and the drain
benchmark: each is a real process (its own data dir, as if on its own host) sharing the
database and the artifact folder, serving one model through the gate fixture engine
(`tests.fixtures.engines.GateEngine`), which steps until the test releases it.

    pool = WorkerPool(tmp_path, database_url)
    a = pool.start(drain_seconds="0")
    job = pool.store.create_job(make_spec())
    pool.wait_started(a)               # a is stepping through the job
    a.signal(signal.SIGTERM)
    assert a.wait_exit(30) == 0
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from reelforge.jobs import JobStore, WorkerInfo, open_engine, open_store

__all__ = [
    "MODEL",
    "WorkerPool",
    "WorkerProcess",
    "freeze_between_writes",
    "job_locked",
    "wait_until",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL = "klingai/v2-master-text-to-video"
START_TIMEOUT_S = 60.0


class Timeout(AssertionError):
    """A condition did not come true before its deadline."""


def wait_until(condition: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Poll `condition` until it returns something truthy; raise `Timeout` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise Timeout(f"timed out after {timeout_s:.0f} s waiting for {what}")


class WorkerProcess:
    """One `python -m reelforge worker` process, its log in its data dir."""

    def __init__(self, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.process = process
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.process.pid

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait_exit(self, timeout_s: float) -> int:
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise Timeout(f"worker {self.pid} still running after {timeout_s:.0f} s") from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a frozen one cannot act on SIGTERM
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()


class WorkerPool:
    """Worker processes on `database_url`; `close` kills any still running."""

    def __init__(self, root: Path, database_url: str, lease_seconds: float = 1.5) -> None:
        self.root = root
        self.database_url = database_url
        self.lease_seconds = lease_seconds
        self.gate = root / "gate"
        self.gate.mkdir(parents=True, exist_ok=True)
        self.artifacts = root / "artifacts"
        self.models_file = root / "models.toml"
        self.models_file.write_text(
            f'[models."{MODEL}"]\n'
            'engine = "tests.fixtures.engines:GateEngine"\n'
            f'checkpoint = "{self.gate}"\n'
        )
        self.store: JobStore = open_store(database_url)
        self.workers: list[WorkerProcess] = []

    def start(self, **settings: str) -> WorkerProcess:
        """Start a worker with extra `REELFORGE_*` settings and wait until it registered."""
        data_dir = self.root / f"worker-{len(self.workers)}"
        data_dir.mkdir()
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "REELFORGE_DATA_DIR": str(data_dir),
            "REELFORGE_DATABASE_URL": self.database_url,
            "REELFORGE_STORAGE_URL": self.artifacts.as_uri(),
            "REELFORGE_MODELS_FILE": str(self.models_file),
            "REELFORGE_LEASE_SECONDS": str(self.lease_seconds),
            "REELFORGE_POLL_INTERVAL_S": "0.05",
            **{f"REELFORGE_{k.upper()}": v for k, v in settings.items()},
        }
        log_path = data_dir / "worker.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "reelforge", "worker"], env=env, stdout=log, stderr=log
            )
        worker = WorkerProcess(process, log_path)
        self.workers.append(worker)

        def registered() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"worker exited with {process.returncode}:\n{worker.log()}")
            return self.info(worker) is not None

        wait_until(registered, START_TIMEOUT_S, f"worker {worker.pid} to register")
        return worker

    def info(self, worker: WorkerProcess) -> WorkerInfo | None:
        """The worker's row in the registry (None once it deregistered)."""
        rows = [w for w in self.store.live_workers(within_s=3600) if w.pid == worker.pid]
        return rows[0] if rows else None

    def started(self) -> list[int]:
        """Pids of the workers whose engine started a run, one entry per worker."""
        return sorted(int(p.name.split("-")[1]) for p in self.gate.glob("started-*"))

    def wait_started(self, worker: WorkerProcess, timeout_s: float = 30.0) -> None:
        wait_until(lambda: worker.pid in self.started(), timeout_s, f"{worker.pid} to start")

    def release(self) -> None:
        """Let every gated run (now and later) finish its steps."""
        (self.gate / "release").touch()

    def freeze(self, worker: WorkerProcess, job_id: str) -> None:
        """SIGSTOP the worker between two of its writes to the job (`freeze_between_writes`)."""
        freeze_between_writes(worker.signal, self.database_url, job_id)

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.store.engine.dispose()

    def logs(self) -> str:
        return "\n".join(f"--- worker {w.pid}\n{w.log()}" for w in self.workers)


def freeze_between_writes(
    send_signal: Callable[[signal.Signals], None],
    database_url: str,
    job_id: str,
    attempts: int = 20,
) -> None:
    """SIGSTOP a worker (through `send_signal`) at a moment it holds no database lock on the
    job: a frozen holder of a lock is another fault, one that would stall every other
    worker's requeue, not only its own job."""
    for _ in range(attempts):
        send_signal(signal.SIGSTOP)
        if not job_locked(database_url, job_id):
            return
        send_signal(signal.SIGCONT)
        time.sleep(0.01)  # not synchronisation: lets the worker finish its write
    raise AssertionError(f"the worker held the lock of job {job_id} every time")


def job_locked(database_url: str, job_id: str) -> bool:
    """Whether another connection holds a lock that a write to the job's row would wait for
    (SQLite: the database's write lock; PostgreSQL: the row's lock)."""
    sqlite = database_url.startswith("sqlite")
    engine = open_engine(database_url, sqlite_busy_timeout_s=0.05)
    try:
        with engine.connect() as conn:
            if sqlite:  # BEGIN IMMEDIATE takes the write lock, or fails in 50 ms
                with conn.execution_options(sqlite_begin="IMMEDIATE").begin():
                    pass
            else:
                with conn.begin():
                    conn.execute(
                        text("SELECT id FROM jobs WHERE id = :id FOR UPDATE NOWAIT"),
                        {"id": job_id},
                    )
        return False
    except OperationalError:
        return True
    finally:
        engine.dispose()
