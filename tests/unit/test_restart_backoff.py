"""The supervisor's restart delays for one worker slot, on a clock the test sets."""

from __future__ import annotations

from reelforge.worker.backoff import RestartBackoff


def _crash_loop(backoff: RestartBackoff, start: float, uptime_s: float, times: int) -> list[float]:
    """Delays for `times` exits, each after `uptime_s` up; restarts happen when told to."""
    delays = []
    now = start
    for _ in range(times):
        backoff.started(now)
        now += uptime_s
        delay = backoff.delay_after_exit(now)
        delays.append(delay)
        now += delay
    return delays


def test_a_process_that_keeps_dying_waits_longer_each_time_up_to_the_cap() -> None:
    backoff = RestartBackoff(healthy_uptime_s=60)
    assert _crash_loop(backoff, 0.0, uptime_s=1, times=8) == [0.5, 1, 2, 4, 8, 16, 30, 30]


def test_a_healthy_run_starts_the_delays_over() -> None:
    backoff = RestartBackoff(healthy_uptime_s=60)
    assert _crash_loop(backoff, 0.0, uptime_s=1, times=7)[-1] == 30

    # Up for the healthy period, then a crash: as cheap as the first one ever was.
    assert _crash_loop(backoff, 1000.0, uptime_s=60, times=1) == [0.5]
    # And a new crash loop after it grows from there again.
    assert _crash_loop(backoff, 2000.0, uptime_s=1, times=3) == [1, 2, 4]


def test_a_run_just_short_of_healthy_does_not_reset() -> None:
    backoff = RestartBackoff(healthy_uptime_s=60)
    _crash_loop(backoff, 0.0, uptime_s=1, times=3)
    assert _crash_loop(backoff, 1000.0, uptime_s=59.9, times=1) == [4]
