"""What a failed database call means: a reelforge error for the API, or one line at start-up.

    translate_db_error(exc)      -> DatabaseUnavailable (503) | InsufficientStorage (507) | None
    startup_error(url, exc)      -> DatabaseStartupError | None

Both read the same diagnosis of the driver's exception (SQLSTATE, SQLite's error name, or
libpq's message for failures before the server said anything), so the API and the start-up
line name the same cause. Messages never quote the driver's text for PostgreSQL, which
names hosts and users; they name the cause in a few fixed words. SQLite's messages are
fixed strings ("database or disk is full") and are quoted as they are.

`None` means "not an availability problem": a programming error stays a logged 500.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass

import psycopg
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from reelforge.errors import DatabaseUnavailable, InsufficientStorage, ReelforgeError
from reelforge.jobs.db import shown_url

__all__ = ["DatabaseStartupError", "startup_error", "translate_db_error"]


class DatabaseStartupError(ReelforgeError):
    """The job database cannot be reached or opened, so `serve` or `worker` cannot start.

    Not worth retrying in a loop: someone must start the database, fix the URL or move a
    damaged file. The message is one line naming the database (password hidden), the cause
    and what to do.
    """


@dataclass(frozen=True)
class _Diagnosis:
    kind: str
    """refused, timeout, lost, unknown_host, no_database, login, bad_params, starting,
    overloaded, conflict, full, readonly, locked, cantopen, ioerr, corrupt or unavailable."""
    cause: str
    """A few words for the message, e.g. "connection refused"."""


def translate_db_error(exc: BaseException) -> ReelforgeError | None:
    """The reelforge error a request should answer with when `exc` escaped a database call.

    DatabaseUnavailable (503 with Retry-After) when the database refused, timed out, dropped
    the connection, is locked, read-only or cannot be opened; InsufficientStorage (507) when
    it is full; None for anything else (bad SQL, a constraint, a damaged file: a 500).
    """
    diagnosis = _diagnose(exc)
    if diagnosis is None or diagnosis.kind == "corrupt":
        return None
    kind, cause = diagnosis.kind, diagnosis.cause
    if kind == "full":
        return InsufficientStorage(f"the job database is full ({cause}); free disk space")
    if kind == "refused":
        return DatabaseUnavailable(f"the job database is not reachable ({cause}); retry shortly")
    if kind == "timeout":
        return DatabaseUnavailable(f"the job database did not answer in time ({cause}); retry")
    if kind == "lost":
        return DatabaseUnavailable(
            f"the connection to the job database was lost ({cause}); retry shortly"
        )
    if kind in ("locked", "conflict"):
        return DatabaseUnavailable(f"the job database is busy ({cause}); retry", retry_after_s=1)
    if kind == "readonly":
        return DatabaseUnavailable(
            f"the job database is read-only ({cause}); an operator must make it writable",
            retry_after_s=30,
        )
    if kind in ("starting", "overloaded", "unavailable"):
        return DatabaseUnavailable(f"the job database is unavailable ({cause}); retry shortly")
    # unknown_host, no_database, login, bad_params, cantopen, ioerr: an operator must act.
    return DatabaseUnavailable(
        f"the job database cannot be used ({cause}); an operator must fix it", retry_after_s=30
    )


def startup_error(database_url: str, exc: BaseException) -> DatabaseStartupError | None:
    """The one-line error for `exc`, raised while opening the database at `database_url`."""
    try:
        parsed = make_url(database_url)
    except (sa_exc.ArgumentError, ValueError) as bad:  # ValueError: a port that is no number
        return _bad_url(bad)
    if isinstance(exc, sa_exc.ArgumentError | sa_exc.NoSuchModuleError | ImportError):
        return _bad_url(exc)  # an unknown dialect, or one whose driver is not installed
    is_sqlite = parsed.get_backend_name() == "sqlite"
    path = parsed.database or ""
    if isinstance(exc, OSError) and is_sqlite:
        return DatabaseStartupError(
            f"cannot create the folder of the job database file {path} ({exc.strerror}); "
            "make it writable or set REELFORGE_DATABASE_URL"
        )
    diagnosis = _diagnose(exc)
    if diagnosis is None:
        return None
    message = (_sqlite_startup if is_sqlite else _server_startup)(
        diagnosis, path if is_sqlite else shown_url(database_url), database_url
    )
    return DatabaseStartupError(message)


def _bad_url(problem: BaseException) -> DatabaseStartupError:
    return DatabaseStartupError(
        f"REELFORGE_DATABASE_URL is not a usable database URL ({problem}); expected e.g. "
        "postgresql+psycopg://user@host/reelforge or sqlite:////var/lib/reelforge/jobs.db"
    )


def _sqlite_startup(d: _Diagnosis, path: str, _url: str) -> str:
    file = f"the job database file {path}"
    if d.kind == "corrupt":
        return (
            f"{file} is damaged or is not a SQLite database ({d.cause}); move it aside "
            "(or restore a backup) and start again to create a new one"
        )
    if d.kind == "cantopen":
        return (
            f"cannot open {file} ({d.cause}); check that its folder exists and is writable, "
            "or set REELFORGE_DATABASE_URL"
        )
    if d.kind == "readonly":
        return f"{file} is read-only ({d.cause}); make the file and its folder writable"
    if d.kind == "full":
        return f"{file} cannot grow ({d.cause}); free disk space and start again"
    if d.kind == "locked":
        return f"{file} is locked by another process ({d.cause}); stop it or try again later"
    return f"cannot use {file} ({d.cause}); check the disk and the file"


def _server_startup(d: _Diagnosis, shown: str, url: str) -> str:
    at = f"the job database at {shown}"
    if d.kind == "unknown_host":
        return f"cannot find the host of {at} ({d.cause}); fix REELFORGE_DATABASE_URL"
    if d.kind == "no_database":
        name = make_url(url).database or "reelforge"
        return (
            f"{at} does not exist; create it (e.g. createdb {name}) or set REELFORGE_DATABASE_URL"
        )
    if d.kind == "login":
        return (
            f"{at} refused the login ({d.cause}); check the user and password "
            "in REELFORGE_DATABASE_URL"
        )
    if d.kind == "bad_params":
        return f"{at} has a bad connection parameter ({d.cause}); fix REELFORGE_DATABASE_URL"
    if d.kind == "readonly":
        return f"{at} is read-only ({d.cause}); point REELFORGE_DATABASE_URL at the primary"
    if d.kind == "full":
        return f"{at} is full ({d.cause}); free disk space on the database server"
    return f"cannot reach {at} ({d.cause}); is it running? Set REELFORGE_DATABASE_URL."


def _diagnose(exc: BaseException) -> _Diagnosis | None:
    if isinstance(exc, sa_exc.TimeoutError):  # SQLAlchemy raises it only for the pool
        return _Diagnosis("overloaded", "no free connection in the pool")
    if isinstance(exc, sa_exc.DisconnectionError):
        return _Diagnosis("lost", "connection lost")
    if isinstance(exc, sa_exc.DBAPIError):
        diagnosis = _diagnose_driver(exc.orig)
        if diagnosis is None and exc.connection_invalidated:
            return _Diagnosis("lost", "connection lost")
        return diagnosis
    return _diagnose_driver(exc)


def _diagnose_driver(exc: BaseException | None) -> _Diagnosis | None:
    if isinstance(exc, psycopg.Error):
        return _diagnose_psycopg(exc)
    if isinstance(exc, sqlite3.Error):
        return _diagnose_sqlite(exc)
    return None


_SQLITE_KINDS = {
    "SQLITE_FULL": "full",
    "SQLITE_READONLY": "readonly",
    "SQLITE_BUSY": "locked",
    "SQLITE_LOCKED": "locked",
    "SQLITE_CANTOPEN": "cantopen",
    "SQLITE_IOERR": "ioerr",
    "SQLITE_NOMEM": "overloaded",
    "SQLITE_NOTADB": "corrupt",
    "SQLITE_CORRUPT": "corrupt",
}
"""By primary result code; SQLITE_ERROR (bad SQL, no such table) is a bug, not listed."""


def _diagnose_sqlite(exc: sqlite3.Error) -> _Diagnosis | None:
    name = getattr(exc, "sqlite_errorname", "") or ""
    primary = "_".join(name.split("_")[:2])  # SQLITE_IOERR_WRITE -> SQLITE_IOERR
    kind = _SQLITE_KINDS.get(primary)
    return _Diagnosis(kind, str(exc)) if kind else None


_SQLSTATE_KINDS = {
    "53100": ("full", "the server's disk is full"),
    "53200": ("overloaded", "the server is out of memory"),
    "53300": ("overloaded", "too many connections"),
    "25006": ("readonly", "read-only transaction; a standby server?"),
    "3D000": ("no_database", "database does not exist"),
    "57P01": ("lost", "the server is shutting down"),
    "57P02": ("lost", "the server crashed"),
    "57P03": ("starting", "the server is starting up or shutting down"),
    "55P03": ("conflict", "lock not available"),
    "40001": ("conflict", "serialization failure"),
    "40P01": ("conflict", "deadlock"),
}

# libpq's and psycopg's own messages, for failures before the server sent an error (no
# SQLSTATE). The first match wins; each names the cause without quoting hosts or users.
_MESSAGE_KINDS = [
    (re.compile(pattern), kind, cause)
    for pattern, kind, cause in (
        (r"timeout expired", "timeout", "connection timed out"),
        (r"no reply from the database (within [\d.]+ s)", "timeout", "no reply {0}"),
        (r"connection refused", "refused", "connection refused"),
        (r"failed to resolve host|could not translate host name", "unknown_host", "unknown host"),
        (r'database ".*" does not exist', "no_database", "database does not exist"),
        (r'role ".*" does not exist', "login", "role does not exist"),
        (r"password authentication failed", "login", "password authentication failed"),
        (r"no pg_hba\.conf entry", "login", "not allowed by pg_hba.conf"),
        (r"is starting up|is shutting down", "starting", "the server is starting or stopping"),
        (r"too many clients|too many connections", "overloaded", "too many connections"),
        (
            r"server closed the connection|connection is (closed|lost)|connection reset"
            r"|could not (receive|send) data|ssl syscall error|broken pipe",
            "lost",
            "connection lost",
        ),
    )
]

# A libpq parameter in the URL's query that libpq or psycopg rejects (the URL's fault).
_BAD_PARAMETERS = [
    (re.compile(pattern), cause)
    for pattern, cause in (
        (r'for connection option "(\w+)"', "invalid value for {0}"),
        (r'invalid connection option "(\w+)"', "unknown connection option {0}"),
        (r"bad value for (\w+)", "invalid value for {0}"),
        (r"invalid (\w+) value", "invalid value for {0}"),
    )
]


def _diagnose_psycopg(exc: psycopg.Error) -> _Diagnosis | None:
    state = exc.sqlstate or ""
    if state in _SQLSTATE_KINDS:
        return _Diagnosis(*_SQLSTATE_KINDS[state])
    if state == "57014":
        timeout = "statement timeout" in str(exc)
        return _Diagnosis("timeout", "statement timeout" if timeout else "statement canceled")
    if state.startswith("28"):
        return _Diagnosis("login", "not authorized")
    if state.startswith("08"):
        return _Diagnosis("lost", "connection failure")
    if state.startswith("58"):
        return _Diagnosis("ioerr", "the server's disk failed")
    message = str(exc)
    if isinstance(exc, psycopg.ProgrammingError | psycopg.OperationalError):
        for pattern, cause in _BAD_PARAMETERS:
            if match := pattern.search(message):
                return _Diagnosis("bad_params", cause.format(*match.groups()))
    if not isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return None
    if state.startswith("54"):  # program limit exceeded: our statement, not the server
        return None
    message = message.lower()
    for pattern, kind, cause in _MESSAGE_KINDS:
        if match := pattern.search(message):
            return _Diagnosis(kind, cause.format(*match.groups()))
    return _Diagnosis("unavailable", type(exc).__name__)
