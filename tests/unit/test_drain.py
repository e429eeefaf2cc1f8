"""The drain clock of a worker told to stop: a grace period, cut short by a second request."""

from __future__ import annotations

from reelforge.worker.drain import Drain


class FakeClock:
    """A monotonic clock the test moves by hand (a fake: no waiting)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_running_job_may_go_on_until_the_grace_period_ends() -> None:
    clock = FakeClock()
    drain = Drain(60.0, clock)
    assert not drain.requested and not drain.overdue
    clock.now += 1000
    assert not drain.overdue  # no request, no deadline

    drain.request()
    assert drain.requested
    clock.now += 59.9
    assert not drain.overdue
    clock.now += 0.1
    assert drain.overdue


def test_a_second_request_ends_the_grace_period_at_once() -> None:
    clock = FakeClock()
    drain = Drain(60.0, clock)
    drain.request()
    clock.now += 5
    assert not drain.overdue
    drain.request()
    assert drain.overdue


def test_zero_grace_hands_the_job_back_at_the_next_step() -> None:
    drain = Drain(0.0, FakeClock())
    drain.request()
    assert drain.overdue


def test_waiting_ends_when_a_drain_is_requested_or_the_timeout_passes() -> None:
    drain = Drain(60.0, poll_s=0.01)
    assert drain.wait(0.02) is False
    drain.request()
    assert drain.wait(30.0) is True  # returns at once, not after 30 s
