"""Media on real codecs: conform (resample, cover, centre-crop), mp4, GIF and WebP, read back."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image, ImageSequence

from reelforge.media import (
    conform_frames,
    encode_gif,
    encode_mp4,
    encode_outputs,
    encode_thumbnail,
    probe_video,
)


def _numbered_clip(count: int, height: int, width: int) -> np.ndarray:
    """Frames whose red channel holds their own index, so resampling can be read back."""
    clip = np.zeros((count, height, width, 3), dtype=np.uint8)
    clip[..., 0] = np.arange(count, dtype=np.uint8)[:, None, None]
    return clip


def _moving_square(count: int, height: int, width: int) -> np.ndarray:
    clip = np.full((count, height, width, 3), 40, dtype=np.uint8)
    side = height // 3
    for index in range(count):
        x = (width - side) * index // max(1, count - 1)
        clip[index, side : 2 * side, x : x + side] = (220, 60, 30)
    return clip


@pytest.mark.parametrize(("native", "wanted"), [(16, 120), (81, 120), (121, 120), (30, 7)])
def test_conform_maps_output_frame_i_to_native_frame_floor_i_t_over_n(
    native: int, wanted: int
) -> None:
    frames = conform_frames(_numbered_clip(native, 18, 32), 32, 18, wanted)
    assert frames.shape == (wanted, 18, 32, 3)
    expected = np.arange(wanted) * native // wanted
    assert frames[:, 9, 16, 0].tolist() == expected.tolist()


@pytest.mark.parametrize(
    ("native_size", "output_size"),
    [((320, 180), (1280, 720)), ((180, 320), (720, 1280)), ((64, 48), (960, 960))],
)
def test_conform_gives_the_exact_output_size(
    native_size: tuple[int, int], output_size: tuple[int, int]
) -> None:
    width, height = native_size
    frames = conform_frames(_moving_square(3, height, width), *output_size, 5)
    assert frames.shape == (5, output_size[1], output_size[0], 3)
    assert frames.dtype == np.uint8


def test_conform_covers_and_centre_crops_without_stretching() -> None:
    # A 4:3 frame with a 1-pixel frame of white columns at both sides and red rows at the top
    # and bottom quarter: covering 16:9 keeps the full width and crops the top and bottom.
    native = np.zeros((1, 120, 160, 3), dtype=np.uint8)
    native[0, :, 0] = native[0, :, -1] = 255
    native[0, :15] = native[0, -15:] = (255, 0, 0)  # the 15 rows that 16:9 crops away
    frames = conform_frames(native, 640, 360, 1)[0]
    # Width: 160 -> 640 exactly, so the white edges survive at both sides.
    assert frames[180, :2].min() > 200 and frames[180, -2:].min() > 200
    # Height: 120 * 4 = 480 rows, 60 cropped at each end: the red bands are gone.
    assert frames[2:-2, 320, 0].max() < 40
    # A circle stays a circle: the scale is the same in both directions (4x).
    disc = np.zeros((1, 90, 160, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:90, :160]
    disc[0][(yy - 45) ** 2 + (xx - 80) ** 2 <= 30**2] = 255
    big = conform_frames(disc, 640, 360, 1)[0, :, :, 0] > 127
    rows, columns = np.flatnonzero(big.any(axis=1)), np.flatnonzero(big.any(axis=0))
    assert abs((rows[-1] - rows[0]) - (columns[-1] - columns[0])) <= 2


def test_conform_at_native_size_is_plain_indexing() -> None:
    clip = _moving_square(4, 36, 64)
    assert np.array_equal(conform_frames(clip, 64, 36, 4), clip)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((2, 8, 8, 3), dtype=np.float32),
        np.zeros((8, 8, 3), dtype=np.uint8),
        np.zeros((0, 8, 8, 3), dtype=np.uint8),
        np.zeros((2, 8, 8, 4), dtype=np.uint8),
    ],
)
def test_conform_rejects_frames_that_are_not_uint8_rgb_clips(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="frames"):
        conform_frames(bad, 8, 8, 2)


def test_mp4_is_h264_yuv420p_faststart_at_exact_size_rate_and_length(tmp_path: Path) -> None:
    clip = _moving_square(48, 360, 640)
    info = probe_video(encode_mp4(clip, 24, tmp_path / "v.mp4"))
    assert (info.codec, info.pix_fmt) == ("h264", "yuv420p")
    assert (info.width, info.height, info.num_frames, info.fps) == (640, 360, 48, 24.0)
    assert info.duration_s == pytest.approx(2.0)
    assert info.faststart


def test_mp4_decodes_back_to_the_source_picture(tmp_path: Path) -> None:
    clip = _moving_square(12, 180, 320)
    path = encode_mp4(clip, 24, tmp_path / "v.mp4")
    with av.open(str(path)) as container:
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(decoded) == 12
    # Lossy, but close: the mean error stays within a few levels, colour included (BT.709).
    for source, back in zip(clip, decoded, strict=True):
        error = np.abs(source.astype(np.int16) - back.astype(np.int16))
        assert error.mean() < 3.0
        assert np.abs(source[90, :, :].mean(axis=0) - back[90, :, :].mean(axis=0)).max() < 6


def test_mp4_refuses_odd_sizes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="even"):
        encode_mp4(_moving_square(2, 35, 64), 24, tmp_path / "v.mp4")


def test_gif_preview_is_small_slow_looping_and_as_long_as_the_clip(tmp_path: Path) -> None:
    clip = _moving_square(120, 720, 1280)
    path = encode_gif(clip, 24, tmp_path / "p.gif")
    with Image.open(path) as gif:
        assert gif.format == "GIF"
        assert gif.size == (480, 270)
        assert gif.info["loop"] == 0
        durations = []
        for frame in ImageSequence.Iterator(gif):
            durations.append(frame.info["duration"])
    assert sum(durations) == pytest.approx(5000, abs=50)
    assert min(durations) >= 80  # whole centiseconds: 8 or 9 per frame at 12 fps
    assert len(durations) / 5.0 <= 12
    assert len(durations) > 12  # the motion is there, not one still frame


def test_gif_keeps_small_clips_at_their_size(tmp_path: Path) -> None:
    with Image.open(encode_gif(_moving_square(6, 36, 64), 12, tmp_path / "p.gif")) as gif:
        assert gif.size == (64, 36)
        assert sum(1 for _ in ImageSequence.Iterator(gif)) == 6


def test_thumbnail_is_a_webp_at_most_640_wide(tmp_path: Path) -> None:
    frame = _moving_square(1, 720, 1280)[0]
    with Image.open(encode_thumbnail(frame, tmp_path / "t.webp")) as thumbnail:
        assert thumbnail.format == "WEBP"
        assert thumbnail.size == (640, 360)


def test_encode_outputs_writes_all_three_and_reports_the_format(tmp_path: Path) -> None:
    frames = conform_frames(_moving_square(16, 180, 320), 1280, 720, 120)
    media = encode_outputs(frames, 24, tmp_path / "out")
    assert [media.video.name, media.preview.name, media.thumbnail.name] == [
        "video.mp4",
        "preview.gif",
        "thumbnail.webp",
    ]
    assert (media.width, media.height, media.num_frames, media.fps) == (1280, 720, 120, 24)
    info = probe_video(media.video)
    assert (info.width, info.height, info.num_frames) == (1280, 720, 120)
    assert media.preview.stat().st_size > 0 and media.thumbnail.stat().st_size > 0
