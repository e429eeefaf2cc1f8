"""An httpx transport that connects only to addresses the outbound guard has checked.

httpx resolves a URL's host itself, when it connects; checking the DNS answer before the
request and the peer after it leaves two holes: the second lookup may answer differently
(rebinding) and the request is sent before the peer is checked, and a stream that reports
no peer was not checked at all. Here the guard is the connection itself: httpcore asks its
network backend to connect to (host, port), and `GuardedBackend` resolves the host once
(`OutboundPolicy.addresses_of`), checks every address of the answer, connects to a checked
address, and refuses a socket whose peer it cannot confirm to be that address. The request
keeps the name, so the Host header, TLS SNI and the certificate check are for the name.

Every connection goes through it: each redirect hop to a new origin is a new connection,
hence checked before a byte is sent to it. A refusal is raised as `OutboundRefused` from
the httpx call (httpx passes exceptions it does not know through unchanged).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable

import httpcore
import httpx

from reelforge.net.guard import OutboundPolicy, OutboundRefused

__all__ = ["GuardedBackend", "GuardedTransport"]


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend (`inner`, the default one unless a test names another),
    connecting to checked addresses only."""

    def __init__(
        self, policy: OutboundPolicy, inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self.policy = policy
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self.policy.addresses_of(host, port)  # all checked, or it raises
        failure: Exception | None = None
        for index, address in enumerate(addresses):  # in the resolver's order
            try:
                stream = await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=_attempt_timeout(timeout, len(addresses) - index),
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            await self._confirm_peer(stream, address)
            return stream
        assert failure is not None  # addresses_of never answers an empty list
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise OutboundRefused("names a local socket, which this server does not reach")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)

    async def _confirm_peer(self, stream: httpcore.AsyncNetworkStream, address: str) -> None:
        peer = stream.get_extra_info("server_addr")
        connected = str(peer[0]).split("%", 1)[0] if peer else None
        try:
            if connected is None:
                raise OutboundRefused(
                    "could not be reached safely: the address connected to is unknown"
                )
            self.policy.check_address(connected)
        except OutboundRefused:
            await stream.aclose()
            raise


def _attempt_timeout(timeout: float | None, left: int) -> float | None:
    """The connect timeout of one address of `left` still to try. The addresses are tried
    one after another (not raced, as anyio does for a host name), so a silent one must not
    take the whole budget from those after it: each gets an equal share of what is left,
    but at least `_MIN_ATTEMPT_S` (a slow but live peer still connects)."""
    if timeout is None or left <= 1:
        return timeout
    return max(min(timeout, _MIN_ATTEMPT_S), timeout / left)


_MIN_ATTEMPT_S = 2.0


class GuardedTransport(httpx.AsyncHTTPTransport):
    """`httpx.AsyncHTTPTransport` (HTTP/1.1, no proxy, no environment) over `GuardedBackend`;
    `limits` default to httpx's own."""

    def __init__(
        self,
        policy: OutboundPolicy,
        *,
        ssl_context: ssl.SSLContext,
        limits: httpx.Limits | None = None,
        backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        super().__init__(verify=ssl_context, trust_env=False, limits=limits)
        # Fail loudly rather than guard nothing: should a new httpx no longer send requests
        # through `_pool`, replacing it would silently leave httpx's own, unguarded pool.
        if not isinstance(getattr(self, "_pool", None), httpcore.AsyncConnectionPool):
            raise RuntimeError(
                "this httpx version's transport has no httpcore pool to guard; "
                "reelforge.net.transport needs updating for it"
            )
        # httpx takes no network backend, so its pool is rebuilt with the same options and
        # ours (`_pool` is the one attribute its request path uses).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(policy, backend),
        )
