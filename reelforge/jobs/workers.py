"""The worker registry: which workers are live, what they serve and what they are doing.

Each worker writes its own row (`workers` table): at start-up, at every heartbeat (`seen_at`),
when it claims or finishes a job and when it starts draining; `/healthz`, creates (is any
worker serving this model?) and ETAs read it. A `JobStore` is a `WorkerRegistry`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine, select

from reelforge.jobs.db import reading
from reelforge.jobs.schema import workers

__all__ = ["WorkerInfo", "WorkerRegistry", "WorkerState"]


class WorkerState(StrEnum):
    IDLE = "idle"
    """Waiting for a job."""
    RUNNING = "running"
    """Running `current_job_id`."""
    DRAINING = "draining"
    """Asked to stop: claims nothing more, finishes (or hands back) `current_job_id`, exits."""


@dataclass(frozen=True)
class WorkerInfo:
    id: str
    models: list[str]
    host: str
    pid: int
    started_at: float
    seen_at: float
    device: str = ""
    state: WorkerState = WorkerState.IDLE
    current_job_id: str | None = None
    gpu_memory_bytes: int | None = None


class WorkerRegistry:
    """The `workers` table's reads and writes; mixed into `JobStore`, whose engine and
    database clock it uses."""

    engine: Engine
    _now: Any

    def register_worker(
        self, worker_id: str, models: Iterable[str], host: str, pid: int, device: str = ""
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(workers.delete().where(workers.c.id == worker_id))
            conn.execute(
                workers.insert().values(
                    id=worker_id,
                    models=json.dumps(list(models)),
                    host=host,
                    pid=pid,
                    started_at=self._now,
                    seen_at=self._now,
                    device=device,
                    state=WorkerState.IDLE.value,
                    current_job_id=None,
                )
            )

    def touch_worker(self, worker_id: str, gpu_memory_bytes: int | None = None) -> None:
        """The worker's heartbeat: it is alive, and holds this much GPU memory (None: no GPU)."""
        with self.engine.begin() as conn:
            conn.execute(
                workers.update()
                .where(workers.c.id == worker_id)
                .values(seen_at=self._now, gpu_memory_bytes=gpu_memory_bytes)
            )

    def set_worker_state(
        self, worker_id: str, state: WorkerState, current_job_id: str | None
    ) -> None:
        """Record what the worker is doing now (also a sign of life)."""
        with self.engine.begin() as conn:
            conn.execute(
                workers.update()
                .where(workers.c.id == worker_id)
                .values(state=state.value, current_job_id=current_job_id, seen_at=self._now)
            )

    def remove_worker(self, worker_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(workers.delete().where(workers.c.id == worker_id))

    def live_workers(self, within_s: float) -> list[WorkerInfo]:
        """Workers that reported in the last `within_s` seconds: one read of a table with a
        row per worker, cheap enough for `/healthz`, which is polled."""
        query = select(workers).where(workers.c.seen_at >= self._now - within_s)
        with reading(self.engine) as conn:
            rows = conn.execute(query).all()
        return [
            WorkerInfo(
                id=r.id,
                models=json.loads(r.models),
                host=r.host,
                pid=r.pid,
                started_at=r.started_at,
                seen_at=r.seen_at,
                device=r.device,
                state=WorkerState(r.state),
                current_job_id=r.current_job_id,
                gpu_memory_bytes=r.gpu_memory_bytes,
            )
            for r in rows
        ]
