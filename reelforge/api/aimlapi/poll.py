"""The AI/ML API's poll, `GET /v2/video/generations?generation_id=…`, as a plain route.

Every client polls, several times a second per job, so this is the server's hottest path.
Through FastAPI's router a poll paid for route matching over the included routers and for
solving its dependencies (the bearer scheme, the scope check): 40 % of its time in a profile
(FastAPI 0.165), more than the database read and the rendering together. `PollRoute` sits
first in the app's routes and answers the plain poll itself: the same checks
(`_ScopeCheck.authorize`), the same service call and body (`answer_poll`, which the FastAPI
route also uses), its errors raised into the same exception handlers (it is inside the
app's `ExceptionMiddleware`, as every route is). Anything else on that path (a list, a
`tenant=` read, another method) is not matched here and goes on to the declared FastAPI
route, which also keeps the operation in the OpenAPI document.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.datastructures import URLPath
from starlette.routing import BaseRoute, Match, NoMatchFound, get_route_path
from starlette.types import Receive, Scope, Send

from reelforge.api.aimlapi.render import render_generation
from reelforge.api.context import ApiContext
from reelforge.errors import FieldError, InvalidRequest

__all__ = ["PollRoute", "answer_poll"]

_GENERATION_ID = "reelforge.generation_id"
"""The scope key of the id `PollRoute.matches` read from the query, for its `handle`."""


async def answer_poll(
    ctx: ApiContext, request: Request, whose: str | None, generation_id: str | None = None
) -> JSONResponse:
    """The poll's answer: the generation named by `generation_id` (else the query's), read as
    `whose` (the caller's tenant, or another's for an admin) may."""
    if generation_id is None:
        generation_id = request.query_params.get("generation_id")
    if not generation_id:
        raise InvalidRequest(FieldError("generation_id", "must not be empty"))
    view = await ctx.generations.get(generation_id, whose)
    base = ctx.base_url_of(request)
    body = render_generation(
        view.job, view.queue_position, lambda key: ctx.links.url(base, key), view.eta_s
    )
    # A response, not a dict: FastAPI's `jsonable_encoder` walk of the body is not needed for
    # what `render_generation` builds, plain JSON values only.
    return JSONResponse(body)


class PollRoute(BaseRoute):
    """Matches a GET of `path` whose query names `generation_id` and no `tenant` (module
    docstring); `path` is also the route template the access log and metrics show."""

    def __init__(self, ctx: ApiContext, path: str) -> None:
        self.ctx = ctx
        self.path = path

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope["method"] != "GET":
            return Match.NONE, {}
        if get_route_path(scope) != self.path:
            return Match.NONE, {}
        query = scope.get("query_string", b"")
        if b"generation_id" not in query:  # the cheap test first: a list has none
            return Match.NONE, {}
        # As Starlette's `request.query_params` reads it: the last of repeated names wins.
        params = dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True))
        if "generation_id" not in params or "tenant" in params:
            return Match.NONE, {}
        # What FastAPI's routing leaves for the access log and metrics: the route template.
        child = {"route": self, "endpoint": answer_poll, _GENERATION_ID: params["generation_id"]}
        return Match.FULL, child

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        tenant = await self.ctx.auth.reader.authorize(request)
        response = await answer_poll(self.ctx, request, tenant, scope[_GENERATION_ID])
        await response(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: object) -> URLPath:
        raise NoMatchFound(name, path_params)  # nothing names it: FastAPI's route does

    def __repr__(self) -> str:
        return f"PollRoute(path={self.path!r})"
