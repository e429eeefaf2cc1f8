"""Encode conformed frames into the three artifacts: H.264 mp4, GIF preview, WebP thumbnail.

All three are written from the same uint8 (frames, height, width, 3) array that
`conform_frames` returns. The mp4 and the GIF are encoded at the same time on two threads:
libx264 and Pillow's quantizer both release the GIL, so on two cores the GIF costs almost
nothing on top of the video.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

import av
import numpy as np
from PIL import Image

from reelforge.media.resize import check_frames, conform_frames, fit_width, usable_cpus

__all__ = ["EncodedMedia", "encode_gif", "encode_mp4", "encode_outputs", "encode_thumbnail"]

VIDEO_FILE = "video.mp4"
PREVIEW_FILE = "preview.gif"
THUMBNAIL_FILE = "thumbnail.webp"

GIF_MAX_WIDTH = 480
GIF_MAX_FPS = 12
THUMBNAIL_MAX_WIDTH = 640

# CRF 20 is visually lossless for generated video at 720p. "superfast" encodes a grainy 120-frame
# 1280x720 clip in about 1.0 s on two cores against 1.6 s for "veryfast" (benchmarks/
# media_encode.py), at a larger file; CRF, not the preset, sets the quality.
_X264_OPTIONS = {"crf": "20", "preset": "superfast", "profile": "high"}
# The palette is built from this many frames spread over the clip: one shared palette keeps
# colours from flickering between frames, and a sample is as good as all frames for it.
_PALETTE_SAMPLE_FRAMES = 8


@dataclass(frozen=True)
class EncodedMedia:
    """Paths of the written artifacts and the video's exact format."""

    video: Path
    preview: Path
    thumbnail: Path
    width: int
    height: int
    num_frames: int
    fps: float


def _frame_rate(fps: float) -> Fraction:
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return Fraction(fps).limit_denominator(1001)


def _same_frame(a: np.ndarray, b: np.ndarray) -> bool:
    # A middle row tells almost every pair of different frames apart without the full compare.
    middle = a.shape[0] // 2
    return bool(np.array_equal(a[middle], b[middle]) and np.array_equal(a, b))


def encode_mp4(frames: np.ndarray, fps: float, path: Path) -> Path:
    """Write `frames` as an H.264 (yuv420p) mp4 with its index up front (`+faststart`)."""
    check_frames(frames)
    height, width = frames.shape[1:3]
    if width % 2 or height % 2:
        # yuv420p stores colour at half resolution in both directions.
        raise ValueError(f"H.264 yuv420p needs an even width and height, got {width}x{height}")
    rate = _frame_rate(fps)
    path = Path(path)
    with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as out:
        stream = out.add_stream("libx264", rate=rate, options=dict(_X264_OPTIONS))
        stream.width = width
        stream.height = height
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = 1 / rate
        stream.codec_context.thread_count = usable_cpus()
        # BT.709 is what players assume for HD; saying so avoids a colour shift in browsers.
        stream.codec_context.color_primaries = 1
        stream.codec_context.color_trc = 1
        stream.codec_context.colorspace = 1
        frame = None
        for index, pixels in enumerate(frames):
            # Engines render fewer frames than 24 fps needs, so conformed clips repeat frames;
            # converting a repeat again would cost a third of the encode for nothing.
            if frame is None or not _same_frame(pixels, frames[index - 1]):
                frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                frame = frame.reformat(format="yuv420p", dst_colorspace="ITU709")
            frame.pts = index  # x264 copies the picture, so one frame object can be sent again
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def encode_gif(
    frames: np.ndarray,
    fps: float,
    path: Path,
    max_width: int = GIF_MAX_WIDTH,
    max_fps: float = GIF_MAX_FPS,
) -> Path:
    """Write a looping GIF preview: at most `max_width` wide and `max_fps`, one shared palette."""
    check_frames(frames)
    if fps <= 0 or max_fps <= 0:
        raise ValueError(f"fps and max_fps must be positive, got {fps} and {max_fps}")
    gif_fps = min(fps, max_fps)
    count = max(1, round(len(frames) * gif_fps / fps))
    height, width = frames.shape[1:3]
    small_width, small_height = fit_width(width, height, max_width)
    # Downscale (the same cover logic, here a plain fit) and drop frames in one pass.
    small = conform_frames(frames, small_width, small_height, count)

    stride = max(1, count // _PALETTE_SAMPLE_FRAMES)
    mosaic = Image.fromarray(np.concatenate(small[::stride][:_PALETTE_SAMPLE_FRAMES], axis=0))
    palette = mosaic.quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    images = [
        Image.fromarray(pixels).quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG)
        for pixels in small
    ]
    # GIF delays are whole centiseconds (83.3 ms would become 80, 4 % fast): round the running
    # timestamps instead, so the delays alternate (8, 8, 9, ...) and the total stays exact.
    clip_cs = 100.0 * len(frames) / fps
    stamps = [round(clip_cs * index / count) for index in range(count + 1)]
    durations_ms = [10 * (end - start) for start, end in pairwise(stamps)]
    path = Path(path)
    images[0].save(
        path,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=durations_ms,
        loop=0,
        optimize=False,  # the palette is already shared; optimising would rebuild it per frame
        disposal=1,
    )
    return path


def encode_thumbnail(frame: np.ndarray, path: Path, max_width: int = THUMBNAIL_MAX_WIDTH) -> Path:
    """Write one (height, width, 3) uint8 frame as a WebP still, at most `max_width` wide."""
    check_frames(frame[None])
    image = Image.fromarray(frame)
    size = fit_width(image.width, image.height, max_width)
    if size != image.size:
        image = image.resize(size, Image.Resampling.LANCZOS)
    path = Path(path)
    image.save(path, format="WEBP", quality=80, method=4)
    return path


def encode_outputs(frames: np.ndarray, fps: float, out_dir: Path) -> EncodedMedia:
    """Encode `frames` (already at the output size) into `out_dir`: video, preview, thumbnail.

    The thumbnail is the middle frame: the first frame of a generation is often the least
    interesting (a still for image-to-video, the least-settled one for text-to-video).
    """
    check_frames(frames)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    height, width = frames.shape[1:3]
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="encode") as pool:
        video = pool.submit(encode_mp4, frames, fps, out_dir / VIDEO_FILE)
        preview = pool.submit(encode_gif, frames, fps, out_dir / PREVIEW_FILE)
        thumbnail = encode_thumbnail(frames[len(frames) // 2], out_dir / THUMBNAIL_FILE)
        return EncodedMedia(
            video=video.result(),
            preview=preview.result(),
            thumbnail=thumbnail,
            width=width,
            height=height,
            num_frames=len(frames),
            fps=fps,
        )
