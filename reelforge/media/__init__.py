"""Media: encode an engine's native frames into the exact output (mp4, GIF preview, WebP
thumbnail), conform frames in RGB, probe the result."""

from reelforge.media.encode import (
    DEFAULT_VIDEO_PRESET,
    VIDEO_PRESETS,
    EncodedMedia,
    encode_mp4,
    encode_outputs,
    encode_thumbnail,
)
from reelforge.media.gif import encode_gif
from reelforge.media.probe import VideoInfo, probe_video
from reelforge.media.resize import conform_frames, fit_width

__all__ = [
    "DEFAULT_VIDEO_PRESET",
    "VIDEO_PRESETS",
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
