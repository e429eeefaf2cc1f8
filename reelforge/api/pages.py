"""The pages a browser opens: the studio at `/` and the API docs (Swagger UI) at `/docs`.

Everything they load comes from this server, so they work with no network beyond it: the
studio's own files (`reelforge/studio/`, framework-free, no build step) and the Swagger UI
bundle that the `fastapi-offline` package ships. That package rather than
`swagger-ui-bundle`, whose Swagger UI (4.x) cannot read the OpenAPI 3.1 document FastAPI
writes; rather than vendored copies, so an upgrade is a version bump. Only its files are
used (through `importlib.resources`): the app is built here, not by its `FastAPIOffline`.
No ReDoc page: its bundle (in the same package) loads its logo from its vendor's CDN.

The pages are not API routes: no key is needed to load them (the studio's own API calls
carry the key, and so does the docs page's load of the OpenAPI document, which follows the
API's access rule unless `REELFORGE_DOCS=public`), and they are left out of the document.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse, JSONResponse, Response

from reelforge.errors import NotFound

__all__ = ["build_pages_router"]

STUDIO_FILES = {
    "studio.js": "text/javascript; charset=utf-8",
    "docs.js": "text/javascript; charset=utf-8",
    "studio.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
DOCS_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
}
OPENAPI_URL = "/openapi.json"
_DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="icon" href="/studio/favicon.svg">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/studio/docs.js"></script>
</body>
</html>
"""
FAVICON_URL = "/studio/favicon.svg"
# Revalidate each time: a page from before an upgrade must not run with the new API.
_NO_CACHE = {"Cache-Control": "no-cache"}


def build_pages_router(
    *,
    key_required: Callable[[], bool],
    title: str,
    openapi: Callable[[], dict[str, Any]],
    docs_access: str,
    reader: Any,
) -> APIRouter:
    """The studio and docs routes; `key_required()`: whether API calls need a bearer key now
    (the studio then asks for one; a managed key created while the server runs turns a
    keyless server into a keyed one). `docs_access` (`REELFORGE_DOCS`): `keyed`, the
    OpenAPI document asks what the API's reads ask (`reader`, a FastAPI dependency);
    `public`; or `off`, no document and no docs page."""
    studio = resources.files("reelforge.studio")
    docs = resources.files("fastapi_offline") / "static"
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def studio_page() -> Response:
        return _file(studio / "index.html", "text/html; charset=utf-8")

    @router.get("/studio/config.json")
    async def studio_config() -> JSONResponse:
        return JSONResponse({"key_required": key_required()}, headers=_NO_CACHE)

    @router.get("/studio/{name}")
    async def studio_file(name: str) -> Response:
        return _file(studio / name, _media_type(STUDIO_FILES, name))

    if docs_access != "off":
        guard = [Depends(reader)] if docs_access == "keyed" else []

        @router.get(OPENAPI_URL, dependencies=guard)
        async def openapi_document() -> JSONResponse:
            return JSONResponse(openapi())

        @router.get("/docs")
        async def swagger_ui() -> HTMLResponse:
            # The page itself holds nothing secret; the document it loads is guarded, and
            # docs.js sends the key the studio keeps (same origin: the same localStorage).
            return HTMLResponse(_DOCS_PAGE.format(title=html.escape(f"{title} - API docs")))

    @router.get("/docs/assets/{name}")
    async def docs_asset(name: str) -> Response:
        # Bundles of a given package version never change: cache them for a day.
        return _file(
            docs / name,
            _media_type(DOCS_ASSETS, name),
            cache_control="public, max-age=86400",
        )

    return router


def _media_type(files: dict[str, str], name: str) -> str:
    # A fixed list of names: nothing a path can say reaches outside these folders.
    if name not in files:
        raise NotFound(f"no such file: {name}")
    return files[name]


def _file(path: Traversable, media_type: str, cache_control: str = "no-cache") -> Response:
    return Response(
        path.read_bytes(), media_type=media_type, headers={"Cache-Control": cache_control}
    )
