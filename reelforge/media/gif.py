"""The GIF preview: a small, slow, looping picture of the clip, streamed from native frames.

The preview is built from the engine's native frames, not from the output-size clip: it is at
most `GIF_MAX_SIDE` on its long side and `GIF_MAX_FPS`, so scaling 1280x720 frames down again
would be wasted work. Frames are written as they are made (one in flight), so memory does not
grow with the clip's length: Pillow's `save(save_all=True)` keeps every frame until the end.

Size: the colours are one shared palette, undithered (dithering turns flat areas into noise
that LZW cannot compress, and makes still pixels change from frame to frame); a frame equal to
the one before only lengthens it; a changed frame is written as the box around its changes,
its unchanged pixels transparent where that codes smaller.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
from av.video.reformatter import VideoReformatter
from PIL import GifImagePlugin, Image

from reelforge.media.resize import (
    check_frames,
    check_output,
    cover_plan,
    fit_long_side,
    output_runs,
    scale_rgb,
)

__all__ = ["GIF_MAX_FPS", "GIF_MAX_SIDE", "encode_gif", "gif_size"]

GIF_MAX_SIDE = 320
"""The preview's long side at most: 320x180 at 16:9, 180x320 at 9:16, 320x320 square."""
GIF_MAX_FPS = 12

# The palette is built from this many frames spread over the clip: one shared palette keeps
# colours from flickering between frames, and a sample is as good as all frames for it.
_PALETTE_SAMPLE_FRAMES = 8
_PALETTE_SAMPLE_PIXELS = 2**17
# Where more of a frame's changed box than this changed, it is written as it is.
_MOSTLY_CHANGED = 0.75
_DISPOSAL_KEEP = 1  # leave each frame in place: the next one draws only what changed


def gif_size(width: int, height: int, max_side: int = GIF_MAX_SIDE) -> tuple[int, int]:
    """The preview's (width, height) for an output of `width` x `height`."""
    return fit_long_side(width, height, max_side)


def encode_gif(
    native_frames: np.ndarray,
    width: int,
    height: int,
    num_frames: int,
    fps: float,
    path: Path,
    max_side: int = GIF_MAX_SIDE,
    max_fps: float = GIF_MAX_FPS,
) -> Path:
    """Write the looping GIF preview of the `num_frames` x `width` x `height` output at `fps`.

    GIF frame j shows the output frame a player would at its time, so the preview shows the
    same picture (cover, centre-crop) at a lower size and rate, and lasts exactly as long.
    """
    check_frames(native_frames)
    check_output(width, height, num_frames)
    if fps <= 0 or max_fps <= 0:
        raise ValueError(f"fps and max_fps must be positive, got {fps} and {max_fps}")
    gif_fps = min(fps, max_fps)
    count = max(1, round(num_frames * gif_fps / fps))
    # GIF frame j shows output frame floor(j * num_frames / count), which shows native frame
    # floor(that * T / num_frames): the two nearest-frame mappings composed.
    native_count = len(native_frames)
    sources: list[int] = []
    for output, repeat in output_runs(num_frames, count):
        sources += [output * native_count // num_frames] * repeat
    # GIF delays are whole centiseconds (83.3 ms would become 80, 4 % fast): round the running
    # timestamps instead, so the delays alternate (8, 8, 9, ...) and the total stays exact.
    clip_cs = 100.0 * num_frames / fps
    stamps = [round(clip_cs * index / count) for index in range(count + 1)]

    small_width, small_height = gif_size(width, height, max_side)
    scaler = _GifScaler(native_frames, small_width, small_height)
    palette = _shared_palette(scaler, sources)

    path = Path(path)
    with open(path, "wb") as handle:
        writer = _GifWriter(handle, palette)
        for indices, centiseconds in _merge_repeats(_quantized(scaler, sources, palette), stamps):
            writer.write(indices, centiseconds)
        writer.close()
    return path


class _GifScaler:
    """Native frame -> GIF-size RGB, through the same cover plan the video uses."""

    def __init__(self, native_frames: np.ndarray, width: int, height: int) -> None:
        self.frames = native_frames
        self.plan = cover_plan(native_frames.shape[2], native_frames.shape[1], width, height)
        self.shape = (height, width, 3)
        self._reformatter = VideoReformatter()

    def rgb(self, index: int) -> np.ndarray:
        out = np.empty(self.shape, dtype=np.uint8)
        scale_rgb(self.frames[index], self.plan, self._reformatter, out)
        return out


def _shared_palette(scaler: _GifScaler, sources: list[int]) -> Image.Image:
    """A 256-colour palette from a few of the shown native frames, spread over the clip."""
    distinct = sorted(set(sources))
    picks = np.linspace(0, len(distinct) - 1, min(len(distinct), _PALETTE_SAMPLE_FRAMES))
    pixels = np.concatenate([scaler.rgb(distinct[round(pick)]) for pick in picks]).reshape(-1, 3)
    if len(pixels) > _PALETTE_SAMPLE_PIXELS:
        # A random sample (a regular one would miss the colours of fine, regular patterns):
        # the median cut's cost falls with it, its palette barely moves.
        chosen = np.random.default_rng(0).choice(len(pixels), _PALETTE_SAMPLE_PIXELS, False)
        pixels = pixels[np.sort(chosen)]
    mosaic = Image.fromarray(np.ascontiguousarray(pixels.reshape(1, -1, 3)))
    return mosaic.quantize(colors=256, method=Image.Quantize.MEDIANCUT)


def _quantized(
    scaler: _GifScaler, sources: list[int], palette: Image.Image
) -> Iterator[np.ndarray]:
    """The palette indices of each GIF frame; a repeated native frame is quantized once."""
    previous_source, indices = -1, np.empty(0, dtype=np.uint8)
    for source in sources:
        if source != previous_source:
            image = Image.fromarray(scaler.rgb(source))
            quantized = image.quantize(palette=palette, dither=Image.Dither.NONE)
            indices = np.asarray(quantized)
            previous_source = source
        yield indices


def _merge_repeats(
    frames: Iterator[np.ndarray], stamps: list[int]
) -> Iterator[tuple[np.ndarray, int]]:
    """(indices, delay in centiseconds), a run of equal frames merged into one longer frame."""
    pending: np.ndarray | None = None
    start = 0
    for index, indices in enumerate(frames):
        if pending is not None and not np.array_equal(indices, pending):
            yield pending, stamps[index] - start
            start = stamps[index]
            pending = None
        if pending is None:
            pending = indices
    if pending is not None:
        yield pending, stamps[-1] - start


class _GifWriter:
    """Writes a GIF frame by frame with Pillow's GIF coder, under one global palette."""

    def __init__(self, handle: BinaryIO, palette: Image.Image) -> None:
        self._handle = handle
        self._palette = palette.getpalette() or []
        self._colours = len(self._palette) // 3  # fewer than 256 for a clip of few colours
        self._canvas: np.ndarray | None = None  # what a viewer shows after the last frame

    def write(self, indices: np.ndarray, centiseconds: int) -> None:
        # The delay is stored in centiseconds; Pillow takes milliseconds and divides by 10.
        params = {"duration": 10 * max(1, centiseconds), "disposal": _DISPOSAL_KEEP}
        if self._canvas is None:
            first = _indexed(indices)
            first.putpalette(self._palette)
            header, _ = GifImagePlugin.getheader(first, None, {"loop": 0})
            self._emit(header)
            self._emit(GifImagePlugin.getdata(first, (0, 0), **params))
        else:
            self._emit(self._delta(indices, params))
        self._canvas = indices

    def close(self) -> None:
        if self._canvas is None:
            raise ValueError("a GIF needs at least one frame")
        self._emit([b";"])  # the trailer

    def _delta(self, indices: np.ndarray, params: dict[str, int]) -> list[bytes]:
        """The box around what changed since the last frame: as it is, or with its unchanged
        pixels transparent (long runs of one index), whichever codes smaller."""
        assert self._canvas is not None
        changed = indices != self._canvas
        rows = np.flatnonzero(changed.any(axis=1))
        columns = np.flatnonzero(changed.any(axis=0))
        if rows.size == 0:  # equal frames are merged before; keep the GIF valid regardless
            rows = columns = np.zeros(1, dtype=np.int64)
        top, bottom = int(rows[0]), int(rows[-1]) + 1
        left, right = int(columns[0]), int(columns[-1]) + 1
        box = indices[top:bottom, left:right]
        offset = (left, top)
        plain = GifImagePlugin.getdata(_indexed(box), offset, **params)
        changed_box = changed[top:bottom, left:right]
        if changed_box.mean() > _MOSTLY_CHANGED:
            return plain  # a few scattered transparent pixels would only break LZW's runs
        # Transparency needs an index of the palette that the box does not use.
        counts = np.bincount(box.ravel(), minlength=self._colours)[: self._colours]
        unused = np.flatnonzero(counts == 0)
        if unused.size == 0:
            return plain
        transparent = int(unused[0])
        masked = np.where(changed_box, box, np.uint8(transparent))
        sparse = GifImagePlugin.getdata(
            _indexed(masked), offset, transparency=transparent, **params
        )
        if _length(sparse) < _length(plain):
            plain.clear()
            return sparse
        sparse.clear()
        return plain

    def _emit(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self._handle.write(chunk)
        # getdata's list belongs to a class it makes per call, which only the cyclic garbage
        # collector frees: emptied here, a frame's bytes do not wait for it (memory would
        # grow with the clip's length until the next collection).
        chunks.clear()


def _indexed(indices: np.ndarray) -> Image.Image:
    """A "P" image holding `indices` (h, w) as they are; the global palette colours them."""
    height, width = indices.shape
    return Image.frombytes("P", (width, height), np.ascontiguousarray(indices).tobytes())


def _length(chunks: list[bytes]) -> int:
    return sum(len(chunk) for chunk in chunks)
