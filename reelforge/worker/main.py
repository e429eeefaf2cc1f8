"""Worker process entry points: `reelforge worker` (standalone) and the child `serve` spawns."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import sys
import threading
from typing import Any

from reelforge.errors import ConfigurationError
from reelforge.jobs import JobStore, open_store, translate_db_error
from reelforge.jobs.notify import JobNotifications
from reelforge.jobs.recovery import LeaseRecovery
from reelforge.logs import configure_logging, job_context
from reelforge.settings import Settings
from reelforge.startup import check_weights_present, load_registry, open_configured_storage
from reelforge.worker.devices import WorkerDevice, gpu_memory_probe, pin_device, pin_process
from reelforge.worker.drain import Drain
from reelforge.worker.heartbeat import Heartbeat
from reelforge.worker.runner import JobRunner, load_engines, wait_for_work

__all__ = ["run_worker", "worker_loop"]

log = logging.getLogger(__name__)


def run_worker(settings: Settings) -> int:
    """Run one worker in this process until SIGINT or SIGTERM, which drain it (see
    `worker.drain`); returns the exit code."""
    configure_logging(settings)
    device = pin_device(settings.device, settings.cuda_visible_devices)
    pin_process(device)
    drain = Drain(settings.drain_seconds)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: drain.request())
    worker_loop(settings, drain, device=device)
    return 0


EXIT_CONFIGURATION = 78  # EX_CONFIG of sysexits.h: the supervisor does not restart it


def spawned_worker_main(
    settings: Settings, wake: Any, problems: Any = None, device: WorkerDevice | None = None
) -> None:
    """Target of the child process `serve` spawns: a worker woken by the API on new jobs,
    on `device` (its own GPU with `workers=auto`), drained by SIGTERM.

    A `ConfigurationError` (a model that cannot load) goes to `problems`, a queue the
    supervisor reads for `/healthz`, and ends the process with `EXIT_CONFIGURATION`.
    """
    configure_logging(settings)
    if device is not None:
        pin_process(device)  # first: nothing in this process has started CUDA yet
    drain = Drain(settings.drain_seconds)
    signal.signal(signal.SIGTERM, lambda *_: drain.request())
    # Ctrl-C in a terminal reaches the whole process group; the parent stops us in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _stop_when_orphaned(drain)
    try:
        worker_loop(settings, drain, wake, device)
    except ConfigurationError as exc:
        log.error("worker cannot start: %s", exc.message)
        if problems is not None:
            problems.put(exc.message)
        sys.exit(EXIT_CONFIGURATION)


def _stop_when_orphaned(drain: Drain, check_every_s: float = 1.0) -> None:
    """Drain this worker if the `serve` parent dies without stopping us (e.g. it was
    SIGKILLed).

    An orphan would otherwise keep claiming jobs with nobody supervising it.
    """
    parent = os.getppid()

    def watch() -> None:
        while not drain.wait(check_every_s):
            if os.getppid() != parent:
                log.warning("the serve process %s is gone; stopping this worker", parent)
                drain.request()

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def worker_loop(
    settings: Settings, drain: Drain, wake: Any = None, device: WorkerDevice | None = None
) -> None:
    """Load the engines, then claim and run jobs one at a time until a drain is requested
    (the running job then has `drain.grace_s` to finish)."""
    device = device or pin_device(settings.device, settings.cuda_visible_devices)
    registry = load_registry(settings)
    check_weights_present(registry, settings.models_dir)
    storage = open_configured_storage(settings)
    store = open_store(
        settings.resolved_database_url,
        max_attempts=settings.max_attempts,
        **settings.database_options(),
    )
    worker_id = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
    engines = load_engines(registry, device.torch_device)
    models = list(engines)
    if wake is not None:
        # On SQLite, a job this worker hands back (or requeues) wakes its siblings at once
        # (PostgreSQL announces it to every host by NOTIFY as well).
        store.on_enqueue = wake.set

    heartbeat = Heartbeat(
        store,
        worker_id,
        settings.lease_seconds,
        settings.heartbeat_interval_s,
        drain,
        gpu_memory=gpu_memory_probe(device.torch_device),
    )
    recovery = LeaseRecovery(store, settings.lease_recovery_interval_s)
    notifications = _listen_for_jobs(settings, store, models)
    if notifications is not None:
        # Before registering: once /healthz shows this worker, a create wakes it.
        notifications.start()
        wake = notifications.wake
    label = _device_label(device)
    store.register_worker(worker_id, models, socket.gethostname(), os.getpid(), label)
    heartbeat.start()
    recovery.start_thread()
    stopped = threading.Event()  # set by this thread only, never by a signal handler
    noticed = threading.Thread(
        target=_report_draining,
        args=(drain, heartbeat, stopped),
        name="drain-notice",
        daemon=True,
    )
    noticed.start()
    runner = JobRunner(
        store,
        storage,
        registry,
        engines,
        heartbeat,
        drain=drain,
        video_preset=settings.video_preset,
    )
    log.info(
        "worker %s ready for %s on %s%s (%s)",
        worker_id,
        ", ".join(models),
        label,
        _torch_threads(),
        _how_woken(notifications, wake, settings.poll_interval_s),
    )
    try:
        while not drain.requested:
            try:
                lease = store.claim_next_job(worker_id, models, settings.lease_seconds)
            except Exception as exc:
                outage = translate_db_error(exc)
                if outage is None:
                    log.exception("worker %s could not claim; retrying", worker_id)
                else:  # an expected outage: one line per attempt, not a traceback
                    log.warning("worker %s could not claim: %s", worker_id, outage.message)
                lease = None
            if lease is None:
                wait_for_work(wake, drain, settings.poll_interval_s)
                continue
            with job_context(lease.job_id):
                log.info("job %s: claimed (attempt %d)", lease.job_id, lease.job.attempts)
            runner.run(lease)
    finally:
        stopped.set()  # ends the drain-notice thread (the row is removed next)
        noticed.join()
        if notifications is not None:
            notifications.stop()
        recovery.stop_thread()
        heartbeat.stop()
        store.remove_worker(worker_id)
        store.engine.dispose()
        log.info("worker %s stopped", worker_id)


def _listen_for_jobs(
    settings: Settings, store: JobStore, models: list[str]
) -> JobNotifications | None:
    """The worker's LISTEN connection on PostgreSQL (None on SQLite, or when turned off)."""
    if store.engine.dialect.name != "postgresql" or not settings.listen_for_jobs:
        return None
    return JobNotifications(
        store.engine, models, connect_timeout_s=settings.database_connect_timeout_s
    )


def _how_woken(notifications: JobNotifications | None, wake: Any, poll_s: float) -> str:
    if notifications is not None:
        return f"woken by NOTIFY, else polling every {poll_s:g} s"
    if wake is not None:
        return f"woken by serve on new jobs, else polling every {poll_s:g} s"
    return f"polling every {poll_s:g} s"


def _report_draining(drain: Drain, heartbeat: Heartbeat, stopped: threading.Event) -> None:
    """Show `draining` in the registry as soon as a drain is requested: the request comes in
    a signal handler, which must not touch the database."""
    while not stopped.is_set():
        if drain.wait(0.5):
            heartbeat.report_state()
            return


def _torch_threads() -> str:
    """ ", N torch thread(s)" as the engines left torch's intra-op pool (the micro engine sets
    one per worker); empty when no engine imported torch."""
    torch = sys.modules.get("torch")
    return "" if torch is None else f", {torch.get_num_threads()} torch thread(s)"


def _device_label(device: WorkerDevice) -> str:
    """The device as `/healthz` shows it; `auto` as the engines resolved it (they have
    loaded, so this imports nothing)."""
    if device.torch_device != "auto":
        return device.label
    torch = sys.modules.get("torch")
    return "cuda" if torch is not None and torch.cuda.is_available() else "cpu"
