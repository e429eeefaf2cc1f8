"""Conform an engine's frames to the exact output: frame count, then size (cover, centre-crop).

Engines render at their native size and rate; the request fixes the output. `output_runs` and
`cover_plan` say which native frame each output frame shows and how it is cropped and scaled;
the encoders (`encode.py`, `gif.py`) use them to convert one native frame at a time straight
into their own format. `conform_frames` materialises the whole conformed clip in RGB: the
reference the streaming encoders are tested against, and the tool for small clips.
Scaling runs in swscale through PyAV, one reformatter per thread, on the cropped native frame.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from av.video.frame import VideoFrame
from av.video.reformatter import Interpolation, VideoReformatter

__all__ = [
    "CoverPlan",
    "check_frames",
    "check_output",
    "conform_frames",
    "cover_plan",
    "fit_long_side",
    "fit_width",
    "output_runs",
    "scale_rgb",
    "usable_cpus",
]

# Bicubic upscales a 320x180 render to 720p without LANCZOS's ringing; swscale widens the
# filter when shrinking, so it also serves engines that render above the output size.
SCALE_FLAGS = Interpolation.BICUBIC | Interpolation.ACCURATE_RND
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


def check_output(width: int, height: int, num_frames: int) -> None:
    """Raise ValueError unless the output size and frame count are positive."""
    if width < 1 or height < 1:
        raise ValueError(f"output size must be positive, got {width}x{height}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")


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


def fit_long_side(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Return (width, height) shrunk so neither side exceeds `max_side`, keeping the aspect."""
    if max_side < 1:
        raise ValueError(f"max_side must be at least 1, got {max_side}")
    if max(width, height) <= max_side:
        return width, height
    if width >= height:
        return max_side, max(1, round(height * max_side / width))
    return max(1, round(width * max_side / height)), max_side


def output_runs(native_count: int, num_frames: int) -> list[tuple[int, int]]:
    """(native frame, repeat count) for each run of output frames showing the same frame.

    Output frame i shows native frame floor(i * native_count / num_frames), so a clip keeps its
    content and only its rate changes; the index never decreases, so each native frame owns
    one run (of zero or more output frames; those of zero are left out).

    >>> output_runs(2, 5)
    [(0, 3), (1, 2)]
    """
    sources = np.arange(num_frames, dtype=np.int64) * native_count // num_frames
    starts = np.flatnonzero(np.diff(sources, prepend=-1))
    stops = [*starts[1:].tolist(), num_frames]
    return [
        (int(sources[start]), stop - int(start))
        for start, stop in zip(starts.tolist(), stops, strict=True)
    ]


@dataclass(frozen=True)
class CoverPlan:
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

    def native_crop(self, frame: np.ndarray) -> np.ndarray:
        """The whole native pixels around the exact box, as a view of `frame` (h, w, 3)."""
        return frame[
            self.crop_y : self.crop_y + self.crop_height,
            self.crop_x : self.crop_x + self.crop_width,
        ]


def cover_plan(native_width: int, native_height: int, width: int, height: int) -> CoverPlan:
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
    return CoverPlan(
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
    """Return `frames` resampled to exactly `num_frames` frames of `width` x `height`, in RGB.

    Output frame i shows native frame floor(i * T / num_frames) (`output_runs`), so the clip
    keeps its content and only its rate changes, whether frames are dropped or repeated. Each
    frame is scaled to cover the output (aspect kept) and centre-cropped, never stretched.
    The encoders do not need this (they convert native frames one at a time); it holds the
    whole clip at the output size.

    >>> clip = np.zeros((16, 180, 320, 3), dtype=np.uint8)
    >>> conform_frames(clip, 1280, 720, 120).shape
    (120, 720, 1280, 3)
    """
    check_frames(frames)
    check_output(width, height, num_frames)
    native_count, native_height, native_width = frames.shape[:3]
    plan = cover_plan(native_width, native_height, width, height)
    runs = output_runs(native_count, num_frames)

    if not plan.needs_scaling:
        # Same size, or a crop of it: plain indexing is the whole job.
        sources = np.repeat([source for source, _ in runs], [repeat for _, repeat in runs])
        top = plan.crop_y + plan.offset_y
        left = plan.crop_x + plan.offset_x
        return np.ascontiguousarray(frames[sources, top : top + height, left : left + width])

    out = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    # Each native frame owns one run of outputs: scale it into the run's first slot and copy
    # that into the rest.
    starts = np.cumsum([0] + [repeat for _, repeat in runs[:-1]]).tolist()
    slots = [(source, start, repeat) for (source, repeat), start in zip(runs, starts, strict=True)]
    workers = min(usable_cpus(), len(slots))
    if workers <= 1:
        _scale_runs(frames, slots, plan, out)
        return out
    # swscale and numpy copies release the GIL, so threads scale frames in parallel.
    chunks = [slots[worker::workers] for worker in range(workers)]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="conform") as pool:
        for done in [pool.submit(_scale_runs, frames, chunk, plan, out) for chunk in chunks]:
            done.result()
    return out


def _scale_runs(
    frames: np.ndarray,
    slots: list[tuple[int, int, int]],
    plan: CoverPlan,
    out: np.ndarray,
) -> None:
    """Scale native frame `source` of each (source, start, repeat) into out[start], then copy
    it into the rest of its run."""
    reformatter = VideoReformatter()  # one per thread: a reformatter is not thread-safe
    for source, start, repeat in slots:
        # threads=1: parallelism comes from the thread pool, one frame per thread.
        scale_rgb(frames[source], plan, reformatter, out[start], threads=1)
        if repeat > 1:
            out[start + 1 : start + repeat] = out[start]


def scale_rgb(
    frame: np.ndarray,
    plan: CoverPlan,
    reformatter: VideoReformatter,
    out: np.ndarray,
    threads: int = 1,
) -> None:
    """Write native `frame` (h, w, 3), cropped and scaled by `plan`, into `out` (RGB)."""
    height, width = out.shape[:2]
    if not plan.needs_scaling:
        top = plan.crop_y + plan.offset_y
        left = plan.crop_x + plan.offset_x
        out[...] = frame[top : top + height, left : left + width]
        return
    native = plan.native_crop(frame)
    if native.strides[1:] != (3, 1):
        native = np.ascontiguousarray(native)
    # from_numpy_buffer wraps the crop view without copying it.
    source = VideoFrame.from_numpy_buffer(native, format="rgb24")
    scaled = reformatter.reformat(
        source,
        width=plan.scaled_width,
        height=plan.scaled_height,
        format=_PLANAR_RGB,
        interpolation=SCALE_FLAGS,
        threads=threads,
    )
    rows = slice(plan.offset_y, plan.offset_y + height)
    columns = slice(plan.offset_x, plan.offset_x + width)
    for channel, plane_index in enumerate(_GBRP_PLANE_FOR_RGB):
        plane = scaled.planes[plane_index]
        pixels = np.frombuffer(memoryview(plane), dtype=np.uint8).reshape(
            plane.height, plane.line_size
        )
        out[:, :, channel] = pixels[rows, columns]
