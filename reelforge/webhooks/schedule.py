"""When a failed webhook delivery is tried again: a list of delays, each with jitter."""

from __future__ import annotations

import random
from collections.abc import Sequence

__all__ = ["RetrySchedule"]


class RetrySchedule:
    """`delays_s[n - 1]` (`Settings.webhook_retry_schedule_s`) is the wait after the n-th
    failed attempt, give or take `jitter` (a fraction: 0.2 is ±20 %), so that deliveries a
    receiver's outage failed together do not all come back in the same second. After the
    last delay's attempt fails, none follows.
    """

    def __init__(
        self,
        delays_s: Sequence[float],
        *,
        jitter: float = 0.2,
        rng: random.Random | None = None,
    ) -> None:
        if any(delay < 0 for delay in delays_s):
            raise ValueError("retry delays must not be negative")
        if not 0 <= jitter < 1:
            raise ValueError("jitter must be at least 0 and below 1")
        self.delays_s = tuple(float(delay) for delay in delays_s)
        self.jitter = jitter
        self._rng = rng or random.Random()

    @property
    def max_attempts(self) -> int:
        """The first attempt and one per delay."""
        return len(self.delays_s) + 1

    def delay_after(self, attempt: int) -> float | None:
        """Seconds to wait after failed attempt number `attempt` (1-based), or None when it
        was the last."""
        if attempt < 1 or attempt > len(self.delays_s):
            return None
        base = self.delays_s[attempt - 1]
        return base * (1 + self._rng.uniform(-self.jitter, self.jitter))

    @property
    def span_s(self) -> float:
        """How long retries go on after the first attempt, without jitter."""
        return sum(self.delays_s)
