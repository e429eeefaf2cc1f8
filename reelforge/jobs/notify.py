"""Job notifications on PostgreSQL: a create or requeue NOTIFYs, idle workers LISTEN.

A transition that puts a job in the queue (`JobStore._emit`: created, requeued) runs
`pg_notify(channel, model)` in its own transaction, so the notification goes out exactly when
the job is committed, to every session on the database that LISTENs on the channel, whatever
host it runs on. `JobNotifications` is the worker's side: one dedicated autocommit
connection that LISTENs and sets `wake` when a job of one of the worker's models arrives.

A notification is a hint only. The worker still polls (`poll_interval_s`), so a lost
notification, or a LISTEN connection that is down, costs at most one poll interval; the
connection is reopened with a growing delay, and an outage is one warning line, not a
traceback per attempt. On SQLite there are no notifications: `serve` wakes its own worker
children through `JobStore.on_enqueue` and a standalone worker polls.

Channels are per database, while several reelforge installations (and the tests, one schema
each) may share one: the channel's name carries a hash of the session's schema
(`current_schema()`, from the URL's search_path), which senders and listeners compute alike
on the server.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import Connection, Engine, text

from reelforge.jobs.db import connect_unpooled

__all__ = ["APPLICATION_NAME", "CHANNEL_SQL", "JobNotifications", "notify_queued"]

log = logging.getLogger(__name__)

CHANNEL_SQL = (
    "'reelforge_jobs_' || left(encode(sha256(convert_to(current_schema(), 'UTF8')), 'hex'), 16)"
)
"""The channel's name, computed by the server for the session's schema (a channel name is an
identifier: at most 63 bytes, so a hash rather than the schema's own name)."""

APPLICATION_NAME = "reelforge-listen"
"""How the LISTEN connection shows in `pg_stat_activity`."""

_NOTIFY = text(f"SELECT pg_notify({CHANNEL_SQL}, :model)")

_RETRY_FIRST_S = 0.2
_RETRY_MAX_S = 30.0
_WAIT_SLICE_S = 0.5
"""How long one wait for notifications lasts before the thread looks at its stop flag."""


def notify_queued(conn: Connection, model: str) -> None:
    """Tell listening workers that a job of `model` is queued, when `conn`'s transaction
    commits (PostgreSQL only; the caller checks the dialect)."""
    conn.execute(_NOTIFY, {"model": model})


class JobNotifications:
    """A worker's LISTEN connection, on its own thread: sets `wake` when a job of one of
    `models` is queued, and once after each reconnect (jobs queued while it was down)."""

    def __init__(
        self,
        engine: Engine,
        models: Iterable[str],
        *,
        connect_timeout_s: float = 5.0,
        retry_max_s: float = _RETRY_MAX_S,
    ) -> None:
        self.engine = engine
        self.models = frozenset(models)
        self.connect_timeout_s = connect_timeout_s
        self.retry_max_s = retry_max_s
        self.wake = threading.Event()
        self.channel: str | None = None
        self._connection: psycopg.Connection[Any] | None = None
        self._attempted = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-notifications", daemon=True)

    def start(self) -> None:
        """Start listening; waits for the first connection attempt (it may fail: the thread
        keeps trying), so that a job queued after `start` returns is heard."""
        self._thread.start()
        self._attempted.wait(self.connect_timeout_s + 5)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=_WAIT_SLICE_S + self.connect_timeout_s + 5)

    @property
    def listening(self) -> bool:
        return self._connection is not None

    @property
    def backend_pid(self) -> int | None:
        """The server process of the LISTEN connection (for operators and tests)."""
        connection = self._connection
        return None if connection is None else connection.info.backend_pid

    def _run(self) -> None:
        delay_s = _RETRY_FIRST_S
        down_since: float | None = None
        while not self._stop.is_set():
            try:
                self._connection = self._listen()
            except Exception as exc:
                down_since = self._report_outage(exc, down_since, delay_s)
                self._attempted.set()
                # A growing delay, so a database that is down is not hammered; hand-written
                # because it is three lines and the thread must also stop promptly.
                self._stop.wait(delay_s)
                delay_s = min(self.retry_max_s, delay_s * 2)
                continue
            self._attempted.set()
            if down_since is not None:
                log.info(
                    "listening for new jobs again (after %.1f s); waking to claim what came",
                    time.monotonic() - down_since,
                )
                self.wake.set()
            down_since, delay_s = None, _RETRY_FIRST_S
            try:
                self._receive(self._connection)
            except Exception as exc:
                down_since = self._report_outage(exc, None, 0.0)
            finally:
                self._close()

    def _listen(self) -> psycopg.Connection[Any]:
        connection = connect_unpooled(self.engine, self.connect_timeout_s, APPLICATION_NAME)
        try:
            channel = connection.execute(sql.SQL(f"SELECT {CHANNEL_SQL}")).fetchone()
            if channel is None or channel[0] is None:
                raise RuntimeError("no schema on the search_path to name the channel after")
            self.channel = str(channel[0])
            connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
        except BaseException:
            connection.close()
            raise
        log.debug("listening on %s for jobs of %s", self.channel, ", ".join(sorted(self.models)))
        return connection

    def _receive(self, connection: psycopg.Connection[Any]) -> None:
        while not self._stop.is_set():
            for notification in connection.notifies(timeout=_WAIT_SLICE_S):
                if notification.payload in self.models:
                    self.wake.set()

    def _report_outage(self, exc: Exception, down_since: float | None, retry_s: float) -> float:
        """Log the start of an outage once (later failed attempts only at debug level);
        returns when the outage started."""
        if down_since is not None:
            log.debug("still cannot listen for new jobs: %s", _one_line(exc))
            return down_since
        if not self._stop.is_set():
            log.warning(
                "cannot listen for new jobs (%s); polling until the connection is back%s",
                _one_line(exc),
                f", next try in {retry_s:g} s" if retry_s else "",
            )
        return time.monotonic()

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:  # already broken: nothing more to release
                log.debug("closing the LISTEN connection failed", exc_info=True)


def _one_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
