"""Downloading a client-named URL with a total deadline, a size cap and bounded concurrency.

httpx's timeouts apply to each network operation, so a peer that trickles one byte a second
never trips them; the deadline here is on the whole fetch (waiting for a slot, DNS, connect,
redirects, every byte), enforced by `asyncio.timeout`, which cancels the fetch wherever it
is. Fetches run on the event loop, not in the thread pool that other requests need, and at
most `limiter`'s count at once, so slow peers cost sockets, not the server's responsiveness.
Every connection, the first and each redirect hop's, goes through the guarded transport
(`reelforge.net.transport`): no byte is sent to an address the policy has not allowed.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from urllib.parse import urljoin

import certifi
import httpx

from reelforge.net.guard import OutboundPolicy, OutboundRefused
from reelforge.net.transport import GuardedTransport

__all__ = ["FetchFailed", "FetchTooLarge", "fetch_bytes", "tls_context"]

MAX_REDIRECTS = 3


class FetchFailed(Exception):
    """The URL could not be fetched (refused, unreachable, an HTTP error, too slow); the
    message is fit for the client."""


class FetchTooLarge(FetchFailed):
    """The body is larger than allowed."""


async def fetch_bytes(
    url: str,
    *,
    policy: OutboundPolicy,
    max_bytes: int,
    deadline_s: float,
    limiter: asyncio.Semaphore,
) -> bytes:
    """GET `url` (following up to `MAX_REDIRECTS` checked redirects) and return its body."""
    try:
        async with asyncio.timeout(deadline_s):
            async with limiter:
                return await _fetch(url, policy, max_bytes, deadline_s)
    except TimeoutError:
        raise FetchFailed(f"could not be downloaded within {deadline_s:g} s") from None
    except OutboundRefused as exc:
        raise FetchFailed(str(exc)) from None


async def _fetch(url: str, policy: OutboundPolicy, max_bytes: int, deadline_s: float) -> bytes:
    # trust_env off: a proxy from the environment would hide the peer the guard checks.
    client = httpx.AsyncClient(
        timeout=httpx.Timeout(deadline_s),
        follow_redirects=False,
        trust_env=False,
        transport=GuardedTransport(policy, ssl_context=tls_context()),
    )
    async with client:
        for _ in range(MAX_REDIRECTS + 1):
            target = policy.parse(url)  # the form; the address is checked on connecting
            try:
                async with client.stream("GET", target.url) as response:
                    if response.is_redirect and "location" in response.headers:
                        url = urljoin(target.url, response.headers["location"])
                        continue
                    if response.status_code >= 400:
                        raise FetchFailed(
                            f"could not be downloaded: the server answered {response.status_code}"
                        )
                    return await _read_capped(response, max_bytes)
            except httpx.InvalidURL as exc:
                raise FetchFailed(f"is not a valid URL: {exc}") from None
            except httpx.HTTPError as exc:
                raise FetchFailed(f"could not be downloaded: {type(exc).__name__}") from None
    raise FetchFailed(f"could not be downloaded: more than {MAX_REDIRECTS} redirects")


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One TLS context for every fetch of this process: building one loads the CA bundle
    (50-80 ms of CPU), which per fetch, on the event loop, stalled every other request."""
    return ssl.create_default_context(cafile=certifi.where())


async def _read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchTooLarge(f"is larger than {max_bytes} bytes")
    chunks, total = [], 0
    async for chunk in response.aiter_bytes():
        total += len(chunk)
        if total > max_bytes:
            raise FetchTooLarge(f"is larger than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
