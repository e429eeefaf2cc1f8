"""The FastAPI application: routers for each dialect, one error handler, request ids."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response

from reelforge import __version__
from reelforge.api.aimlapi.router import build_aimlapi_router
from reelforge.api.auth import Authenticator
from reelforge.api.context import ApiContext
from reelforge.api.errors import install_error_handlers
from reelforge.api.files import FileSigner, build_files_router, load_or_create_secret
from reelforge.api.images import ImagePolicy
from reelforge.api.system import build_system_router
from reelforge.engines import Registry
from reelforge.jobs import JobStore
from reelforge.settings import Settings
from reelforge.storage import Storage

__all__ = ["build_context", "create_app"]

log = logging.getLogger(__name__)


def build_context(
    settings: Settings, store: JobStore, storage: Storage, registry: Registry
) -> ApiContext:
    return ApiContext(
        settings=settings,
        store=store,
        storage=storage,
        registry=registry,
        auth=Authenticator(settings.api_keys),
        signer=FileSigner(
            load_or_create_secret(settings.url_signing_secret, settings.data_dir),
            settings.file_url_ttl_s,
        ),
        image_policy=ImagePolicy(
            max_bytes=settings.image_max_bytes,
            max_pixels=settings.image_max_pixels,
            timeout_s=settings.image_fetch_timeout_s,
            allow_private=settings.allow_private_image_urls,
        ),
    )


def create_app(ctx: ApiContext) -> FastAPI:
    app = FastAPI(title="reelforge", version=__version__)
    install_error_handlers(app)

    @app.middleware("http")
    async def _request_id(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        request.state.request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        response = await call_next(request)
        response.headers["x-request-id"] = request.state.request_id
        return response

    app.include_router(build_aimlapi_router(ctx))
    app.include_router(build_system_router(ctx))
    app.include_router(build_files_router(ctx.storage, ctx.signer))
    app.state.context = ctx
    return app
