"""The access log and the request metrics: one plain ASGI middleware for both.

Plain ASGI (see `api.middleware`): it wraps `send` to catch the status and times the call,
about two microseconds of work per request besides the log line itself. It sits inside
`RequestIdMiddleware`, so the request id is known, and reads what routing and
authentication left in the scope afterwards: the route template (FastAPI puts the matched
route in `scope["route"]`; never the raw path, so no ids in metric labels) and the tenant
(`scope["state"]["tenant"]`, set by the authenticators).
"""

from __future__ import annotations

import logging
import time

from reelforge.api.metrics import HttpMetrics
from reelforge.api.middleware import ASGIApp, Message, Receive, Scope, Send
from reelforge.logs import request_context, reset_request_context

__all__ = ["UNMATCHED_ROUTE", "AccessMiddleware"]

UNMATCHED_ROUTE = "<unmatched>"
"""The route label of a request no route matched (a 404 or a refusal before routing)."""

# Any other method is counted as "OTHER": a client must not be able to mint label values.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

access_log = logging.getLogger("reelforge.access")


class AccessMiddleware:
    """Counts and times each HTTP request (`metrics`) and logs one line for it (`log`)."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics | None, log: bool) -> None:
        self.app = app
        self.metrics = metrics
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless the app answers: an exception escaping it becomes a 500
        state = scope.setdefault("state", {})
        token = request_context(state.get("request_id", ""))
        counted = False

        def count() -> None:
            nonlocal counted
            counted = True
            if self.metrics is not None:
                self.metrics.observe(
                    _route(scope), _method(scope), status, time.perf_counter() - started
                )

        async def send_and_count(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # Counted before the last bytes leave: a client that reads the answer and
                # then scrapes (any API process) finds its request in the figures.
                count()
            await send(message)

        try:
            await self.app(scope, receive, send_and_count)
        finally:
            if not counted:
                count()
            if self.log:
                self._log(scope, state, status, time.perf_counter() - started)
            reset_request_context(token)

    def _log(
        self,
        scope: Scope,
        state: dict[str, object],
        status: int,
        duration_s: float,
    ) -> None:
        method, route = _method(scope), _route(scope)
        request_id = state.get("request_id", "")
        tenant = state.get("tenant")
        client = scope.get("client")
        duration_ms = round(duration_s * 1000, 2)
        access_log.info(
            "%s %s %d %.2f ms tenant=%s",
            method,
            scope.get("path", ""),
            status,
            duration_ms,
            tenant or "-",
            extra={
                "request_id": request_id,
                "method": method,
                "route": route,
                "path": scope.get("path", ""),
                "status": status,
                "duration_ms": duration_ms,
                "tenant": tenant,
                "client": client[0] if client else None,
            },
        )


def _route(scope: Scope) -> str:
    return getattr(scope.get("route"), "path", None) or UNMATCHED_ROUTE


def _method(scope: Scope) -> str:
    method: str = scope["method"]
    return method if method in _METHODS else "OTHER"
