"""The job lifecycle: one status enum with its meaning per state.

    queued ──claim──▶ running ──▶ succeeded
      ▲                 │ ├────▶ failed
      └─lease expired───┘ └────▶ canceled
        (attempts left)

Every transition is made in `reelforge.jobs.store`, and every write by a worker there is
fenced by the lease token it got when it claimed the job.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["JobStatus"]


class JobStatus(StrEnum):
    QUEUED = "queued"
    """Waiting for a worker that serves its model; also where a lost worker's job returns."""
    RUNNING = "running"
    """Claimed by one worker that holds a lease and renews it by heartbeat."""
    SUCCEEDED = "succeeded"
    """Done; the video, preview and thumbnail are in storage."""
    FAILED = "failed"
    """Done without a video; `error_name` and `error_message` say why."""
    CANCELED = "canceled"
    """Stopped at the user's request before it finished."""

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED})
