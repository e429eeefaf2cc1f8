"""Native RGB frames straight to the encoder's yuv420p at the output size, one swscale pass.

The cover plan (`resize.cover_plan`) crops whole native pixels, scales them by the exact
factor and crops the sub-pixel remainder (a few output pixels) afterwards. swscale crops,
scales and converts rgb24 -> yuv420p in one pass; the remainder is cropped from the planes.
yuv420p stores colour once per 2x2 block, so an odd offset cannot be cropped from its chroma
without moving the colour half a sample: such frames (a square native frame covering 16:9,
HunyuanVideo's 848x480 covering 1280x720) are scaled to yuv444p instead, cropped, and their
chroma halved in a second, chroma-only pass. No frame is ever held in RGB at the output size.
"""

from __future__ import annotations

import numpy as np
from av.video.frame import VideoFrame
from av.video.plane import VideoPlane
from av.video.reformatter import Colorspace, VideoReformatter

from reelforge.media.resize import SCALE_FLAGS, cover_plan

__all__ = ["YuvConverter"]

_ENCODER_FORMAT = "yuv420p"
_FULL_CHROMA_FORMAT = "yuv444p"
# BT.709 is what players assume for HD; the mp4 is tagged so (encode.py).
_COLORSPACE = Colorspace.ITU709


class YuvConverter:
    """Turns native (h, w, 3) uint8 frames into yuv420p `VideoFrame`s of the output size.

    One per encoding thread: it owns a swscale context, which is not thread-safe.

    >>> converter = YuvConverter(320, 180, 1280, 720)
    >>> frame = converter.convert(np.zeros((180, 320, 3), dtype=np.uint8))
    >>> (frame.width, frame.height, frame.format.name)
    (1280, 720, 'yuv420p')
    """

    def __init__(self, native_width: int, native_height: int, width: int, height: int) -> None:
        if width % 2 or height % 2:
            # yuv420p stores colour at half resolution in both directions.
            raise ValueError(f"H.264 yuv420p needs an even width and height, got {width}x{height}")
        self.width = width
        self.height = height
        self.native_size = (native_width, native_height)
        self.plan = cover_plan(native_width, native_height, width, height)
        self._even_offsets = self.plan.offset_x % 2 == 0 and self.plan.offset_y % 2 == 0
        self._reformatter = VideoReformatter()
        # A second context for the chroma pass: one context switching between two
        # conversions would be rebuilt on every call (most of the cost of a frame).
        self._chroma_reformatter = VideoReformatter()

    @property
    def scaled_format(self) -> str:
        """The format swscale scales into: yuv420p, or yuv444p where an offset is odd."""
        return _ENCODER_FORMAT if self._even_offsets else _FULL_CHROMA_FORMAT

    def convert(self, frame: np.ndarray) -> VideoFrame:
        """Return native `frame` covered, centre-cropped and converted to yuv420p."""
        if frame.shape != (self.native_size[1], self.native_size[0], 3):
            raise ValueError(f"expected a {self.native_size} frame, got shape {frame.shape}")
        plan = self.plan
        if not plan.needs_scaling:
            # The output size or a crop of it: a plain conversion, exactly as it was done
            # before frames were scaled straight into yuv420p (default filter for the chroma).
            top = plan.crop_y + plan.offset_y
            left = plan.crop_x + plan.offset_x
            view = frame[top : top + self.height, left : left + self.width]
            return self._reformatter.reformat(
                _wrap(view), format=_ENCODER_FORMAT, dst_colorspace=_COLORSPACE
            )
        scaled = self._reformatter.reformat(
            _wrap(plan.native_crop(frame)),
            width=plan.scaled_width,
            height=plan.scaled_height,
            format=self.scaled_format,
            dst_colorspace=_COLORSPACE,
            interpolation=SCALE_FLAGS,
        )
        if (plan.scaled_width, plan.scaled_height) == (self.width, self.height):
            return scaled
        cropped = _crop(scaled, plan.offset_x, plan.offset_y, self.width, self.height)
        if self._even_offsets:
            return cropped
        # Halve the chroma: luma is copied through, the colour planes filtered with swscale's
        # default (bilinear), the filter that halved it when frames were converted at the
        # output size.
        return self._chroma_reformatter.reformat(
            cropped,
            format=_ENCODER_FORMAT,
            src_colorspace=_COLORSPACE,
            dst_colorspace=_COLORSPACE,
        )


def _wrap(pixels: np.ndarray) -> VideoFrame:
    """An rgb24 frame over `pixels` (a view with contiguous rows is wrapped without a copy)."""
    if pixels.strides[1:] != (3, 1):
        pixels = np.ascontiguousarray(pixels)
    return VideoFrame.from_numpy_buffer(pixels, format="rgb24")


def _crop(frame: VideoFrame, left: int, top: int, width: int, height: int) -> VideoFrame:
    """Copy the (left, top, width, height) window of planar YUV `frame` into a new frame.

    Offsets must be even for yuv420p (its chroma planes are cropped at half of them).
    """
    out = VideoFrame(width, height, frame.format.name)
    out.colorspace = frame.colorspace
    out.color_range = frame.color_range
    luma_width = frame.planes[0].width
    for source, target in zip(frame.planes, out.planes, strict=True):
        step = luma_width // source.width  # 1 for luma and yuv444p chroma, 2 for yuv420p's
        pixels = _plane_array(source)
        _plane_array(target)[: target.height, : target.width] = pixels[
            top // step : top // step + target.height, left // step : left // step + target.width
        ]
    return out


def _plane_array(plane: VideoPlane) -> np.ndarray:
    """A (height, line_size) uint8 view of one frame plane's memory."""
    pixels = np.frombuffer(memoryview(plane), dtype=np.uint8)
    return pixels[: plane.height * plane.line_size].reshape(plane.height, plane.line_size)
