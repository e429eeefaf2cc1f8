"""The idle worker's wait: woken by its event, and stopped promptly however long the poll."""

from __future__ import annotations

import multiprocessing
import threading
import time

from reelforge.worker.runner import wait_for_work

LONG_POLL_S = 30.0


def timed_wait(wake: object, stop: threading.Event, after: threading.Event) -> float:
    """Seconds `wait_for_work` took when `after` is set from another thread once it waits."""
    setter = threading.Timer(0.05, after.set)
    started = time.monotonic()
    setter.start()
    wait_for_work(wake, stop, LONG_POLL_S)
    setter.join()
    return time.monotonic() - started


def test_a_wake_ends_the_wait_and_is_cleared() -> None:
    wake, stop = threading.Event(), threading.Event()
    assert timed_wait(wake, stop, after=wake) < 5
    assert not wake.is_set()  # the next wait waits again


def test_a_stop_ends_a_long_wait_on_a_wake_event_of_serve() -> None:
    wake, stop = multiprocessing.get_context("spawn").Event(), threading.Event()
    assert timed_wait(wake, stop, after=stop) < 5


def test_without_a_wake_event_the_stop_ends_the_wait() -> None:
    stop = threading.Event()
    assert timed_wait(None, stop, after=stop) < 5
