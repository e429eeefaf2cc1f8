"""uvicorn's HTTP protocol with the limits it leaves out: how long a client may take to send
a request's headers, how many header bytes it may send, and how long its body may stall and
take in all.

Written by hand because neither uvicorn nor Starlette bounds these (uvicorn's keep-alive
timeout runs only between requests, and its httptools parser takes headers of any size),
so one client trickling bytes could hold a connection and its memory for ever. This is a
thin subclass of uvicorn's own `HttpToolsProtocol` (selected with `http=` in its config),
arming timers at the points that protocol already calls:

    connection made, or a request begun   the headers must be complete within
                                          `header_timeout_s` and `max_header_bytes`
    headers complete                      the body must be complete within
                                          `body_deadline_s`, and not stall for
                                          `body_timeout_s` between two chunks

(The stall timer alone, re-armed by every chunk, let a body trickled a byte per
`body_timeout_s - ε` run for ever; the deadline is fixed when the headers end.)

A request over the header limit is answered 431, one whose headers or body time out 408
(plain text, as uvicorn answers a malformed request: whichever route the request was for
has not answered yet, and no longer can; a route that already answered only loses the
connection). The route waiting on such a body sees the client as gone.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["GuardedHttpProtocol", "configure_limits"]

log = logging.getLogger(__name__)

_limits = {
    "header_timeout_s": 10.0,
    "max_header_bytes": 65536,
    "body_timeout_s": 30.0,
    "body_deadline_s": 300.0,
}


def configure_limits(
    *,
    header_timeout_s: float,
    max_header_bytes: int,
    body_timeout_s: float,
    body_deadline_s: float,
) -> None:
    """Set the limits every connection of this process gets (from `Settings`, at start)."""
    _limits.update(
        header_timeout_s=header_timeout_s,
        max_header_bytes=max_header_bytes,
        body_timeout_s=body_timeout_s,
        body_deadline_s=body_deadline_s,
    )


class GuardedHttpProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._header_bytes: int | None = 0  # None: not reading headers now
        self._body_due = 0.0  # loop time by which the body must be complete

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._expect_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._header_bytes is not None:
            self._header_bytes += len(data)
            if self._header_bytes > _limits["max_header_bytes"]:
                self._refuse(431, "Request Header Fields Too Large")
                return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_bytes is None:  # the next request on a kept-alive connection
            self._expect_headers()

    def on_headers_complete(self) -> None:
        self._header_bytes = None
        self._body_due = self.loop.time() + _limits["body_deadline_s"]
        self._expect_body()
        super().on_headers_complete()
        if self.pipeline:
            self._cancel()  # queued: see _expect_body

    def on_response_complete(self) -> None:
        super().on_response_complete()
        cycle = self.cycle
        if (
            self._deadline is None
            and self._header_bytes is None
            and cycle is not None
            and cycle.more_body
            and not cycle.response_started
            and not self.transport.is_closing()
        ):
            # A pipelined request has just started, reading again: its body is due from now.
            self._body_due = self.loop.time() + _limits["body_deadline_s"]
            self._expect_body()

    def on_body(self, body: bytes) -> None:
        self._expect_body()
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._cancel()
        super().on_message_complete()

    def _expect_headers(self) -> None:
        self._header_bytes = 0
        self._arm(_limits["header_timeout_s"], self._headers_timed_out)

    def _expect_body(self) -> None:
        """The next chunk within the stall limit, and the whole body by its deadline; not
        while the request is queued behind a response still being sent (HTTP pipelining):
        uvicorn reads nothing more until that response ends, so the wait is the server's,
        and a 408 then would land inside that response. It is timed once it starts."""
        if self.pipeline:
            self._cancel()
            return
        left_s = self._body_due - self.loop.time()
        if left_s <= _limits["body_timeout_s"]:
            self._arm(max(left_s, 0.0), self._body_overdue)
        else:
            self._arm(_limits["body_timeout_s"], self._body_stalled)

    def _arm(self, delay_s: float, callback: Any) -> None:
        self._cancel()
        self._deadline = self.loop.call_later(delay_s, callback)

    def _cancel(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_timed_out(self) -> None:
        if self.cycle is None or self.cycle.response_complete:
            self._refuse(408, "Request Timeout")

    def _body_stalled(self) -> None:
        log.info("a client stalled its request body for %g s; 408", _limits["body_timeout_s"])
        self._body_timed_out()

    def _body_overdue(self) -> None:
        deadline_s = _limits["body_deadline_s"]
        log.info("a client took over %g s to send its request body; 408", deadline_s)
        self._body_timed_out()

    def _body_timed_out(self) -> None:
        # The route reading the body sees the client gone (`http.disconnect`); whatever it
        # answers then is dropped by uvicorn, so the 408 is the one answer on the wire.
        answered = self.cycle is not None and self.cycle.response_started
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        if answered:
            self._cancel()
            self.transport.close()
        else:
            self._refuse(408, "Request Timeout")

    def _refuse(self, status: int, reason: str) -> None:
        self._cancel()
        if self.transport.is_closing():
            return
        body = f"{reason}\n".encode()
        self.transport.write(
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
            + body
        )
        self.transport.close()
