"""Starts worker child processes for `serve` and restarts any that die."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import queue
import threading
import time
from multiprocessing.context import SpawnProcess
from typing import Any

from reelforge.settings import Settings
from reelforge.worker.backoff import HEALTHY_UPTIME_S, RestartBackoff
from reelforge.worker.devices import WorkerDevice
from reelforge.worker.main import EXIT_CONFIGURATION, spawned_worker_main

__all__ = ["WorkerSupervisor"]

log = logging.getLogger(__name__)

_CHECK_EVERY_S = 0.5
STOP_MARGIN_S = 15.0
"""What a drained worker may take past its drain period before it is killed: finishing the
engine step it is in, or encoding and storing a job whose engine is done, and deregistering."""


class WorkerSupervisor:
    """Keeps one spawned worker process per entry of `devices` alive until `stop()`.

    Spawn (not fork): a worker imports torch and CUDA, which must not inherit the API
    process's threads and sockets. A child that keeps dying is restarted with a growing
    delay, so a broken model does not spin the CPU; one that ran for `healthy_uptime_s`
    before it died starts that delay over (see `RestartBackoff`).
    """

    def __init__(
        self,
        settings: Settings,
        devices: list[WorkerDevice],
        healthy_uptime_s: float = HEALTHY_UPTIME_S,
    ) -> None:
        self.settings = settings
        self.devices = devices
        self._context = multiprocessing.get_context("spawn")
        self.wake: Any = self._context.Event()
        # Why workers gave up (a model that cannot load): read by /healthz and by creates.
        self._problem_queue: Any = self._context.Queue()
        self._problems: list[str] = []
        self._given_up = [False] * len(devices)
        self._processes: list[SpawnProcess | None] = [None] * len(devices)
        self._backoffs = [RestartBackoff(healthy_uptime_s) for _ in devices]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)

    def start(self) -> None:
        for slot in range(len(self._processes)):
            self._start(slot)
        self._thread.start()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._processes if p is not None and p.pid is not None]

    def _start(self, slot: int) -> None:
        process = self._context.Process(
            target=spawned_worker_main,
            args=(self.settings, self.wake, self._problem_queue, self.devices[slot]),
            name=f"reelforge-worker-{slot}",
            daemon=False,
        )
        process.start()
        self._backoffs[slot].started(time.monotonic())
        self._processes[slot] = process
        log.info(
            "started worker process %s (pid %s) on %s",
            process.name,
            process.pid,
            self.devices[slot].label,
        )

    def problems(self) -> list[str]:
        """Why worker processes gave up for good (empty while all are fine)."""
        self._collect_problems()
        return list(self._problems)

    def _collect_problems(self) -> None:
        with contextlib.suppress(queue.Empty):
            while True:
                problem = self._problem_queue.get_nowait()
                if problem not in self._problems:
                    self._problems.append(problem)

    def _watch(self) -> None:
        next_start = [0.0] * len(self._processes)
        while not self._stop.wait(_CHECK_EVERY_S):
            for slot, process in enumerate(self._processes):
                if process is None or process.is_alive() or self._given_up[slot]:
                    continue
                if process.exitcode == EXIT_CONFIGURATION:
                    # Restarting would fail the same way; the reason stays for /healthz.
                    self._given_up[slot] = True
                    self._collect_problems()
                    log.error("worker process %s cannot start; not restarting it", process.name)
                    continue
                if next_start[slot] == 0.0:
                    delay = self._backoffs[slot].delay_after_exit(time.monotonic())
                    # Exit 0: it was drained (SIGTERM to that one child, a rolling restart).
                    log.log(
                        logging.INFO if process.exitcode == 0 else logging.ERROR,
                        "worker process %s exited with code %s; restarting in %.1f s",
                        process.name,
                        process.exitcode,
                        delay,
                    )
                    next_start[slot] = time.monotonic() + delay
                if time.monotonic() >= next_start[slot] and not self._stop.is_set():
                    next_start[slot] = 0.0
                    self._start(slot)

    def hurry(self) -> None:
        """Tell draining workers to hand their jobs back now (a second SIGTERM each)."""
        for process in self._processes:
            if process is not None and process.is_alive():
                process.terminate()

    def stop(self, timeout_s: float | None = None) -> None:
        """Drain every worker (SIGTERM: each finishes or hands back its job within
        `drain_seconds`), then kill any still running `timeout_s` later (default: the drain
        period and `STOP_MARGIN_S`)."""
        if timeout_s is None:
            timeout_s = self.settings.drain_seconds + STOP_MARGIN_S
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        for process in self._processes:
            if process is not None and process.is_alive():
                process.terminate()
        deadline = time.monotonic() + timeout_s
        for process in self._processes:
            if process is None:
                continue
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("worker %s did not stop in time; killing it", process.name)
                process.kill()
                process.join()
        self._problem_queue.close()
        self._problem_queue.cancel_join_thread()
