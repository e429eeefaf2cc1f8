"""Real database failures and what they become: 503 or 507 errors, None for bugs; bounded waits.

Each failure is made for real: a closed port, SQLite's page limit, a read-only open, a held
write lock, PostgreSQL's statement timeout, and the fault proxy's refuse and black-hole.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.engine import make_url

from reelforge.errors import DatabaseUnavailable, InsufficientStorage
from reelforge.jobs import JobStore, open_engine, translate_db_error
from reelforge.jobs.schema import migrate
from tests.conftest import make_spec
from tests.e2e.conftest import free_port
from tests.faults import FaultProxy


def failure_of(call: Callable[[], Any], within_s: float) -> tuple[BaseException, float]:
    """The exception `call` raises and how long it took; fails the test if it runs longer
    than `within_s` (the call goes on in a daemon thread: a hang cannot hang the test)."""
    outcome: list[Any] = []

    def run() -> None:
        started = time.monotonic()
        try:
            call()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)
        outcome.append(time.monotonic() - started)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(within_s)
    if thread.is_alive():
        pytest.fail(f"the call was still waiting after {within_s} s")
    error, elapsed = outcome
    if error is None:
        pytest.fail("the call succeeded; expected a database failure")
    return error, elapsed


def test_refused_connection_is_503_naming_it_without_the_password() -> None:
    engine = open_engine(f"postgresql+psycopg://postgres:s3cret@127.0.0.1:{free_port()}/test")
    error, elapsed = failure_of(lambda: JobStore(engine).get_job("x"), within_s=5)
    translated = translate_db_error(error)
    assert isinstance(translated, DatabaseUnavailable)
    assert "connection refused" in translated.message
    assert "s3cret" not in translated.message and "127.0.0.1" not in translated.message
    assert translated.retry_after_s > 0
    assert elapsed < 1.0


def _limit_pages(engine: Engine, pages: int) -> None:
    @event.listens_for(engine, "connect")
    def _limit(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA max_page_count={pages}")


def test_full_sqlite_database_is_507(sqlite_url: str) -> None:
    engine = open_engine(sqlite_url)
    migrate(engine)
    with engine.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
    engine.dispose()
    _limit_pages(engine, pages)  # a real SQLITE_FULL without filling a disk
    store = JobStore(engine)
    error, _ = failure_of(
        lambda: [store.create_job(make_spec(prompt="x" * 1000)) for _ in range(50)], within_s=5
    )
    translated = translate_db_error(error)
    assert isinstance(translated, InsufficientStorage)
    assert translated.status_code == 507
    assert "database or disk is full" in translated.message


def test_read_only_sqlite_database_is_503(sqlite_url: str) -> None:
    migrate(open_engine(sqlite_url))
    path = make_url(sqlite_url).database
    read_only = open_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    error, _ = failure_of(lambda: JobStore(read_only).create_job(make_spec()), within_s=5)
    translated = translate_db_error(error)
    assert isinstance(translated, DatabaseUnavailable)
    assert "readonly database" in translated.message


def test_locked_sqlite_database_is_503_retry_soon(sqlite_url: str) -> None:
    engine = open_engine(sqlite_url, sqlite_busy_timeout_s=0.2)
    migrate(engine)
    holder = sqlite3.connect(make_url(sqlite_url).database or "", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write lock
    try:
        error, elapsed = failure_of(lambda: JobStore(engine).create_job(make_spec()), 5)
    finally:
        holder.close()
    translated = translate_db_error(error)
    assert isinstance(translated, DatabaseUnavailable)
    assert "database is locked" in translated.message
    assert translated.retry_after_s == 1
    assert 0.15 < elapsed < 2.0  # the busy timeout, not the 30 s default


def test_programming_errors_are_not_translated(store: JobStore) -> None:
    def bad_sql() -> None:
        with store.engine.connect() as conn:
            conn.execute(text("SELECT * FROM no_such_table"))

    error, _ = failure_of(bad_sql, within_s=5)
    assert translate_db_error(error) is None
    assert translate_db_error(ValueError("not a database problem")) is None


@pytest.mark.postgres
def test_statement_timeout_is_503_and_keeps_the_url_options(postgres_url: str) -> None:
    engine = open_engine(postgres_url, statement_timeout_s=0.5)
    with engine.connect() as conn:
        assert conn.execute(text("SHOW statement_timeout")).scalar_one() == "500ms"
        assert conn.execute(text("SHOW search_path")).scalar_one().startswith("t_")

    def slow() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_sleep(5)"))

    error, elapsed = failure_of(slow, within_s=4)
    translated = translate_db_error(error)
    assert isinstance(translated, DatabaseUnavailable)
    assert "statement timeout" in translated.message
    assert elapsed < 1.4  # the server cancelled it, before the client's deadline
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar_one() == 1


@pytest.mark.postgres
def test_client_deadline_ends_a_reply_the_server_never_sends(postgres_url: str) -> None:
    # statement_timeout=0 in the URL wins over ours: only the client-side deadline is left.
    schema_options = make_url(postgres_url).query["options"]
    url = make_url(postgres_url).update_query_dict(
        {"options": f"{schema_options} -c statement_timeout=0"}
    )
    engine = open_engine(url.render_as_string(hide_password=False), statement_timeout_s=0.5)

    def silent() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_sleep(10)"))

    error, elapsed = failure_of(silent, within_s=6)
    translated = translate_db_error(error)
    assert isinstance(translated, DatabaseUnavailable)
    assert "no reply within 1.5 s" in translated.message
    assert 1.3 < elapsed < 3.0
    with engine.connect() as conn:  # the pool dropped that connection and made a new one
        assert conn.execute(text("SELECT 1")).scalar_one() == 1


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[FaultProxy]:
    with FaultProxy(make_url(postgres_url).port or 5432) as proxy:
        yield proxy


@pytest.fixture
def proxied_store(proxy: FaultProxy, postgres_url: str) -> Iterator[JobStore]:
    engine = open_engine(proxy.url_for(postgres_url), connect_timeout_s=2, statement_timeout_s=1)
    migrate(engine)
    yield JobStore(engine)
    engine.dispose()


@pytest.mark.postgres
def test_refused_then_healed_the_same_engine_recovers(
    proxy: FaultProxy, proxied_store: JobStore
) -> None:
    job = proxied_store.create_job(make_spec())
    proxy.refuse()
    error, elapsed = failure_of(lambda: proxied_store.get_job(job.id), within_s=5)
    assert isinstance(translate_db_error(error), DatabaseUnavailable)
    assert elapsed < 1.0
    proxy.heal()
    found = proxied_store.get_job(job.id)  # pre-ping drops the dead connection, reconnects
    assert found is not None and found.id == job.id


@pytest.mark.postgres
def test_blackhole_fails_a_new_connection_within_connect_timeout(
    proxy: FaultProxy, proxied_store: JobStore
) -> None:
    job = proxied_store.create_job(make_spec())
    proxied_store.engine.dispose()  # no pooled connection: the next call must connect
    proxy.blackhole()
    error, elapsed = failure_of(lambda: proxied_store.get_job(job.id), within_s=8)
    translated = translate_db_error(error)
    assert isinstance(translated, DatabaseUnavailable)
    assert "connection timed out" in translated.message
    assert 1.5 < elapsed < 3.5
    proxy.heal()
    assert proxied_store.get_job(job.id) is not None


@pytest.mark.postgres
def test_blackhole_fails_a_pooled_connection_within_its_deadline(
    proxy: FaultProxy, proxied_store: JobStore
) -> None:
    job = proxied_store.create_job(make_spec())  # leaves a connection in the pool
    proxy.blackhole()
    error, elapsed = failure_of(lambda: proxied_store.get_job(job.id), within_s=10)
    # The ping gets statement_timeout_s + 1 = 2 s, then one reconnect its 2 s.
    assert isinstance(translate_db_error(error), DatabaseUnavailable)
    assert elapsed < 5.5
    proxy.heal()
    assert proxied_store.get_job(job.id) is not None
