"""How long the supervisor waits before restarting a worker process that exited.

A process that keeps dying waits longer each time (0.5 s, 1 s, 2 s, ... up to 30 s), so a
broken model does not spin the CPU; one that had stayed up for a healthy while starts the
count over, so a crash on day three of a server's life costs half a second, not thirty.
Pure: the caller passes the clock's readings in.
"""

from __future__ import annotations

__all__ = ["HEALTHY_UPTIME_S", "RestartBackoff"]

# Short against a server's lifetime, long against a crash loop's period. A process that dies
# after loading a model for longer than this restarts at once, but its own load paces it.
HEALTHY_UPTIME_S = 60.0
FIRST_DELAY_S = 0.5
MAX_DELAY_S = 30.0


class RestartBackoff:
    """The restart delays of one worker slot."""

    def __init__(
        self,
        healthy_uptime_s: float = HEALTHY_UPTIME_S,
        first_delay_s: float = FIRST_DELAY_S,
        max_delay_s: float = MAX_DELAY_S,
    ) -> None:
        self.healthy_uptime_s = healthy_uptime_s
        self.first_delay_s = first_delay_s
        self.max_delay_s = max_delay_s
        self.crashes = 0  # exits in a row without a healthy run between them
        self._started_at: float | None = None

    def started(self, now: float) -> None:
        """The slot's process was started at `now`."""
        self._started_at = now

    def delay_after_exit(self, now: float) -> float:
        """Seconds to wait before restarting the process that was found exited at `now`."""
        if self._started_at is not None and now - self._started_at >= self.healthy_uptime_s:
            self.crashes = 0
        self._started_at = None
        self.crashes += 1
        return min(self.max_delay_s, self.first_delay_s * 2 ** (self.crashes - 1))
