"""The FastAPI application: routers for each dialect, one error handler, request ids."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI

from reelforge import __version__
from reelforge.api.access import AccessMiddleware
from reelforge.api.admin import build_admin_router
from reelforge.api.aimlapi.poll import PollRoute
from reelforge.api.aimlapi.render import render_generation
from reelforge.api.aimlapi.router import DIALECT as AIMLAPI
from reelforge.api.aimlapi.router import PATHS as AIMLAPI_PATHS
from reelforge.api.aimlapi.router import build_aimlapi_router
from reelforge.api.auth import Authenticator, Principal
from reelforge.api.context import ApiContext
from reelforge.api.dbgate import DatabaseGate
from reelforge.api.errors import install_error_handlers
from reelforge.api.files import (
    FileSigner,
    build_files_router,
    build_links,
    load_or_create_secret,
)
from reelforge.api.images import ImageIntake, ImagePolicy
from reelforge.api.kling.protocol import DIALECT as KLING
from reelforge.api.kling.render import kling_error_body
from reelforge.api.kling.router import KIND_PATHS as KLING_PATHS
from reelforge.api.kling.router import build_kling_router, render_job
from reelforge.api.metrics import HttpMetrics, build_metrics_router
from reelforge.api.middleware import LoopbackBrowserGuard, RequestIdMiddleware
from reelforge.api.openai.render import openai_error_body, render_video, render_webhook_event
from reelforge.api.openai.router import DIALECT as OPENAI
from reelforge.api.openai.router import PREFIX as OPENAI_PREFIX
from reelforge.api.openai.router import build_openai_router
from reelforge.api.openapi import install_openapi
from reelforge.api.pages import build_pages_router
from reelforge.api.system import build_system_router
from reelforge.api.usage import build_usage_router
from reelforge.engines import Registry
from reelforge.jobs import Job, JobStore, translate_db_error
from reelforge.jobs.loopread import loop_reader_for
from reelforge.jobs.recovery import LeaseRecovery
from reelforge.jobs.store import Admission
from reelforge.jobs.webhooks import WebhookOutbox
from reelforge.net import OutboundPolicy
from reelforge.service import Generations, RetentionSweeper
from reelforge.service.streams import EventStreams
from reelforge.settings import Settings
from reelforge.storage import Storage
from reelforge.tenancy.keys import KeyStore
from reelforge.tenancy.limits import RateLimiter, admission
from reelforge.tenancy.ring import KeyRing
from reelforge.webhooks import (
    Envelope,
    Renderer,
    RetrySchedule,
    WebhookDispatcher,
    WebhookSigner,
    load_or_create_webhook_secret,
    whole_body,
)

__all__ = ["build_context", "build_webhook_dispatcher", "create_app", "webhook_renderers"]

log = logging.getLogger(__name__)


def build_context(
    settings: Settings, store: JobStore, storage: Storage, registry: Registry
) -> ApiContext:
    # One guard for every URL a client names: input images and webhooks.
    outbound = OutboundPolicy(
        settings.outbound_networks,
        setting="REELFORGE_ALLOW_PRIVATE_URLS (or REELFORGE_OUTBOUND_ALLOW_NETWORKS)",
    )
    images = ImageIntake(
        ImagePolicy(
            max_bytes=settings.image_max_bytes,
            max_pixels=settings.image_max_pixels,
            timeout_s=settings.image_fetch_timeout_s,
            outbound=outbound,
            fetch_concurrency=settings.image_fetch_concurrency,
            decode_budget_pixels=settings.image_decode_budget_pixels,
        )
    )
    db = DatabaseGate(
        settings.database_timeout_s,
        settings.api_database_threads,
        translate_db_error,
        serialize_writes=store.engine.dialect.name == "sqlite",
    )
    keys = KeyStore(store.engine)
    ring = KeyRing(keys)
    ring.refresh()  # the keys in force from the first request on
    limiter = RateLimiter(store.engine)

    async def rate_limit(principal: Principal) -> None:
        if principal.limits is not None and principal.limits.rate_per_minute is not None:
            await db.run(limiter.hit, principal.tenant, principal.limits.rate_per_minute)

    def quotas(tenant: str) -> Admission | None:
        limits = ring.limits_for(tenant)
        return admission(tenant, limits) if limits is not None else None

    generations = Generations(
        store=store,
        storage=storage,
        db=db,
        images=images,
        outbound=outbound,
        retention_s=settings.retention_s,
        lease_seconds=settings.lease_seconds,
        # How long a create may take before a retry with its idempotency key takes over:
        # the image fetch, its staging and the insert, each under its own deadline.
        in_flight_limit_s=settings.image_fetch_timeout_s + 2 * settings.database_timeout_s + 30,
        worker_problems=list,
        admission=quotas,
        loop_reader=loop_reader_for(
            store.engine,
            deadline_s=settings.database_timeout_s,
            connect_timeout_s=settings.database_connect_timeout_s,
            statement_timeout_s=settings.database_statement_timeout_s,
        ),
    )
    signer = FileSigner(
        load_or_create_secret(settings.url_signing_secret, settings.data_dir),
        settings.file_url_ttl_s,
    )
    return ApiContext(
        settings=settings,
        store=store,
        storage=storage,
        registry=registry,
        # Keyless (loopback clients only) when the server has no credentials of any kind.
        auth=Authenticator(
            settings.api_keys,
            keyless=not settings.api_keys and not settings.kling_keys,
            ring=ring,
            rate_limit=rate_limit,
        ),
        keys=keys,
        signer=signer,
        links=build_links(settings.public_links, storage, signer),
        images=images,
        db=db,
        generations=generations,
        background=[
            RetentionSweeper(generations, settings.sweep_interval_s).run,
            # Lost workers' jobs come back even where no worker runs beside this API.
            LeaseRecovery(store, settings.lease_recovery_interval_s).run,
            ring.run,
            limiter.run,
        ],
        streams=EventStreams(
            generations,
            limit=settings.event_stream_limit,
            poll_interval_s=settings.event_stream_poll_interval_s,
        ),
    )


def build_webhook_dispatcher(ctx: ApiContext) -> WebhookDispatcher:
    """The webhook dispatcher of this API process, for `ctx.background` (`serve` runs it)."""
    settings = ctx.settings
    return WebhookDispatcher(
        WebhookOutbox(ctx.store.engine),
        renderers=webhook_renderers(ctx),
        envelopes=webhook_envelopes(),
        signer=WebhookSigner(
            load_or_create_webhook_secret(settings.webhook_secret, settings.data_dir)
        ),
        policy=ctx.generations.outbound,
        schedule=RetrySchedule(settings.webhook_retry_schedule_s),
        timeout_s=settings.webhook_timeout_s,
        poll_interval_s=settings.webhook_poll_interval_s,
        concurrency=settings.webhook_concurrency,
    )


def webhook_renderers(ctx: ApiContext) -> dict[str, Renderer]:
    """Each dialect's generation object, by dialect name, for webhook bodies: a new dialect
    adds its renderer here. With no request to take an address from, file links use
    `public_base_url`, else this server's own address."""
    settings = ctx.settings
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    base = ctx.base_url(f"http://{host}:{settings.port}")

    def aimlapi(job: Job) -> dict[str, object]:
        # As a poll answers: a finished job's ETA is 0; a job at an earlier event has no
        # "now" to guess from in a body fixed for every retry, so none.
        eta = 0.0 if job.terminal else None
        return render_generation(job, None, lambda key: ctx.links.url(base, key), eta)

    def kling(job: Job) -> dict[str, object]:
        return render_job(ctx, job, base)

    return {AIMLAPI: aimlapi, KLING: kling, OPENAI: render_video}


def webhook_envelopes() -> dict[str, Envelope]:
    """The webhook body of each dialect whose receivers expect other than the Standard
    Webhooks `{"type", "timestamp", "data"}` (`webhooks.dispatcher.standard_envelope`)."""
    # Kling's callback body is the task object itself, as its query returns it.
    return {OPENAI: render_webhook_event, KLING: whole_body}


def _job_exists(ctx: ApiContext) -> Callable[[str], Awaitable[bool]]:
    """Whether a generation still exists (the files route binds links to it)."""

    async def exists(job_id: str) -> bool:
        return await ctx.db.run(lambda: ctx.store.get_job(job_id) is not None)

    return exists


def create_app(ctx: ApiContext, metrics_dir: Path | None = None) -> FastAPI:
    """The app of one API process; `metrics_dir`: the multiprocess-mode folder its request
    metrics share with the other API processes on its port (see `api.metrics`)."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(loop(), name=loop.__qualname__) for loop in ctx.background]
        # Everything built so far (modules, the app, its routes) lives as long as the process:
        # out of the collector's sight, a full collection no longer walks it, which under load
        # stalled every request for tens of milliseconds (the polls' p99).
        gc.freeze()
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if ctx.generations.loop_reader is not None:
                await ctx.generations.loop_reader.aclose()

    # The docs pages are ours (api/pages.py), from files in the package instead of a CDN.
    app = FastAPI(
        title="reelforge",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served by api/pages.py, under the access rule REELFORGE_DOCS says
        # FastAPI's own OpenTelemetry hooks look up the global providers on every request
        # (3 % of a poll); requests are measured by `api.access` and `api.metrics` instead.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    # Routes match in this order: a dialect with literal paths under /v1/videos (Kling's
    # text2video, image2video) goes before the OpenAI router, whose /v1/videos/{video_id}
    # would claim them; so does its error renderer's prefix (the first match wins).
    routers = [
        # The AI/ML API's first: its polls are the hottest path, and routes match in turn.
        build_aimlapi_router(ctx),
        # Kling's before OpenAI's: their literal `/v1/videos/text2video` and `.../image2video`
        # must match before `/v1/videos/{id}` (FastAPI takes the first match).
        build_kling_router(ctx),
        build_openai_router(ctx),
        build_system_router(ctx),
        build_admin_router(ctx),
        build_usage_router(ctx),
        build_files_router(ctx.storage, ctx.signer, job_exists=_job_exists(ctx)),
        build_pages_router(
            key_required=lambda: not ctx.auth.open_to_loopback_only,
            title=app.title,
            openapi=lambda: app.openapi(),
            docs_access=ctx.settings.docs,
            reader=ctx.auth.reader,
        ),
    ]
    http_metrics = None if ctx.settings.metrics == "off" else HttpMetrics(metrics_dir)
    if http_metrics is not None:
        routers.append(build_metrics_router(ctx, http_metrics))
    install_error_handlers(
        app,
        routers,
        renderers=[
            *((path, kling_error_body) for path in KLING_PATHS.values()),
            (OPENAI_PREFIX, openai_error_body),
        ],
    )
    install_openapi(app, ctx.registry.ids, key_required=lambda: not ctx.auth.open_to_loopback_only)
    # Keyless now: the guard, for as long as the server stays keyless (a managed key made
    # while it runs ends that mode for good: revoked keys count too).
    if ctx.auth.open_to_loopback_only:
        public_host = urlsplit(ctx.settings.public_base_url).hostname
        app.add_middleware(
            LoopbackBrowserGuard,
            allowed_hosts=frozenset([public_host] if public_host else []),
            active=lambda: ctx.auth.open_to_loopback_only,
        )
    # Outside the guard, so that its refusals are counted and logged too.
    app.add_middleware(AccessMiddleware, metrics=http_metrics, log=ctx.settings.access_log)
    app.add_middleware(RequestIdMiddleware)  # outermost: every answer carries its id
    for router in routers:
        app.include_router(router)
    # Ahead of every router: the plain poll, answered without FastAPI's routing and
    # dependency solving (`api.aimlapi.poll`).
    app.router.routes[:0] = [PollRoute(ctx, path) for path in AIMLAPI_PATHS]
    app.state.context = ctx
    return app
