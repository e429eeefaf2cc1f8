"""`reelforge serve`: the API server process plus its spawned worker children."""

from __future__ import annotations

import logging
import signal
from types import FrameType

import uvicorn
from sqlalchemy.engine import make_url

from reelforge.api.app import build_context, build_webhook_dispatcher, create_app
from reelforge.jobs import open_store
from reelforge.logs import configure_logging
from reelforge.settings import Settings
from reelforge.startup import check_weights_present, load_registry, open_configured_storage
from reelforge.worker.supervisor import WorkerSupervisor

__all__ = ["log_where", "serve"]

log = logging.getLogger(__name__)


def serve(settings: Settings) -> int:
    """Run the API on settings.host:port with `settings.workers` worker processes."""
    configure_logging()
    registry = load_registry(settings)
    if settings.workers > 0:  # an API-only replica needs no weights
        check_weights_present(registry)
    storage = open_configured_storage(settings)
    store = open_store(
        settings.resolved_database_url,
        max_attempts=settings.max_attempts,
        **settings.database_options(api=True),
    )
    # After the checks above: a server that cannot start says only why, in one line.
    log_where(settings)
    ctx = build_context(settings, store, storage, registry)
    # Webhooks go out from the API process, beside the routes, never from a worker.
    ctx.background.append(build_webhook_dispatcher(ctx).run)
    if ctx.auth.open_to_loopback_only:
        log.warning("no API keys configured (REELFORGE_API_KEYS): serving loopback clients only")
    for entry in registry:
        log.info("model %s -> engine %s %s", entry.id, entry.engine, entry.checkpoint or "")

    supervisor = WorkerSupervisor(settings)
    store.on_enqueue = supervisor.wake.set
    ctx.generations.worker_problems = supervisor.problems
    # uvicorn shuts down on SIGTERM and then re-raises the signal; with the default action that
    # would end this process before `finally` stops the workers, leaving them orphaned.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    supervisor.start()
    try:
        uvicorn.run(
            create_app(ctx),
            host=settings.host,
            port=settings.port,
            log_level="info",
            access_log=False,
            timeout_graceful_shutdown=5,
        )
    finally:
        log.info("stopping workers")
        supervisor.stop()
        ctx.close()
        store.engine.dispose()
    return 0


def log_where(settings: Settings) -> None:
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
    log.info("device %s, %d worker process(es)", settings.device, settings.workers)
    log.info("listening on http://%s:%d", host, settings.port)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)
