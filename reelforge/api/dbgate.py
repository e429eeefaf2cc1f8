"""Running the API's blocking database calls: off the event loop, with a deadline, bounded.

Every route hands its database work to `DatabaseGate.run` as one function, so a request
costs one thread hop. The gate owns its threads (apart from the pool that file downloads
use) and answers 503 with `Retry-After` when the database fails or does not answer within
`timeout_s`: a database behind a black-holed network no longer hangs requests forever, and
the threads stuck on it are capped at `threads`, however many requests arrive (the rest
wait in the queue, inside the same deadline, and time out too). Stuck calls finish, or fail,
on their own once the network heals; nothing needs a restart.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from reelforge.errors import DatabaseUnavailable, ReelforgeError

__all__ = ["DatabaseGate"]

T = TypeVar("T")

ErrorTranslator = Callable[[BaseException], ReelforgeError | None]


class DatabaseGate:
    """Runs store calls in `threads` threads, each answer due within `timeout_s`."""

    def __init__(
        self,
        timeout_s: float,
        threads: int,
        translate: ErrorTranslator,
        *,
        max_waiting: int = 1000,
        serialize_writes: bool = False,
    ) -> None:
        """`serialize_writes`: let one `write` at a time reach the database (SQLite's one
        writer): the others wait their turn on the event loop, first come first served,
        instead of in SQLite's busy handler, which sleeps up to 100 ms between tries and,
        with a dozen threads writing, left some creates waiting over a second while others
        went ahead. Waiting on the loop also leaves the threads free for reads."""
        self.timeout_s = timeout_s
        self._serialize_writes = serialize_writes
        # One turn per event loop (a lock belongs to the loop it first waits on; tests run
        # apps on several).
        self._write_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]
        self._write_turns = weakref.WeakKeyDictionary()
        self._translate = translate
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="db")
        self._max_waiting = max_waiting
        self._in_flight = 0
        self._lock = threading.Lock()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in a database thread; its result, or its error (database failures
        translated to 503/507 answers, which the error handler logs with the request id)."""
        return await self._run(fn, args, self.timeout_s)

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """`run` for a function that writes (one transaction or a few); with
        `serialize_writes`, after the writes before it. The wait counts against the same
        deadline."""
        if not self._serialize_writes:
            return await self.run(fn, *args)
        loop = asyncio.get_running_loop()
        turn = self._write_turns.get(loop)
        if turn is None:
            turn = self._write_turns[loop] = asyncio.Lock()
        deadline = loop.time() + self.timeout_s
        try:
            async with asyncio.timeout(self.timeout_s):
                await turn.acquire()
        except TimeoutError:
            raise DatabaseUnavailable.no_answer_within(self.timeout_s) from None
        try:
            return await self._run(fn, args, max(0.0, deadline - loop.time()))
        finally:
            turn.release()

    async def _run(self, fn: Callable[..., T], args: tuple[Any, ...], timeout_s: float) -> T:
        with self._lock:
            if self._in_flight >= self._max_waiting:
                # Memory, not threads, is what this bounds: queued calls are cheap, but not
                # free, and a database that is away makes them pile up at request rate.
                raise DatabaseUnavailable(
                    "the job database is not answering; retry shortly", retry_after_s=5
                )
            self._in_flight += 1
        try:
            future = self._executor.submit(fn, *args)
        except BaseException:
            self._finished(None)
            raise
        future.add_done_callback(self._finished)
        try:
            # asyncio.timeout, not wait_for, which on Python 3.11 can drop a cancel that
            # comes as the call finishes.
            async with asyncio.timeout(timeout_s):
                return await asyncio.wrap_future(future)
        except TimeoutError:
            raise DatabaseUnavailable.no_answer_within(self.timeout_s) from None
        except ReelforgeError:
            raise
        except Exception as exc:
            translated = self._translate(exc)
            if translated is None:
                raise
            raise translated from None

    def _finished(self, _future: object) -> None:
        with self._lock:
            self._in_flight -= 1
