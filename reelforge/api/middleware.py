"""Plain ASGI middleware: request ids, and the browser guard of the keyless loopback mode.

Plain ASGI rather than Starlette's `BaseHTTPMiddleware`, which runs every request through an
extra task and memory stream (a quarter of a poll's time in a profile).
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.requests import Request

from reelforge.api.errors import error_response

__all__ = ["LoopbackBrowserGuard", "RequestIdMiddleware", "is_loopback_host"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_MAX_REQUEST_ID = 128

# Request ids: a random prefix per process and a counter. As unique as uuid4 for what they
# are for (finding one request's lines in the logs), without a urandom call per request,
# whose release and retake of the GIL showed up as 10 % of a poll under load.
_REQUEST_ID_PREFIX = secrets.token_hex(8)
_request_numbers = itertools.count(1)


def new_request_id() -> str:
    return f"{_REQUEST_ID_PREFIX}{next(_request_numbers):016x}"


class RequestIdMiddleware:
    """Gives each request an id (the client's `x-request-id` if sane) and sends it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        ok = 0 < len(given) <= _MAX_REQUEST_ID and given.isascii() and given.isprintable()
        request_id = given if ok else new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        encoded = request_id.encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", encoded))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)


class LoopbackBrowserGuard:
    """With no API keys, the server trusts every loopback client; this keeps web pages out.

    Any page a user visits can send requests to 127.0.0.1 (a "simple" cross-site POST needs
    no CORS preflight), and a hostile domain can rebind its DNS name to 127.0.0.1 to read the
    answers. So in that mode a request must name a loopback host (or `allowed_hosts`, e.g. the
    configured public URL's) in `Host`, and a browser request must come from the same origin:
    `Origin`, where sent, must be this server's, and `Sec-Fetch-Site` must say `same-origin`
    or `none` (typed in the address bar). Non-browser clients send neither header.
    """

    def __init__(
        self,
        app: ASGIApp,
        allowed_hosts: frozenset[str] = frozenset(),
        active: Callable[[], bool] = lambda: True,
    ) -> None:
        """`active`: whether the server is still keyless, asked at each request (once it
        has keys, every request is authenticated and the guard steps aside)."""
        self.app = app
        self.allowed_hosts = frozenset(h.lower() for h in allowed_hosts)
        self.active = active

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.active():
            await self.app(scope, receive, send)
            return
        problem = self._problem(scope)
        if problem is None:
            await self.app(scope, receive, send)
            return
        response = error_response(Request(scope), 403, problem)
        await response(scope, receive, send)

    def _problem(self, scope: Scope) -> str | None:
        host = _header(scope, b"host")
        hostname = _hostname(host)
        if not (is_loopback_host(hostname) or hostname in self.allowed_hosts):
            return (
                f"this server has no API keys and answers only requests addressed to a loopback "
                f"name (localhost, 127.0.0.1, [::1]), not {host[:100]!r}; set "
                "REELFORGE_API_KEYS to serve other names"
            )
        origin = _header(scope, b"origin")
        own_origin = f"{scope.get('scheme', 'http')}://{host}".lower()
        if origin and origin.lower() != own_origin:
            return (
                f"cross-origin requests (from {origin[:100]!r}) are refused while this server "
                "has no API keys; set REELFORGE_API_KEYS to accept them"
            )
        fetch_site = _header(scope, b"sec-fetch-site").lower()
        if fetch_site and fetch_site not in ("same-origin", "none"):
            return (
                f"{fetch_site} browser requests are refused while this server has no API "
                "keys; set REELFORGE_API_KEYS to accept them"
            )
        return None


@functools.lru_cache(maxsize=1024)  # a few clients' addresses, asked on every request
def is_loopback_host(hostname: str) -> bool:
    """`localhost` (and its subdomains, which resolve to loopback by RFC 6761) or a loopback
    address literal."""
    if hostname == "localhost" or hostname.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _hostname(host: str) -> str:
    """The host part of a `Host` header value, lower-cased, without port or brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else ""
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return ""
