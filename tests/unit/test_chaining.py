"""Planning and joining the segments of a clip longer than one model pass."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from reelforge.engines.diffusers.chaining import Segment, append_segment, plan_segments


def test_short_clip_is_one_segment() -> None:
    assert plan_segments(81, 81, 5, 4) == [Segment(0, 81)]
    assert plan_segments(33, 81, 5, 4) == [Segment(0, 33)]


def test_ten_seconds_of_wan21_is_two_overlapping_segments() -> None:
    # 10 s at 16 fps: 161 frames (4k + 1); Wan2.1 renders at most 81 per pass.
    segments = plan_segments(161, 81, 5, 4)
    assert segments == [Segment(0, 81), Segment(76, 81), Segment(152, 9)]
    # Each segment after the first starts `overlap` frames before the previous one ends.
    for previous, segment in itertools.pairwise(segments):
        assert segment.start == previous.start + previous.frames - 5


@pytest.mark.parametrize(("total", "limit", "overlap"), [(241, 121, 5), (161, 81, 1), (97, 17, 8)])
def test_segments_cover_the_clip_with_legal_lengths(total: int, limit: int, overlap: int) -> None:
    segments = plan_segments(total, limit, overlap, 4)
    assert segments[0].start == 0
    assert segments[-1].start + segments[-1].frames >= total
    assert segments[-2].start + segments[-2].frames < total  # no needless last segment
    for segment in segments:
        assert segment.frames <= limit
        assert segment.frames % 4 == 1


def test_overlap_must_leave_room_to_progress() -> None:
    with pytest.raises(ValueError, match="cannot overlap"):
        plan_segments(100, 9, 8, 4)
    with pytest.raises(ValueError, match="at least the conditioning frame"):
        plan_segments(100, 81, 0, 4)


def test_append_cross_fades_the_shared_frames() -> None:
    clip = np.zeros((10, 2, 2, 3), dtype=np.float32)
    segment = np.ones((6, 2, 2, 3), dtype=np.float32)
    joined = append_segment(clip, segment, start=7)  # frames 7, 8, 9 are shared
    assert joined.shape[0] == 7 + 6
    np.testing.assert_allclose(joined[:7], 0.0)
    np.testing.assert_allclose(joined[7:10, 0, 0, 0], [0.25, 0.5, 0.75])
    np.testing.assert_allclose(joined[10:], 1.0)


def test_append_keeps_uint8_frames_uint8() -> None:
    clip = np.full((4, 1, 1, 3), 100, dtype=np.uint8)
    segment = np.full((5, 1, 1, 3), 200, dtype=np.uint8)
    joined = append_segment(clip, segment, start=3)
    assert joined.dtype == np.uint8
    assert joined[:, 0, 0, 0].tolist() == [100, 100, 100, 150, 200, 200, 200, 200]


def test_append_refuses_a_segment_that_does_not_meet_the_clip() -> None:
    clip = np.zeros((4, 1, 1, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="does not overlap"):
        append_segment(clip, np.zeros((5, 1, 1, 3), dtype=np.float32), start=4)
