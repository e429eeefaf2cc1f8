"""Media: conform engine frames to the exact output, encode mp4/GIF/WebP, probe the result."""

from reelforge.media.encode import (
    EncodedMedia,
    encode_gif,
    encode_mp4,
    encode_outputs,
    encode_thumbnail,
)
from reelforge.media.probe import VideoInfo, probe_video
from reelforge.media.resize import conform_frames, fit_width

__all__ = [
    "EncodedMedia",
    "VideoInfo",
    "conform_frames",
    "encode_gif",
    "encode_mp4",
    "encode_outputs",
    "encode_thumbnail",
    "fit_width",
    "probe_video",
]
