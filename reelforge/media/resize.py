"""Conform an engine's frames to the exact output: frame count, then size (cover, centre-crop).

Engines render at their native size and rate; the request fixes the output. Scaling runs in
swscale through PyAV, one reformatter per thread, on the cropped native frame, so each output
frame costs one small scale and one copy.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from av.video.frame import VideoFrame
from av.video.reformatter import Interpolation, VideoReformatter

__all__ = ["check_frames", "conform_frames", "fit_width", "usable_cpus"]

# Bicubic upscales a 320x180 render to 720p without LANCZOS's ringing; swscale widens the
# filter when shrinking, so it also serves engines that render above the output size.
_SCALE_FLAGS = Interpolation.BICUBIC | Interpolation.ACCURATE_RND
# swscale writes planar RGB about five times faster than packed rgb24 (its packed RGB
# writer is plain C); interleaving the planes afterwards in numpy is one cheap copy.
_PLANAR_RGB = "gbrp"
_GBRP_PLANE_FOR_RGB = (2, 0, 1)  # gbrp stores G, B, R: the plane holding R, G, then B


def check_frames(frames: np.ndarray) -> None:
    """Raise ValueError unless `frames` is a non-empty uint8 (frames, height, width, 3) array."""
    if not isinstance(frames, np.ndarray):
        raise ValueError(f"frames must be a numpy array, got {type(frames).__name__}")
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(
            f"frames must be uint8 shaped (frames, height, width, 3), got {frames.dtype} "
            f"{frames.shape}"
        )
    if 0 in frames.shape:
        raise ValueError(f"frames must not be empty, got shape {frames.shape}")


def usable_cpus() -> int:
    """Return how many CPUs this process may run on (the container's share, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def fit_width(width: int, height: int, max_width: int) -> tuple[int, int]:
    """Return (width, height) shrunk to at most `max_width` wide, keeping the aspect ratio."""
    if max_width < 1:
        raise ValueError(f"max_width must be at least 1, got {max_width}")
    if width <= max_width:
        return width, height
    return max_width, max(1, round(height * max_width / width))


@dataclass(frozen=True)
class _CoverPlan:
    """How one native frame becomes one output frame: crop natively, scale, crop the rest."""

    crop_x: int
    crop_y: int
    crop_width: int
    crop_height: int
    scaled_width: int
    scaled_height: int
    offset_x: int
    offset_y: int

    @property
    def needs_scaling(self) -> bool:
        return (self.scaled_width, self.scaled_height) != (self.crop_width, self.crop_height)


def _cover_plan(native_width: int, native_height: int, width: int, height: int) -> _CoverPlan:
    """Plan a cover-and-centre-crop from native size to (width, height) with no stretching.

    The exact crop box is fractional; cropping it to whole native pixels would stretch the
    picture by up to a pixel's worth, visible after a 4x upscale. So the native crop keeps the
    whole pixels around the exact box, scales them by the exact factor, and the sub-pixel
    remainder (a few output pixels) is cropped after scaling.
    """
    scale = max(width / native_width, height / native_height)
    box_width = width / scale
    box_height = height / scale
    left = (native_width - box_width) / 2
    top = (native_height - box_height) / 2
    # Round before floor/ceil: 180 / (1280 / 180) * (1280 / 180) is not quite 180.
    crop_x = max(0, math.floor(round(left, 6)))
    crop_y = max(0, math.floor(round(top, 6)))
    crop_right = min(native_width, math.ceil(round(left + box_width, 6)))
    crop_bottom = min(native_height, math.ceil(round(top + box_height, 6)))
    crop_width = crop_right - crop_x
    crop_height = crop_bottom - crop_y
    scaled_width = max(width, round(crop_width * scale))
    scaled_height = max(height, round(crop_height * scale))
    return _CoverPlan(
        crop_x=crop_x,
        crop_y=crop_y,
        crop_width=crop_width,
        crop_height=crop_height,
        scaled_width=scaled_width,
        scaled_height=scaled_height,
        offset_x=min(scaled_width - width, max(0, round((left - crop_x) * scale))),
        offset_y=min(scaled_height - height, max(0, round((top - crop_y) * scale))),
    )


def conform_frames(frames: np.ndarray, width: int, height: int, num_frames: int) -> np.ndarray:
    """Return `frames` resampled to exactly `num_frames` frames of `width` x `height`.

    Output frame i shows native frame floor(i * T / num_frames), so the clip keeps its content
    and only its rate changes, whether frames are dropped or repeated. Each frame is scaled to
    cover the output (aspect kept) and centre-cropped, never stretched.

    >>> clip = np.zeros((16, 180, 320, 3), dtype=np.uint8)
    >>> conform_frames(clip, 1280, 720, 120).shape
    (120, 720, 1280, 3)
    """
    check_frames(frames)
    if width < 1 or height < 1:
        raise ValueError(f"output size must be positive, got {width}x{height}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    native_count, native_height, native_width = frames.shape[:3]
    sources = np.arange(num_frames, dtype=np.int64) * native_count // num_frames
    plan = _cover_plan(native_width, native_height, width, height)

    if not plan.needs_scaling:
        # Same size, or a crop of it: plain indexing is the whole job.
        top = plan.crop_y + plan.offset_y
        left = plan.crop_x + plan.offset_x
        return np.ascontiguousarray(frames[sources, top : top + height, left : left + width])

    out = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    # `sources` never decreases, so each native frame owns one run of outputs: scale it into
    # the run's first slot and copy that into the rest.
    run_starts = np.flatnonzero(np.diff(sources, prepend=-1)).tolist()
    runs = list(zip(run_starts, [*run_starts[1:], num_frames], strict=True))
    workers = min(usable_cpus(), len(runs))
    if workers <= 1:
        _scale_runs(frames, sources, runs, plan, out)
        return out
    # swscale and numpy copies release the GIL, so threads scale frames in parallel.
    chunks = [runs[worker::workers] for worker in range(workers)]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="conform") as pool:
        for done in [pool.submit(_scale_runs, frames, sources, c, plan, out) for c in chunks]:
            done.result()
    return out


def _scale_runs(
    frames: np.ndarray,
    sources: np.ndarray,
    runs: list[tuple[int, int]],
    plan: _CoverPlan,
    out: np.ndarray,
) -> None:
    """Scale the native frame of each (start, stop) run into out[start], then fill the run."""
    reformatter = VideoReformatter()  # one per thread: a reformatter is not thread-safe
    height, width = out.shape[1:3]
    rows = slice(plan.offset_y, plan.offset_y + height)
    columns = slice(plan.offset_x, plan.offset_x + width)
    for start, stop in runs:
        native = frames[
            sources[start],
            plan.crop_y : plan.crop_y + plan.crop_height,
            plan.crop_x : plan.crop_x + plan.crop_width,
        ]
        if native.strides[1:] != (3, 1):
            native = np.ascontiguousarray(native)
        # from_numpy_buffer wraps the crop view without copying it.
        source = VideoFrame.from_numpy_buffer(native, format="rgb24")
        scaled = reformatter.reformat(
            source,
            width=plan.scaled_width,
            height=plan.scaled_height,
            format=_PLANAR_RGB,
            interpolation=_SCALE_FLAGS,
            threads=1,  # parallelism comes from the thread pool, one frame per thread
        )
        for channel, plane_index in enumerate(_GBRP_PLANE_FOR_RGB):
            plane = scaled.planes[plane_index]
            pixels = np.frombuffer(memoryview(plane), dtype=np.uint8).reshape(
                plane.height, plane.line_size
            )
            out[start, :, :, channel] = pixels[rows, columns]
        if stop > start + 1:
            out[start + 1 : stop] = out[start]
