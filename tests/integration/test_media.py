"""Media on real codecs: conform (resample, cover, centre-crop), mp4, GIF and WebP, read back.

The encoders take native frames and convert them one at a time; `conform_frames` (the whole
clip in RGB at the output size, then converted) is the reference they are compared against.
"""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import av
import numpy as np
import pytest
from PIL import Image, ImageSequence

from reelforge.engines.testsrc import TestSourceEngine
from reelforge.media import (
    DEFAULT_VIDEO_PRESET,
    VIDEO_PRESETS,
    conform_frames,
    encode_gif,
    encode_mp4,
    encode_outputs,
    encode_thumbnail,
    probe_video,
)
from reelforge.media.yuv import YuvConverter
from reelforge.settings import Settings
from reelforge.spec import GenerationSpec


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
    info = probe_video(encode_mp4(clip, 640, 360, 48, 24, tmp_path / "v.mp4"))
    assert (info.codec, info.pix_fmt) == ("h264", "yuv420p")
    assert (info.width, info.height, info.num_frames, info.fps) == (640, 360, 48, 24.0)
    assert info.duration_s == pytest.approx(2.0)
    assert info.faststart


def test_mp4_decodes_back_to_the_source_picture(tmp_path: Path) -> None:
    clip = _moving_square(12, 180, 320)
    path = encode_mp4(clip, 320, 180, 12, 24, tmp_path / "v.mp4")
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
        encode_mp4(_moving_square(2, 35, 64), 64, 35, 2, 24, tmp_path / "v.mp4")


def test_gif_preview_is_small_slow_looping_and_as_long_as_the_clip(tmp_path: Path) -> None:
    clip = _moving_square(120, 720, 1280)
    path = encode_gif(clip, 1280, 720, 120, 24, tmp_path / "p.gif")
    with Image.open(path) as gif:
        assert gif.format == "GIF"
        assert gif.size == (320, 180)
        assert gif.info["loop"] == 0
        durations = []
        for frame in ImageSequence.Iterator(gif):
            durations.append(frame.info["duration"])
    assert sum(durations) == pytest.approx(5000, abs=50)
    assert min(durations) >= 80  # whole centiseconds: 8 or 9 per frame at 12 fps
    assert len(durations) / 5.0 <= 12
    assert len(durations) > 12  # the motion is there, not one still frame


@pytest.mark.parametrize(
    ("output_size", "gif_size"),
    [((1280, 720), (320, 180)), ((720, 1280), (180, 320)), ((960, 960), (320, 320))],
)
def test_gif_is_at_most_320_on_its_long_side(
    output_size: tuple[int, int], gif_size: tuple[int, int], tmp_path: Path
) -> None:
    width, height = output_size
    native = _moving_square(4, height // 4, width // 4)
    with Image.open(encode_gif(native, width, height, 24, 24, tmp_path / "p.gif")) as gif:
        assert gif.size == gif_size


def test_gif_keeps_small_clips_at_their_size(tmp_path: Path) -> None:
    path = encode_gif(_moving_square(6, 36, 64), 64, 36, 6, 12, tmp_path / "p.gif")
    with Image.open(path) as gif:
        assert gif.size == (64, 36)
        assert sum(1 for _ in ImageSequence.Iterator(gif)) == 6


def test_gif_shows_the_clip_frame_of_each_moment_and_merges_repeats(tmp_path: Path) -> None:
    # 16 native frames stretched to 120 output frames at 24 fps: 60 GIF frames at 12 fps, of
    # which runs show the same native frame; each run is one GIF frame, as long as the run.
    native = _moving_square(16, 36, 64)
    path = encode_gif(native, 64, 36, 120, 24, tmp_path / "p.gif")
    with Image.open(path) as gif:
        frames = [
            (np.asarray(frame.convert("RGB")).astype(np.int16), frame.info["duration"])
            for frame in ImageSequence.Iterator(gif)
        ]
    assert len(frames) == 16
    assert sum(duration for _, duration in frames) == 5000
    for index, (pixels, duration) in enumerate(frames):
        assert duration == pytest.approx(5000 / 16, abs=84)  # within one 12 fps frame
        # The composite a viewer shows (boxes of changes over the frames before) is the frame.
        assert np.abs(pixels - native[index]).mean() < 2.0


def _transparent_indices(gif: bytes) -> tuple[int, list[int]]:
    """(global colour table size, the transparent index of each frame that has one)."""
    table_size = 2 ** ((gif[10] & 0x07) + 1)
    indices = []
    start = 0
    while (start := gif.find(b"\x21\xf9\x04", start) + 1) > 0:
        packed, index = gif[start + 2], gif[start + 5]
        if packed & 0x01:
            indices.append(index)
    return table_size, indices


_FOUR_COLOURS = np.array([(250, 250, 250), (10, 10, 10), (200, 30, 30), (30, 30, 200)])


def _speckled_clip(colours: int) -> np.ndarray:
    """Still speckles of four colours (costly for LZW) with a small square moving in two
    opposite corners, so each frame's changed box is almost the whole frame and almost all
    still; with `colours` == 5, a still strip of a fifth colour below the boxes."""
    rng = np.random.default_rng(7)
    board = _FOUR_COLOURS[rng.integers(0, 4, size=(90, 160))].astype(np.uint8)
    clip = np.repeat(board[None], 24, axis=0)
    for index in range(24):
        clip[index, 5:15, 5 + index : 15 + index] = _FOUR_COLOURS[0]
        clip[index, 70:80, 140 - index : 150 - index] = _FOUR_COLOURS[0]
    if colours == 5:
        clip[:, 84:] = (0, 200, 0)
    return clip


@pytest.mark.parametrize("colours", [4, 5])
def test_gif_transparency_uses_a_free_index_of_its_colour_table(
    colours: int, tmp_path: Path
) -> None:
    # Four colours fill a 4-entry table and every changed box uses them all: no index is free
    # for transparency (index 4 would point past the table). A fifth colour outside the boxes
    # gives one, and the still speckles inside the boxes become transparent.
    path = encode_gif(_speckled_clip(colours), 160, 90, 24, 12, tmp_path / "p.gif")
    table_size, indices = _transparent_indices(path.read_bytes())
    assert table_size == (4 if colours == 4 else 8)
    assert all(index < colours for index in indices)
    assert len(indices) == (0 if colours == 4 else 23)


def _testsrc_clip(width: int, height: int, num_frames: int) -> np.ndarray:
    spec = GenerationSpec(
        model="media-test",
        prompt="a clip for the media tests",
        width=width,
        height=height,
        num_frames=num_frames,
        seed=2,
    )
    return TestSourceEngine(None).generate(spec, None, lambda done, total: None).frames


def _smooth_clip(count: int, size: int, seed: int) -> np.ndarray:
    """Blurry, everywhere-changing frames at a tiny native size, as the micro model renders."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(count, 4, 4, 3), dtype=np.uint8)
    return np.stack(
        [
            np.asarray(Image.fromarray(frame).resize((size, size), Image.Resampling.BICUBIC))
            for frame in coarse
        ]
    )


@pytest.mark.parametrize("content", ["testsrc", "smooth"])
def test_gif_of_a_10_s_9_16_clip_is_smaller_than_its_mp4(content: str, tmp_path: Path) -> None:
    # The test pattern is the hard case: flat stripes that H.264 codes in almost nothing.
    native = _testsrc_clip(720, 1280, 240) if content == "testsrc" else _smooth_clip(16, 32, 3)
    media = encode_outputs(native, 720, 1280, 240, 24, tmp_path)
    # Well under: at most half the mp4 (measured: 0.21x for the pattern, 0.19x smooth).
    assert media.preview.stat().st_size < 0.5 * media.video.stat().st_size


def test_thumbnail_is_a_webp_at_most_640_wide(tmp_path: Path) -> None:
    frame = _moving_square(1, 720, 1280)[0]
    with Image.open(encode_thumbnail(frame, tmp_path / "t.webp")) as thumbnail:
        assert thumbnail.format == "WEBP"
        assert thumbnail.size == (640, 360)


def test_encode_outputs_writes_all_three_and_reports_the_format(tmp_path: Path) -> None:
    native = _moving_square(16, 180, 320)
    media = encode_outputs(native, 1280, 720, 120, 24, tmp_path / "out")
    assert [media.video.name, media.preview.name, media.thumbnail.name] == [
        "video.mp4",
        "preview.gif",
        "thumbnail.webp",
    ]
    assert (media.width, media.height, media.num_frames, media.fps) == (1280, 720, 120, 24)
    info = probe_video(media.video)
    assert (info.width, info.height, info.num_frames) == (1280, 720, 120)
    assert media.preview.stat().st_size > 0
    # The thumbnail is the middle output frame's picture, conformed straight to 640 wide...
    middle = conform_frames(native, 640, 360, 120)[60]
    expected = encode_thumbnail(middle, tmp_path / "expected.webp")
    assert media.thumbnail.read_bytes() == expected.read_bytes()
    # ...which is the output frame shrunk, give or take one resampling.
    output_frame = Image.fromarray(conform_frames(native, 1280, 720, 120)[60])
    shrunk = np.asarray(output_frame.resize((640, 360), Image.Resampling.LANCZOS))
    with Image.open(media.thumbnail) as thumbnail:
        pixels = np.asarray(thumbnail.convert("RGB")).astype(np.int16)
    assert np.abs(pixels - shrunk).mean() < 3


def _decoded(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    return np.stack(frames).astype(np.int16)


def _resized(clip: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.stack(
        [np.asarray(Image.fromarray(f).resize(size, Image.Resampling.LANCZOS)) for f in clip]
    )


def _native_for(case: str) -> tuple[np.ndarray, int, int]:
    """A native clip and the output (width, height) for each shape the service meets."""
    if case == "16:9":
        return _testsrc_clip(1280, 720, 8), 1280, 720
    if case == "9:16":
        return _testsrc_clip(720, 1280, 8), 720, 1280
    if case == "1:1":
        return _testsrc_clip(960, 960, 8), 960, 960
    if case == "downscale":
        return _resized(_testsrc_clip(1280, 720, 8), (1600, 900)), 1280, 720
    if case == "odd offset":
        # HunyuanVideo's 848x480 covering 1280x720: the sub-pixel crop is one row, odd.
        return _resized(_testsrc_clip(1280, 720, 8), (848, 480)), 1280, 720
    assert case == "micro-like"
    return _smooth_clip(16, 32, 5), 1280, 720


CASES = ["16:9", "9:16", "1:1", "downscale", "odd offset", "micro-like"]


@pytest.mark.parametrize("case", CASES)
def test_mp4_from_native_frames_matches_conform_then_encode(case: str, tmp_path: Path) -> None:
    native, width, height = _native_for(case)
    num_frames = 12
    reference = conform_frames(native, width, height, num_frames)
    # At superfast: ultrafast codes without a deblocking filter, whose own noise between
    # two near-equal pictures would hide what is checked here, the conversion.
    args = (width, height, num_frames, 24)
    new = _decoded(encode_mp4(native, *args, tmp_path / "new.mp4", preset="superfast"))
    old = _decoded(encode_mp4(reference, *args, tmp_path / "old.mp4", preset="superfast"))
    difference = np.abs(new - old)
    # Scaling in YUV rather than RGB moves a level here and there (and so does x264's coding
    # of a slightly different picture); hard edges (the pattern's text) differ most.
    assert difference.mean() < 0.75
    assert np.percentile(difference, 99.9) <= 16
    assert difference.max() <= 48
    # And the new picture is no further from the RGB reference than the old one was.
    reference16 = reference.astype(np.int16)
    assert np.abs(new - reference16).mean() <= np.abs(old - reference16).mean() + 0.05


def _planes(frame: av.VideoFrame) -> list[np.ndarray]:
    return [
        np.frombuffer(memoryview(plane), dtype=np.uint8)[: plane.height * plane.line_size]
        .reshape(plane.height, plane.line_size)[:, : plane.width]
        .astype(np.int16)
        for plane in frame.planes
    ]


def _old_yuv(rgb: np.ndarray) -> av.VideoFrame:
    """How frames at the output size were converted before (and still are)."""
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
        format="yuv420p", dst_colorspace="ITU709"
    )


def _yuv_differences(case: str) -> dict[str, np.ndarray]:
    """|one-pass YUV - (conform in RGB, then convert)| per plane, over the case's frames."""
    native, width, height = _native_for(case)
    converter = YuvConverter(native.shape[2], native.shape[1], width, height)
    reference = conform_frames(native, width, height, len(native))
    differences: dict[str, list[np.ndarray]] = {"Y": [], "U": [], "V": []}
    for frame, rgb in zip(native, reference, strict=True):
        planes = zip("YUV", _planes(converter.convert(frame)), _planes(_old_yuv(rgb)), strict=True)
        for name, new, old in planes:
            differences[name].append(np.abs(new - old))
    return {name: np.stack(planes) for name, planes in differences.items()}


@pytest.mark.parametrize("case", CASES)
def test_one_pass_yuv_is_the_rgb_path_within_rounding(case: str) -> None:
    for name, difference in _yuv_differences(case).items():
        assert difference.mean() < 0.5, name
        # Hard edges upscaled 4x (the pattern's 1-pixel text) differ most: bicubic overshoot
        # is clipped in RGB and kept in YUV, and colour is filtered before the scale, not after.
        assert np.percentile(difference, 99.9) <= (20 if name == "Y" else 12), name
        assert difference.max() <= 32, name


def test_an_odd_sub_pixel_crop_keeps_the_colour_in_place() -> None:
    # yuv420p chroma cropped at an odd offset would sit half a sample off: 20 levels and more
    # at the stripes' edges. Through yuv444p it stays within a few levels of the RGB path.
    differences = _yuv_differences("odd offset")
    for name in "UV":
        assert np.percentile(differences[name], 99.9) <= 6, name


def test_frames_at_the_output_size_are_converted_exactly_as_before() -> None:
    clip = _moving_square(2, 180, 320)
    converter = YuvConverter(320, 180, 320, 180)
    for frame in clip:
        planes = zip(_planes(converter.convert(frame)), _planes(_old_yuv(frame)), strict=True)
        for new, old in planes:
            assert np.array_equal(new, old)


def test_the_preset_chooses_the_encoder_tools_and_an_unknown_one_is_refused(
    tmp_path: Path,
) -> None:
    native = _moving_square(8, 180, 320)
    profiles = {}
    for preset in ("ultrafast", "superfast"):
        path = encode_mp4(native, 640, 360, 12, 24, tmp_path / f"{preset}.mp4", preset=preset)
        with av.open(str(path)) as container:
            profiles[preset] = container.streams.video[0].profile
    # The default codes baseline tools only (no CABAC, no B-frames); the others use High's.
    assert profiles == {"ultrafast": "Constrained Baseline", "superfast": "High"}
    assert encode_outputs.__defaults__ == (DEFAULT_VIDEO_PRESET,) == ("ultrafast",)
    with pytest.raises(ValueError, match="unknown x264 preset 'placebo2'"):
        encode_mp4(native, 640, 360, 12, 24, tmp_path / "x.mp4", preset="placebo2")
    # REELFORGE_VIDEO_PRESET offers exactly the presets the encoder takes.
    offered = get_args(Settings.model_fields["video_preset"].annotation)
    assert offered == VIDEO_PRESETS and Settings().video_preset == DEFAULT_VIDEO_PRESET
