"""Encode an engine's native frames into the three artifacts: H.264 mp4, GIF preview, WebP
thumbnail, each at the exact output size, frame count and rate.

Nothing holds the output-size clip: the mp4 gets one native frame at a time, scaled straight
into yuv420p (`yuv.py`) and sent once per output frame that shows it; the GIF is made from the
native frames at its own small size (`gif.py`); the thumbnail is the one output frame it
shows. The mp4 and the GIF are encoded at the same time on two threads: libx264, swscale and
Pillow's quantizer and LZW coder release the GIL.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from reelforge.media.gif import encode_gif
from reelforge.media.resize import (
    check_frames,
    check_output,
    conform_frames,
    fit_width,
    output_runs,
    usable_cpus,
)
from reelforge.media.yuv import YuvConverter

__all__ = [
    "DEFAULT_VIDEO_PRESET",
    "VIDEO_PRESETS",
    "EncodedMedia",
    "encode_mp4",
    "encode_outputs",
    "encode_thumbnail",
]

VIDEO_FILE = "video.mp4"
PREVIEW_FILE = "preview.gif"
THUMBNAIL_FILE = "thumbnail.webp"

THUMBNAIL_MAX_WIDTH = 640

# CRF 20 is visually lossless for generated video at 720p; CRF, not the preset, sets the
# quality. The preset trades encoding time for file size (benchmarks/media_encode.py
# --presets, a grainy 120-frame 1280x720 clip on two cores): "ultrafast" encodes it in
# 0.6-0.75 s against 1.3-1.6 s for "superfast", at 0.2 dB less PSNR and a file of about the
# same size (3.6 against 3.8 MB). On flat, clean content ultrafast's file is two to three
# times as large (169 against 72 kB for 5 s of the test pattern), on the micro model's
# blocky frames a third smaller. REELFORGE_VIDEO_PRESET chooses; ultrafast keeps the media
# stage near 0.8 s on two cores.
VIDEO_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium")
DEFAULT_VIDEO_PRESET = "ultrafast"
_CRF = "20"


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


def encode_mp4(
    native_frames: np.ndarray,
    width: int,
    height: int,
    num_frames: int,
    fps: float,
    path: Path,
    preset: str = DEFAULT_VIDEO_PRESET,
) -> Path:
    """Write the `num_frames` x `width` x `height` output of `native_frames` as an H.264
    (yuv420p) mp4 at `fps`, its index up front (`+faststart`), with libx264's `preset`.

    Output frame i shows native frame floor(i * T / num_frames), covered and centre-cropped
    (`resize.cover_plan`); frames already at the output size are only converted.
    """
    check_frames(native_frames)
    check_output(width, height, num_frames)
    if preset not in VIDEO_PRESETS:
        raise ValueError(f"unknown x264 preset {preset!r}; one of {', '.join(VIDEO_PRESETS)}")
    options = {"crf": _CRF, "preset": preset}
    if preset != "ultrafast":  # ultrafast codes baseline tools only; the others use High's
        options["profile"] = "high"
    rate = _frame_rate(fps)
    converter = YuvConverter(native_frames.shape[2], native_frames.shape[1], width, height)
    path = Path(path)
    with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as out:
        stream = out.add_stream("libx264", rate=rate, options=options)
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
        pts = 0
        previous = -1
        for source, repeat in output_runs(len(native_frames), num_frames):
            # Engines render fewer frames than 24 fps needs, so output frames repeat native
            # ones; converting a repeat again would cost as much as the first time for nothing.
            # Equal neighbours (a still engine, a clip already conformed) count as repeats.
            pixels = native_frames[source]
            if frame is None or not _same_frame(pixels, native_frames[previous]):
                frame = converter.convert(pixels)
            previous = source
            for _ in range(repeat):
                frame.pts = pts  # x264 copies the picture, so one frame object can be sent again
                out.mux(stream.encode(frame))
                pts += 1
        out.mux(stream.encode(None))
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


def encode_outputs(
    native_frames: np.ndarray,
    width: int,
    height: int,
    num_frames: int,
    fps: float,
    out_dir: Path,
    preset: str = DEFAULT_VIDEO_PRESET,
) -> EncodedMedia:
    """Encode an engine's `native_frames` into `out_dir` as the exact output (`num_frames`
    frames of `width` x `height` at `fps`): video (libx264's `preset`), preview, thumbnail.

    The thumbnail is the middle output frame: the first frame of a generation is often the
    least interesting (a still for image-to-video, the least-settled one for text-to-video).

    >>> import tempfile
    >>> clip = np.zeros((16, 180, 320, 3), dtype=np.uint8)  # 1 s of a 16 fps engine
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     media = encode_outputs(clip, 1280, 720, 120, 24, Path(tmp))  # 5 s at 24 fps
    >>> (media.width, media.height, media.num_frames, media.video.name)
    (1280, 720, 120, 'video.mp4')
    """
    check_frames(native_frames)
    check_output(width, height, num_frames)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    middle = (num_frames // 2) * len(native_frames) // num_frames
    args = (native_frames, width, height, num_frames, fps)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="encode") as pool:
        video = pool.submit(encode_mp4, *args, out_dir / VIDEO_FILE, preset)
        preview = pool.submit(encode_gif, *args, out_dir / PREVIEW_FILE)
        # Conformed straight to the thumbnail's size: the output frame's picture, without
        # making it at the output size first only to shrink it.
        small = fit_width(width, height, THUMBNAIL_MAX_WIDTH)
        still = conform_frames(native_frames[middle : middle + 1], *small, 1)[0]
        thumbnail = encode_thumbnail(still, out_dir / THUMBNAIL_FILE)
        return EncodedMedia(
            video=video.result(),
            preview=preview.result(),
            thumbnail=thumbnail,
            width=width,
            height=height,
            num_frames=num_frames,
            fps=fps,
        )
