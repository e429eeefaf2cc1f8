"""Read back what an mp4 holds: size, frame count, rate, codec and whether it streams at once."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import av

__all__ = ["VideoInfo", "probe_video", "top_level_boxes"]


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    num_frames: int
    fps: float
    codec: str
    pix_fmt: str
    duration_s: float
    faststart: bool
    """True when the index (`moov`) precedes the media data, so playback can start at once."""


def top_level_boxes(path: Path) -> list[str]:
    """The ISO-BMFF top-level box types of `path` in file order, e.g. ftyp, moov, mdat."""
    boxes: list[str] = []
    with open(path, "rb") as handle:
        size_total = Path(path).stat().st_size
        offset = 0
        while offset + 8 <= size_total:
            handle.seek(offset)
            size, kind = struct.unpack(">I4s", handle.read(8))
            if size == 1:  # 64-bit size follows the type
                (size,) = struct.unpack(">Q", handle.read(8))
            elif size == 0:  # box runs to the end of the file
                size = size_total - offset
            if size < 8:
                raise ValueError(f"{path}: malformed box at offset {offset}")
            boxes.append(kind.decode("latin-1"))
            offset += size
    return boxes


def probe_video(path: Path) -> VideoInfo:
    """Inspect the first video stream of `path`, counting frames by decoding when the container
    does not say."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        context = stream.codec_context
        frames = stream.frames or sum(1 for _ in container.decode(stream))
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        else:
            duration = frames / fps if fps else 0.0
        info = VideoInfo(
            width=context.width,
            height=context.height,
            num_frames=frames,
            fps=fps,
            codec=context.name,
            pix_fmt=context.format.name if context.format else "",
            duration_s=duration,
            faststart=False,
        )
    boxes = top_level_boxes(Path(path))
    faststart = "moov" in boxes and "mdat" in boxes and boxes.index("moov") < boxes.index("mdat")
    return VideoInfo(**{**info.__dict__, "faststart": faststart})
