"""Clips longer than a model renders in one pass, as a chain of overlapping segments.

Most open video models render at most about five seconds (Wan: 81 frames at 16 fps, 121 at
24 fps). For a 10 s request the engine renders a first segment, then each next one through the
model's image-to-video path, conditioned on a frame `overlap` frames before the end of what is
rendered so far. The next segment's first `overlap` frames then show the same moment as the
last `overlap` frames already rendered, and the two are cross-faded, so the seam has neither a
duplicated frame nor a jump in motion:

    segment 0:  [0 ............................ 80]
    segment 1:                       [76 ............................ 156]
                                      ^^^^^ cross-faded (overlap 5)

`plan_segments` decides where segments start and how long each is; `append_segment` joins them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Segment", "append_segment", "plan_segments"]


@dataclass(frozen=True)
class Segment:
    """One model pass: it renders `frames` frames, the first at index `start` of the clip."""

    start: int
    frames: int


def plan_segments(total: int, max_frames: int, overlap: int, temporal_factor: int) -> list[Segment]:
    """Segments covering `total` frames, each at most `max_frames` long and of the length the
    VAE needs (k * temporal_factor + 1), every one after the first starting `overlap` frames
    before the end of the previous one. The last may run past `total`; the caller trims it.
    """
    if max_frames <= overlap + 1:
        raise ValueError(f"a segment of {max_frames} frames cannot overlap by {overlap}")
    if overlap < 1:
        raise ValueError("segments must share at least the conditioning frame (overlap >= 1)")

    def legal_length(wanted: int) -> int:
        # Round up to k * factor + 1, within the model's limit.
        groups = max(1, -(-(wanted - 1) // temporal_factor))
        longest = (max_frames - 1) // temporal_factor
        return min(groups, longest) * temporal_factor + 1

    segments = [Segment(0, legal_length(min(total, max_frames)))]
    covered = segments[0].frames
    while covered < total:
        start = covered - overlap
        segment = Segment(start, legal_length(total - start))
        if segment.frames <= overlap:  # cannot happen with the check above; guards the loop
            raise ValueError("segment too short to make progress")
        segments.append(segment)
        covered = start + segment.frames
    return segments


def append_segment(clip: np.ndarray, segment: np.ndarray, start: int) -> np.ndarray:
    """`clip` (T, H, W, 3) extended by `segment`, whose frame 0 shows the moment of
    clip[start]; the frames both cover are cross-faded linearly from the old to the new."""
    overlap = clip.shape[0] - start
    if not 0 < overlap <= segment.shape[0]:
        raise ValueError(f"segment starting at {start} does not overlap a {len(clip)}-frame clip")
    # Weights of the new segment, rising towards 1 but never reaching it inside the overlap,
    # so the old clip's frames and the new segment's both contribute to every shared frame.
    weights = np.arange(1, overlap + 1, dtype=np.float32) / (overlap + 1)
    weights = weights[:, None, None, None]
    old, new = clip[start:].astype(np.float32), segment[:overlap].astype(np.float32)
    blended = (1.0 - weights) * old + weights * new
    if clip.dtype == np.uint8:
        blended = np.clip(np.rint(blended), 0, 255)
    return np.concatenate([clip[:start], blended.astype(clip.dtype), segment[overlap:]], axis=0)
