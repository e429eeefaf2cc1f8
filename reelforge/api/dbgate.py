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
        writer): the others wait in this process, in turn, instead of in SQLite's busy
        handler, which sleeps up to 100 ms between tries and, with a dozen threads writing,
        left some creates waiting over a second while others went ahead."""
        self.timeout_s = timeout_s
        self._write_lock = threading.Lock() if serialize_writes else None
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
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout_s)
        except TimeoutError:
            raise DatabaseUnavailable(
                f"the job database did not answer within {self.timeout_s:g} s; retry shortly",
                retry_after_s=max(1, round(self.timeout_s)),
            ) from None
        except ReelforgeError:
            raise
        except Exception as exc:
            translated = self._translate(exc)
            if translated is None:
                raise
            raise translated from None

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """`run` for a function that writes (one transaction or a few)."""
        if self._write_lock is None:
            return await self.run(fn, *args)
        return await self.run(self._one_writer, fn, *args)

    def _one_writer(self, fn: Callable[..., T], *args: Any) -> T:
        assert self._write_lock is not None
        # Bounded like the request itself: past its deadline the answer is a 503 anyway.
        if not self._write_lock.acquire(timeout=self.timeout_s):
            raise DatabaseUnavailable(
                "the job database is busy with other writes; retry shortly", retry_after_s=1
            )
        try:
            return fn(*args)
        finally:
            self._write_lock.release()

    def _finished(self, _future: object) -> None:
        with self._lock:
            self._in_flight -= 1
