"""The worker's heartbeat thread: renews the current job's lease and marks the worker alive;
and the worker's row in the registry: its state (idle, running, draining) and current job.

A lease it cannot renew means another worker may now own the job; the thread then sets
`lease_lost`, and the engine's next step callback stops the run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from reelforge.jobs import JobStore, Lease, WorkerState
from reelforge.worker.drain import Drain

__all__ = ["Heartbeat"]

log = logging.getLogger(__name__)


class Heartbeat:
    """Beats every `interval_s` on its own thread until `stop()`."""

    def __init__(
        self,
        store: JobStore,
        worker_id: str,
        lease_seconds: float,
        interval_s: float,
        drain: Drain | None = None,
        gpu_memory: Callable[[], int | None] = lambda: None,
    ) -> None:
        """`gpu_memory()`: the GPU memory this process holds now, reported with each beat."""
        self.store = store
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.interval_s = interval_s
        self.drain = drain
        self.gpu_memory = gpu_memory
        self.lease_lost = threading.Event()
        self._lease: Lease | None = None
        self._lock = threading.Lock()
        # Held while a state is worked out and written, so the last write is the newest state.
        self._state_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval_s + 5)

    def watch(self, lease: Lease | None) -> None:
        """Start renewing `lease` (None: stop renewing the previous one); the worker's row
        says which job it runs."""
        with self._lock:
            self._lease = lease
            self.lease_lost.clear()
        self.report_state()

    def report_state(self) -> None:
        """Write what the worker is doing now (for `/healthz`); a failure is only logged."""
        with self._state_lock:
            with self._lock:
                lease = self._lease
            if self.drain is not None and self.drain.requested:
                state = WorkerState.DRAINING
            else:
                state = WorkerState.IDLE if lease is None else WorkerState.RUNNING
            try:
                self.store.set_worker_state(
                    self.worker_id, state, None if lease is None else lease.job_id
                )
            except Exception as exc:
                log.warning("worker %s could not record state %s: %s", self.worker_id, state, exc)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.beat()

    def beat(self) -> None:
        """One renewal; failures are logged and retried at the next beat, never fatal."""
        with self._lock:
            lease = self._lease
        try:
            self.store.touch_worker(self.worker_id, self.gpu_memory())
            if lease is not None and not self.store.renew_lease(lease, self.lease_seconds):
                log.warning("job %s: lease lost; stopping this run", lease.job_id)
                self.lease_lost.set()
        except Exception:
            log.exception("heartbeat of worker %s failed; will retry", self.worker_id)
