"""Benchmark: what the access middleware (request metrics + access line) costs per request.

wrk is not on every machine, so this drives the ASGI path in-process: the real app
(`create_app`, keyless, SQLite) answering `GET /v1/nothing` (a 404 through every middleware,
the router and the error handler, with no database call, so the figure is not noise from a
thread hop), in four builds:

- without the access middleware (before this change),
- with it, metrics on and the access log off,
- with it, metrics off and the access line written (JSON, to /dev/null),
- with both (the default).

Each is timed over `--requests` calls, interleaved over `--rounds`, and the median round's
microseconds per request are printed with the difference to the first build. The routing of
a 404 alone costs about a millisecond, and on a shared machine its noise hides a few
microseconds, so the middleware is also timed alone, around an ASGI app that answers at once.

    python benchmarks/access_overhead.py [--requests 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from reelforge.api.access import AccessMiddleware
from reelforge.api.app import build_context, create_app
from reelforge.engines import Registry
from reelforge.jobs import open_store
from reelforge.logs import log_handler
from reelforge.settings import Settings
from reelforge.storage import open_storage


def build(data_dir: Path, *, access: bool, metrics: bool, log: bool) -> FastAPI:
    settings = Settings(data_dir=data_dir, metrics="keyed" if metrics else "off", access_log=log)
    store = open_store(settings.resolved_database_url)
    ctx = build_context(
        settings, store, open_storage(settings.resolved_storage_url), Registry.load()
    )
    app = create_app(ctx)
    if not access:
        app.user_middleware = [m for m in app.user_middleware if m.cls is not AccessMiddleware]
    return app


async def drive(app: Any, requests: int) -> float:
    """Seconds for `requests` sequential calls of the app."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/v1/nothing",
        "raw_path": b"/v1/nothing",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    started = time.perf_counter()
    for _ in range(requests):
        await app(dict(scope), receive, send)
    return time.perf_counter() - started


async def _answer(scope: Any, receive: Any, send: Any) -> None:
    scope["route"] = _ROUTE
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


class _Route:
    path = "/v2/video/generations/{generation_id}"


_ROUTE = _Route()


def isolated(metrics: bool, log: bool) -> Any:
    from reelforge.api.metrics import HttpMetrics

    return AccessMiddleware(_answer, HttpMetrics() if metrics else None, log)


def report(title: str, times: dict[str, list[float]], requests: int) -> None:
    first = next(iter(times))
    base = statistics.median(times[first]) / requests * 1e6
    print(f"{title:<32} {'us/request':>10} {'added':>8}")
    for name, seconds in times.items():
        us = statistics.median(seconds) / requests * 1e6
        print(f"  {name:<30} {us:>10.1f} {us - base:>+8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with open(os.devnull, "w") as null, tempfile.TemporaryDirectory() as tmp:
        root = logging.getLogger()
        root.addHandler(log_handler("json", null))
        root.setLevel(logging.INFO)
        builds = {
            "no access middleware": build(Path(tmp), access=False, metrics=False, log=False),
            "metrics only": build(Path(tmp), access=True, metrics=True, log=False),
            "access line only": build(Path(tmp), access=True, metrics=False, log=True),
            "metrics + access line": build(Path(tmp), access=True, metrics=True, log=True),
        }
        times: dict[str, list[float]] = {name: [] for name in builds}
        for app in builds.values():  # warm up: the middleware stack is built on first call
            asyncio.run(drive(app, 200))
        for _ in range(args.rounds):
            for name, app in builds.items():
                times[name].append(asyncio.run(drive(app, args.requests)))
        report("the app, GET of a 404", times, args.requests)
        alone: dict[str, Any] = {
            "bare app": _answer,
            "metrics only": isolated(metrics=True, log=False),
            "access line only": isolated(metrics=False, log=True),
            "metrics + access line": isolated(metrics=True, log=True),
        }
        times = {name: [] for name in alone}
        for _ in range(args.rounds):
            for name, app in alone.items():
                times[name].append(asyncio.run(drive(app, args.requests * 10)))
        report("the middleware alone", times, args.requests * 10)


if __name__ == "__main__":
    main()
