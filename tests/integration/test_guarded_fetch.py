"""The outbound guard on real loopback connections: a host is resolved once per connection,
every answer is checked before any is connected to, the connection goes to a checked
address under the URL's name, redirects are checked hop by hop, and a peer that cannot be
confirmed is refused before the request is sent.

127.0.0.2 plays an allowed host and 127.0.0.1 a forbidden one (the policy opens only
127.0.0.2/32); host names are answered by an injected resolver, since no DNS is reachable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpcore
import httpx
import pytest

from reelforge.net import FetchFailed, OutboundPolicy, OutboundRefused, fetch_bytes
from reelforge.net.fetch import tls_context
from reelforge.net.transport import GuardedTransport
from tests.conftest import wait_for
from tests.fixtures.peers import Answer, peer_pair

ALLOWED = "127.0.0.2/32"


class Resolver:
    """Answers `answers[host]` in turn (the last one again once they run out)."""

    def __init__(self, **answers: list[list[str]]) -> None:
        self.answers = {host.replace("_", "."): list(seq) for host, seq in answers.items()}
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.calls.append(host)
        queue = self.answers.get(host)
        if not queue:
            raise OSError(f"{host} not found")
        return queue.pop(0) if len(queue) > 1 else queue[0]


def fetch(url: str, policy: OutboundPolicy) -> bytes:
    return asyncio.run(
        fetch_bytes(
            url, policy=policy, max_bytes=10_000, deadline_s=10, limiter=asyncio.Semaphore(1)
        )
    )


def test_the_connection_goes_to_the_address_the_guard_checked() -> None:
    resolver = Resolver(images_example=[["127.0.0.2"]])
    with peer_pair() as (allowed, forbidden):
        allowed.answers["/cat.png"] = Answer(body=b"pinned")
        url = allowed.url("/cat.png", host="images.example")
        assert fetch(url, OutboundPolicy([ALLOWED], resolver=resolver)) == b"pinned"
    # One lookup, the one checked; the request still names the host.
    assert resolver.calls == ["images.example"]
    assert allowed.requests == [("GET", "/cat.png", f"images.example:{allowed.port}")]
    assert forbidden.connections == 0


def test_one_forbidden_answer_refuses_the_name_before_any_connection() -> None:
    resolver = Resolver(images_example=[["127.0.0.2", "127.0.0.1"]])
    with peer_pair() as (allowed, forbidden):
        url = allowed.url("/cat.png", host="images.example")
        with pytest.raises(FetchFailed, match=r"non-public address \(127\.0\.0\.1\)"):
            fetch(url, OutboundPolicy([ALLOWED], resolver=resolver))
        assert (allowed.connections, forbidden.connections) == (0, 0)


def test_a_name_that_rebinds_is_checked_again_on_the_next_connection() -> None:
    resolver = Resolver(images_example=[["127.0.0.2"], ["127.0.0.1"]])
    policy = OutboundPolicy([ALLOWED], resolver=resolver)
    with peer_pair() as (allowed, forbidden):
        allowed.answers["/cat.png"] = Answer(body=b"first")
        url = allowed.url("/cat.png", host="images.example")
        assert fetch(url, policy) == b"first"
        with pytest.raises(FetchFailed, match="non-public address"):
            fetch(url, policy)
        assert forbidden.connections == 0


def test_localhost_resolves_to_a_forbidden_address() -> None:
    with peer_pair() as (_, forbidden):
        with pytest.raises(FetchFailed, match="non-public address"):
            fetch(forbidden.url("/cat.png", host="localhost"), OutboundPolicy([ALLOWED]))
        assert forbidden.connections == 0


def test_a_redirect_to_a_forbidden_address_is_never_followed_there() -> None:
    with peer_pair() as (allowed, forbidden):
        allowed.answers["/cat.png"] = Answer(302, headers={"location": forbidden.url("/x.png")})
        with pytest.raises(FetchFailed, match=r"non-public address \(127\.0\.0\.1\)"):
            fetch(allowed.url("/cat.png"), OutboundPolicy([ALLOWED]))
        assert [path for _, path, _ in allowed.requests] == ["/cat.png"]
        assert forbidden.connections == 0


def test_a_redirect_to_an_allowed_address_is_followed() -> None:
    with peer_pair() as (allowed, _):
        allowed.answers["/cat.png"] = Answer(302, headers={"location": "/real.png"})
        allowed.answers["/real.png"] = Answer(body=b"here")
        assert fetch(allowed.url("/cat.png"), OutboundPolicy([ALLOWED])) == b"here"


class _ReportedPeer(httpcore.AsyncNetworkStream):
    """A real stream that reports `server_addr` as `peer` (None: it cannot tell)."""

    def __init__(self, stream: httpcore.AsyncNetworkStream, peer: Any) -> None:
        self._stream = stream
        self._peer = peer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._stream.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    def get_extra_info(self, info: str) -> Any:
        return self._peer if info == "server_addr" else self._stream.get_extra_info(info)


class _MisreportingBackend(httpcore.AnyIOBackend):
    def __init__(self, peer: Any) -> None:
        self.peer = peer

    async def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        return _ReportedPeer(await super().connect_tcp(*args, **kwargs), self.peer)


@pytest.mark.parametrize("reported", [None, ("127.0.0.1", 80)])
def test_a_peer_not_confirmed_allowed_gets_no_request(reported: Any) -> None:
    async def get(url: str) -> None:
        transport = GuardedTransport(
            OutboundPolicy([ALLOWED]),
            ssl_context=tls_context(),
            backend=_MisreportingBackend(reported),
        )
        async with httpx.AsyncClient(transport=transport) as client:
            await client.get(url)

    with peer_pair() as (allowed, _):
        with pytest.raises(OutboundRefused):
            asyncio.run(get(allowed.url("/cat.png")))
        wait_for(lambda: allowed.finished == 1, 10, "the refused connection to end")
        assert allowed.requests == []
