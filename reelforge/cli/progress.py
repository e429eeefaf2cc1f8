"""Following a generation from the terminal: the progress bar `generate` and `wait` share.

    queued (2 ahead)   0%|          | 00:03 ETA 0:41
    rendering  40%|████      | 00:12 ETA 0:18
    encoding  95%|█████████▌| 00:29

Imported only when a command runs (tqdm and the client are too heavy for `reelforge --help`).
"""

from __future__ import annotations

import sys

from tqdm import tqdm

from reelforge.client import Generation, ReelforgeClient

__all__ = [
    "ENCODING_FROM_PERCENT",
    "ProgressBar",
    "describe",
    "eta_text",
    "follow",
    "print_warnings",
    "still_on_server",
]

ENCODING_FROM_PERCENT = 90
"""A reelforge worker gives the engine the first 90 % of the progress bar and encoding and
storing the files the rest (`worker.runner`): past it the frames are being encoded."""


def follow(
    client: ReelforgeClient,
    first: Generation,
    *,
    poll_interval_s: float,
    timeout_s: float | None,
) -> Generation:
    """Wait for a generation under a progress bar; return it once completed.

    Raises what `ReelforgeClient.wait` raises (`GenerationFailed`, `WaitTimeout`, ...). On
    Ctrl-C, says that the job goes on on the server and how to pick it up or cancel it, then
    lets the `KeyboardInterrupt` through (exit code 130).
    """
    try:
        with ProgressBar(first) as bar:
            # `wait` follows the server's event stream (polling a server without one).
            return client.wait(
                first.id,
                poll_interval_s=poll_interval_s,
                timeout_s=timeout_s,
                on_update=bar.update,
            )
    except KeyboardInterrupt:
        print(f"reelforge: stopped waiting; {still_on_server(first.id)}", file=sys.stderr)
        raise


def still_on_server(generation_id: str) -> str:
    """What a user can do about a generation this command stopped following."""
    return (
        f"generation {generation_id} goes on on the server: `reelforge wait {generation_id}` "
        f"picks it up, `reelforge cancel {generation_id}` cancels it"
    )


def print_warnings(generation: Generation) -> None:
    """Print each of the engine's `meta.warnings` (e.g. that the prompt is outside what the
    model knows) to stderr, one line each."""
    warnings = generation.meta.get("warnings") or []
    if isinstance(warnings, str):
        warnings = [warnings]
    for warning in warnings:
        print(f"reelforge: warning: {warning}", file=sys.stderr)


class ProgressBar:
    """A tqdm bar on stderr: the phase (queued, with how many ahead; rendering; encoding),
    percent done and the server's ETA, updated on each state the client reports."""

    def __init__(self, first: Generation) -> None:
        # sys.stderr is read here, not at import, so redirected or captured stderr is used.
        self._bar = tqdm(
            total=100,
            initial=_percent(first),
            desc=describe(first),
            file=sys.stderr,
            bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}{postfix}",
            dynamic_ncols=True,
        )
        self._bar.set_postfix_str(eta_text(first), refresh=False)

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._bar.close()

    def update(self, generation: Generation) -> None:
        """Show one state (the callback handed to `wait`)."""
        self._bar.set_description_str(describe(generation), refresh=False)
        self._bar.set_postfix_str(eta_text(generation), refresh=False)
        self._bar.n = _percent(generation)
        self._bar.refresh()


def describe(generation: Generation) -> str:
    """The phase: `queued (2 ahead)`, `rendering`, `encoding`, or the status word."""
    ahead = generation.queue_position
    if generation.status == "queued" and ahead is not None:
        return "queued (next)" if ahead == 0 else f"queued ({ahead} ahead)"
    if generation.status == "generating":
        return "encoding" if generation.progress >= ENCODING_FROM_PERCENT else "rendering"
    return generation.status


def eta_text(generation: Generation) -> str:
    """`ETA m:ss` from the server's `eta_seconds`; empty when finished or unknown."""
    eta_s = generation.eta_seconds
    if generation.is_terminal or eta_s is None:
        return ""
    minutes, seconds = divmod(round(eta_s), 60)
    return f"ETA {minutes}:{seconds:02d}"


def _percent(generation: Generation) -> int:
    return max(0, min(100, generation.progress))
