"""A spritesheet: evenly spaced frames of a video, tiled left to right, top to bottom, in
one JPEG (what OpenAI's `variant=spritesheet` serves), built from the stored mp4."""

from __future__ import annotations

import io
from typing import BinaryIO

import av
from PIL import Image

__all__ = ["SPRITESHEET_COLUMNS", "SPRITESHEET_FRAMES", "SPRITESHEET_TILE_WIDTH", "spritesheet"]

SPRITESHEET_FRAMES = 10
SPRITESHEET_COLUMNS = 5
SPRITESHEET_TILE_WIDTH = 256
"""Each tile's width in pixels (its height keeps the video's aspect ratio)."""


def spritesheet(
    video: str | BinaryIO,
    *,
    frames: int = SPRITESHEET_FRAMES,
    columns: int = SPRITESHEET_COLUMNS,
    tile_width: int = SPRITESHEET_TILE_WIDTH,
) -> bytes:
    """JPEG bytes of `frames` evenly spaced frames of `video` (a path or a file object): the
    middle frame of each of `frames` equal spans. Frames are decoded in order, and only the
    chosen ones are scaled and converted, so a 5 s 720p clip takes a fraction of a second."""
    with av.open(video, mode="r") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        total = stream.frames or _estimated_frames(stream)
        width, height = stream.codec_context.width, stream.codec_context.height
        tile_height = max(2, round(tile_width * height / width))
        count = max(1, min(frames, total)) if total else frames
        wanted = sorted({min(total - 1, int((i + 0.5) * total / count)) for i in range(count)})
        tiles: list[Image.Image] = []
        for index, frame in enumerate(container.decode(stream)):
            if len(tiles) < len(wanted) and index == wanted[len(tiles)]:
                tiles.append(frame.to_image(width=tile_width, height=tile_height))
                if len(tiles) == len(wanted):
                    break
    if not tiles:
        raise ValueError("the video has no frames")
    cols = min(columns, len(tiles))
    rows = -(-len(tiles) // cols)
    sheet = Image.new("RGB", (cols * tile_width, rows * tile_height))
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % cols) * tile_width, (i // cols) * tile_height))
    out = io.BytesIO()
    sheet.save(out, format="JPEG", quality=85)
    return out.getvalue()


def _estimated_frames(stream: av.video.stream.VideoStream) -> int:
    rate = stream.average_rate or stream.guessed_rate
    if stream.duration is None or stream.time_base is None or not rate:
        return 0
    return int(float(stream.duration * stream.time_base) * float(rate))
