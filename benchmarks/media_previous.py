"""The media stage as it was before frames were streamed (commit 1e54ea8), for the benchmarks.

The whole clip was conformed in RGB at the output size (`conform_frames`), each frame then
converted to yuv420p for libx264, and the GIF (480 wide, Floyd-Steinberg dithered, through
Pillow's `save_all`) scaled down again from the output-size clip. Kept verbatim apart from
names, so media_encode.py and media_memory.py can measure both in the same run.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

import av
import numpy as np
from PIL import Image

from reelforge.media import encode_thumbnail
from reelforge.media.resize import conform_frames, fit_width, usable_cpus

_X264_OPTIONS = {"crf": "20", "preset": "superfast", "profile": "high"}


def previous_media_stage(
    native: np.ndarray, width: int, height: int, num_frames: int, fps: float, out: Path
) -> None:
    """conform_frames, then the mp4 and the GIF on two threads, then the thumbnail."""
    frames = conform_frames(native, width, height, num_frames)
    out.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=2) as pool:
        video = pool.submit(_encode_mp4, frames, fps, out / "video.mp4")
        preview = pool.submit(_encode_gif, frames, fps, out / "preview.gif")
        encode_thumbnail(frames[len(frames) // 2], out / "thumbnail.webp")
        video.result()
        preview.result()


def _same_frame(a: np.ndarray, b: np.ndarray) -> bool:
    middle = a.shape[0] // 2
    return bool(np.array_equal(a[middle], b[middle]) and np.array_equal(a, b))


def _encode_mp4(frames: np.ndarray, fps: float, path: Path) -> None:
    rate = Fraction(fps).limit_denominator(1001)
    height, width = frames.shape[1:3]
    with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as out:
        stream = out.add_stream("libx264", rate=rate, options=dict(_X264_OPTIONS))
        stream.width = width
        stream.height = height
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = 1 / rate
        stream.codec_context.thread_count = usable_cpus()
        stream.codec_context.color_primaries = 1
        stream.codec_context.color_trc = 1
        stream.codec_context.colorspace = 1
        frame = None
        for index, pixels in enumerate(frames):
            if frame is None or not _same_frame(pixels, frames[index - 1]):
                frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                frame = frame.reformat(format="yuv420p", dst_colorspace="ITU709")
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def _encode_gif(frames: np.ndarray, fps: float, path: Path) -> None:
    gif_fps = min(fps, 12)
    count = max(1, round(len(frames) * gif_fps / fps))
    height, width = frames.shape[1:3]
    small_width, small_height = fit_width(width, height, 480)
    small = conform_frames(frames, small_width, small_height, count)
    stride = max(1, count // 8)
    mosaic = Image.fromarray(np.concatenate(small[::stride][:8], axis=0))
    palette = mosaic.quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    images = [
        Image.fromarray(pixels).quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG)
        for pixels in small
    ]
    clip_cs = 100.0 * len(frames) / fps
    stamps = [round(clip_cs * index / count) for index in range(count + 1)]
    durations_ms = [10 * (end - start) for start, end in pairwise(stamps)]
    images[0].save(
        path,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=durations_ms,
        loop=0,
        optimize=False,
        disposal=1,
    )
