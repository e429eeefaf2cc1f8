"""`api.dbgate.DatabaseGate`: writes one at a time where asked (SQLite), reads beside them."""

from __future__ import annotations

import asyncio
import threading

from reelforge.api.dbgate import DatabaseGate
from reelforge.errors import DatabaseUnavailable

WRITES = 12


class Overlap:
    """Counts how many calls run at once, each holding its place for a moment."""

    def __init__(self) -> None:
        self.active = 0
        self.most = 0
        self.done = 0
        self._lock = threading.Lock()

    def call(self) -> int:
        with self._lock:
            self.active += 1
            self.most = max(self.most, self.active)
        threading.Event().wait(0.01)  # work that lets the other threads run
        with self._lock:
            self.active -= 1
            self.done += 1
            return self.done


def test_serialized_writes_never_overlap() -> None:
    gate = DatabaseGate(10.0, 8, lambda _exc: None, serialize_writes=True)
    writes = Overlap()

    async def calls() -> list[int]:
        return list(await asyncio.gather(*(gate.write(writes.call) for _ in range(WRITES))))

    results = asyncio.run(calls())
    gate.close()
    assert writes.most == 1
    assert sorted(results) == list(range(1, WRITES + 1))


def test_reads_run_beside_a_serialized_write() -> None:
    gate = DatabaseGate(10.0, 8, lambda _exc: None, serialize_writes=True)
    both = Overlap()
    started = threading.Barrier(3, timeout=10)  # passes only with the write and the read in flight

    def write() -> int:
        started.wait()
        return both.call()

    async def calls() -> None:
        await asyncio.gather(gate.write(write), gate.run(write), asyncio.to_thread(started.wait))

    asyncio.run(calls())
    gate.close()
    assert both.done == 2


def test_a_write_that_waits_past_its_deadline_is_unavailable_and_takes_no_turn() -> None:
    gate = DatabaseGate(10.0, 4, lambda _exc: None, serialize_writes=True)
    stuck = threading.Event()

    def hang() -> str:
        stuck.wait(10)
        return "first"

    async def calls() -> list[object]:
        first = asyncio.ensure_future(gate.write(hang))
        await asyncio.sleep(0)  # the first write takes the turn and holds it until `stuck`
        gate.timeout_s = 0.3  # the next write's deadline passes while it waits
        queued = await asyncio.gather(gate.write(lambda: "queued"), return_exceptions=True)
        stuck.set()
        return [await first, *queued, await gate.write(lambda: "after")]

    first, queued, after = asyncio.run(calls())
    gate.close()
    assert first == "first"
    assert isinstance(queued, DatabaseUnavailable) and "within 0.3 s" in queued.message
    assert after == "after"  # the turn came free again
