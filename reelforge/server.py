"""`reelforge serve`: the API server process plus its spawned worker children."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from reelforge.api.app import build_context, build_webhook_dispatcher, create_app
from reelforge.api.http_protocol import GuardedHttpProtocol, configure_limits
from reelforge.jobs import open_store
from reelforge.logs import configure_logging
from reelforge.settings import Settings
from reelforge.startup import check_weights_present, load_registry, open_configured_storage
from reelforge.worker.devices import worker_devices
from reelforge.worker.supervisor import WorkerSupervisor

__all__ = ["app_for_api_process", "log_where", "serve"]

# How `serve` hands its settings to the API processes uvicorn spawns for `api_processes > 1`:
# they start afresh (multiprocessing's spawn), so the settings travel as JSON.
_SETTINGS_VARIABLE = "REELFORGE_SERVE_SETTINGS_JSON"
# prometheus-client's own variable: in each API process it imports, it puts metric values in
# files there, so that a scrape of any process on the port sums them all (`api.metrics`).
_METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

log = logging.getLogger(__name__)


def serve(settings: Settings) -> int:
    """Run the API on settings.host:port with `settings.workers` worker processes."""
    configure_logging(settings)
    registry = load_registry(settings)
    devices = worker_devices(settings.workers, settings.device, settings.cuda_visible_devices)
    if devices:  # an API-only replica needs no weights
        check_weights_present(registry, settings.models_dir)
    storage = open_configured_storage(settings)
    store = open_store(
        settings.resolved_database_url,
        max_attempts=settings.max_attempts,
        **settings.database_options(api=True),
    )
    # After the checks above: a server that cannot start says only why, in one line.
    log_where(settings, [device.label for device in devices])
    ctx = build_context(settings, store, storage, registry)
    # Webhooks go out from the API process, beside the routes, never from a worker.
    ctx.background.append(build_webhook_dispatcher(ctx).run)
    if ctx.auth.open_to_loopback_only:
        log.warning("no API keys configured (REELFORGE_API_KEYS): serving loopback clients only")
    for entry in registry:
        log.info("model %s -> engine %s %s", entry.id, entry.engine, entry.checkpoint or "")

    supervisor = WorkerSupervisor(settings, devices)
    store.on_enqueue = supervisor.wake.set
    ctx.generations.worker_problems = supervisor.problems
    # uvicorn shuts down on SIGTERM and then re-raises the signal; with the default action that
    # would end this process before `finally` stops the workers, leaving them orphaned.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    supervisor.start()
    try:
        if settings.api_processes > 1:
            # Each API process builds its own context from the same settings (its own pool,
            # background loops and event streams; all of them replica-safe). On SQLite workers
            # then learn of new jobs by polling (on PostgreSQL by NOTIFY, as ever), and
            # /healthz of an API process cannot see the supervisor's reports of workers that
            # gave up.
            os.environ[_SETTINGS_VARIABLE] = settings.model_dump_json()
            metrics_dir = tempfile.mkdtemp(prefix="reelforge-metrics-")
            os.environ[_METRICS_DIR_VARIABLE] = metrics_dir
            ctx.close()
            try:
                uvicorn.run(
                    "reelforge.server:app_for_api_process",
                    factory=True,
                    workers=settings.api_processes,
                    **_uvicorn_options(settings),
                )
            finally:
                shutil.rmtree(metrics_dir, ignore_errors=True)
        else:
            uvicorn.run(create_app(ctx), **_uvicorn_options(settings))
    finally:
        log.info("stopping workers: each finishes its job or hands it back")
        # Another Ctrl-C or SIGTERM while they drain: they hand their jobs back at once.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: supervisor.hurry())
        supervisor.stop()
        ctx.close()
        store.engine.dispose()
    return 0


def app_for_api_process() -> FastAPI:
    """The app of one of several API processes (`api_processes > 1`), built from the settings
    `serve` left in the environment."""
    settings = Settings.model_validate_json(os.environ[_SETTINGS_VARIABLE])
    configure_logging(settings)
    _configure_http_limits(settings)
    registry = load_registry(settings)
    store = open_store(
        settings.resolved_database_url,
        max_attempts=settings.max_attempts,
        **settings.database_options(api=True),
    )
    ctx = build_context(settings, store, open_configured_storage(settings), registry)
    ctx.background.append(build_webhook_dispatcher(ctx).run)
    return create_app(ctx, metrics_dir=Path(os.environ[_METRICS_DIR_VARIABLE]))


def _configure_http_limits(settings: Settings) -> None:
    configure_limits(
        header_timeout_s=settings.http_header_timeout_s,
        max_header_bytes=settings.http_max_header_bytes,
        body_timeout_s=settings.http_body_timeout_s,
        body_deadline_s=settings.http_body_deadline_s,
    )


def _uvicorn_options(settings: Settings) -> dict[str, Any]:
    _configure_http_limits(settings)
    return {
        "host": settings.host,
        "port": settings.port,
        # uvicorn's httptools protocol with deadlines for slow clients and a header limit.
        "http": GuardedHttpProtocol,
        "log_level": "info",
        # uvicorn's loggers propagate to ours (one format, `logs.configure_logging`), and the
        # access line is ours (`api.access`: with the request id, route and tenant).
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": 5,
    }


def log_where(settings: Settings, worker_devices: list[str] | None = None) -> None:
    """Log where this server keeps its jobs and listens: a server started from another
    folder or with another environment must not look like one that lost every job."""
    try:
        database = make_url(settings.resolved_database_url).render_as_string(hide_password=True)
    except Exception:  # a malformed URL: opening the store reports it, this line must not
        database = "(a URL that does not parse)"
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    log.info("data dir %s", settings.data_dir.resolve())
    log.info("database %s", database)
    log.info("storage %s", settings.resolved_storage_url)
    # The configured device: resolving "auto" would import torch into the API process.
    count = settings.workers if worker_devices is None else len(worker_devices)
    placed = f" on {', '.join(worker_devices)}" if worker_devices else ""
    log.info("device %s, %s worker process(es)%s", settings.device, count, placed)
    url = f"http://{host}:{settings.port}"
    log.info("listening on %s: studio %s/, API docs %s/docs", url, url, url)
    if settings.metrics != "off":
        log.info("metrics at %s/metrics (%s)", url, settings.metrics)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)
