"""A client-side reply deadline for PostgreSQL connections, so no query can hang forever.

A server-side `statement_timeout` only helps while the server is there to enforce it, and TCP
keepalives and `tcp_user_timeout` only fire when the peer's kernel stops acknowledging. A
frozen server, a stuck middlebox or a proxy that accepts bytes and forwards nothing leaves
libpq waiting forever. So every round trip a connection makes is watched: when the database
has not answered within `reply_timeout_s`, the watchdog shuts the socket down, libpq sees the
connection drop and psycopg raises `OperationalError`, which SQLAlchemy treats as a
disconnect (the connection is discarded, the pool reconnects on the next checkout).

`shutdown(2)` rather than `close(2)`: the file descriptor stays valid until psycopg closes it
itself, so it cannot be reused by another socket while the watchdog still holds its number.
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
from typing import Any, TypeVar

import psycopg

__all__ = ["ReplyWatch", "WatchedConnection"]

_T = TypeVar("_T")

_IDLE_EXIT_S = 30.0
"""The watchdog thread ends after this long with nothing to watch; the next query restarts it."""


class ReplyWatch:
    """Shuts down the socket of any watched connection whose reply is overdue.

    One per engine; its one daemon thread sleeps until the earliest deadline and exists
    only while connections are busy (and for `_IDLE_EXIT_S` after).
    """

    def __init__(self, reply_timeout_s: float) -> None:
        self.reply_timeout_s = reply_timeout_s
        self._cond = threading.Condition()
        self._armed: dict[int, tuple[float, int]] = {}  # ticket -> (deadline, socket fd)
        self._fired: set[int] = set()
        self._tickets = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, fd: int) -> int:
        """Start watching `fd`; returns the ticket to pass to `disarm`."""
        with self._cond:
            ticket = next(self._tickets)
            was_idle = not self._armed
            self._armed[ticket] = (time.monotonic() + self.reply_timeout_s, fd)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="db-reply-watch", daemon=True
                )
                self._thread.start()
            elif was_idle:
                # Every deadline is now + the same timeout, so only an idle watchdog
                # (waiting for work, not for a deadline) needs waking.
                self._cond.notify()
            return ticket

    def disarm(self, ticket: int) -> bool:
        """Stop watching; True if the deadline had passed and the socket was shut down."""
        with self._cond:
            self._armed.pop(ticket, None)
            if ticket in self._fired:
                self._fired.discard(ticket)
                return True
            return False

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for ticket, (deadline, fd) in list(self._armed.items()):
                    if deadline <= now:
                        # Under the lock: the owner cannot disarm, return and close the fd
                        # (letting its number be reused) while we shut it down.
                        del self._armed[ticket]
                        self._fired.add(ticket)
                        _shutdown(fd)
                if self._armed:
                    self._cond.wait(min(d for d, _ in self._armed.values()) - now)
                elif not self._cond.wait(_IDLE_EXIT_S) and not self._armed:
                    self._thread = None
                    return


def _shutdown(fd: int) -> None:
    # A duplicate descriptor of the same socket: shutting it down cuts the connection for
    # libpq too, and closing the duplicate leaves libpq's descriptor alone.
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already disconnected
    finally:
        sock.close()


class WatchedConnection(psycopg.Connection[Any]):
    """A psycopg connection whose every round trip is bounded by `reply_watch`.

    psycopg sends each query, commit and rollback through `Connection.wait`, which blocks
    until the server has answered; that is the one place to watch.
    """

    reply_watch: ReplyWatch | None = None

    def wait(self, gen: Any, *args: Any, **kwargs: Any) -> Any:
        watch = self.reply_watch
        if watch is None or self.closed:
            return super().wait(gen, *args, **kwargs)
        ticket = watch.arm(self.pgconn.socket)
        try:
            return super().wait(gen, *args, **kwargs)
        except psycopg.OperationalError as exc:
            if watch.disarm(ticket):
                raise psycopg.OperationalError(
                    f"no reply from the database within {watch.reply_timeout_s:g} s; "
                    "connection closed"
                ) from exc
            raise
        finally:
            watch.disarm(ticket)
