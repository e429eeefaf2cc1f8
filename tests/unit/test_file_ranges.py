"""Which byte range a download from a non-local store serves for a `Range` header."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from reelforge.api.files import _RangeNotSatisfiable, _requested_range

SIZE = 1000


def _request(**headers: str) -> Request:
    raw = [(name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()]
    return Request({"type": "http", "method": "GET", "headers": raw})


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-", (0, 1000)),
        ("bytes=0-0", (0, 1)),
        ("bytes=100-199", (100, 200)),
        ("bytes=900-5000", (900, 1000)),  # an end past the object is cut to it
        ("bytes=-100", (900, 1000)),  # the last 100 bytes
        ("bytes=-5000", (0, 1000)),
    ],
)
def test_one_range_is_served(header: str, expected: tuple[int, int]) -> None:
    assert _requested_range(_request(range=header), SIZE) == expected


@pytest.mark.parametrize(
    "header", ["bytes=0-1,5-6", "items=0-1", "bytes=-", "bytes=a-b", "bytes 0-1", "bytes=5-4"]
)
def test_what_is_not_one_byte_range_gets_the_whole_object(header: str) -> None:
    assert _requested_range(_request(range=header), SIZE) is None


def test_no_range_and_if_range_get_the_whole_object() -> None:
    assert _requested_range(_request(), SIZE) is None
    # No validator is sent, so an If-Range can never match: the whole object, not a part.
    assert _requested_range(_request(range="bytes=0-1", if_range='"etag"'), SIZE) is None


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5000-6000", "bytes=-0"])
def test_a_range_outside_the_object_is_not_satisfiable(header: str) -> None:
    with pytest.raises(_RangeNotSatisfiable):
        _requested_range(_request(range=header), SIZE)
