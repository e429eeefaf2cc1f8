"""The test fault proxy itself, in front of the real PostgreSQL: pass, refuse, black-hole, heal."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.faults import FaultProxy

pytestmark = pytest.mark.postgres


def _connect(url: str, **params: Any) -> psycopg.Connection[Any]:
    parsed = make_url(url)
    return psycopg.connect(
        host=parsed.host,
        port=parsed.port,
        user=parsed.username,
        dbname=parsed.database,
        autocommit=True,
        **params,
    )


@pytest.fixture
def proxy(postgres_url: str) -> Any:
    with FaultProxy(make_url(postgres_url).port or 5432) as proxy:
        yield proxy


@pytest.fixture
def proxied_url(proxy: FaultProxy, postgres_url: str) -> str:
    return proxy.url_for(postgres_url)


def test_pass_mode_relays_a_session(proxied_url: str) -> None:
    with _connect(proxied_url) as conn:
        assert conn.execute("SELECT 40 + 2").fetchone() == (42,)


def test_refuse_drops_open_connections_and_refuses_new_ones(
    proxy: FaultProxy, proxied_url: str
) -> None:
    conn = _connect(proxied_url)
    proxy.refuse()
    started = time.monotonic()
    with pytest.raises(psycopg.OperationalError):
        conn.execute("SELECT 1")
    with pytest.raises(psycopg.OperationalError, match="Connection refused"):
        _connect(proxied_url, connect_timeout=5)
    assert time.monotonic() - started < 1.0

    proxy.heal()  # the same port listens again
    with _connect(proxied_url) as healed:
        assert healed.execute("SELECT 1").fetchone() == (1,)


def test_blackhole_holds_queries_until_heal_and_times_out_connects(
    proxy: FaultProxy, proxied_url: str
) -> None:
    conn = _connect(proxied_url)
    proxy.blackhole()
    answers: list[Any] = []
    query = threading.Thread(
        target=lambda: answers.append(conn.execute("SELECT 7").fetchone()), daemon=True
    )
    query.start()
    query.join(0.5)
    assert query.is_alive(), "a black-holed connection answered"

    started = time.monotonic()
    with pytest.raises(psycopg.OperationalError, match="timeout"):
        _connect(proxied_url, connect_timeout=2)
    assert 1.5 < time.monotonic() - started < 3.5

    proxy.heal()  # what was sent meanwhile is delivered, and answered
    query.join(5.0)
    assert answers == [(7,)]
    with _connect(proxied_url) as fresh:
        assert fresh.execute("SELECT 1").fetchone() == (1,)
    conn.close()


def test_close_stops_the_proxy(postgres_url: str) -> None:
    proxy = FaultProxy(make_url(postgres_url).port or 5432)
    url = proxy.url_for(postgres_url)
    proxy.close()
    assert not proxy.running
    with pytest.raises(psycopg.OperationalError, match="Connection refused"):
        _connect(url, connect_timeout=2)


def test_only_loopback_upstreams() -> None:
    with pytest.raises(ValueError, match="loopback"):
        FaultProxy(5432, upstream_host="10.0.0.1")
