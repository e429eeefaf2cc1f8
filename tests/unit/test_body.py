"""The strict JSON reader of request bodies (reelforge.api.body)."""

from __future__ import annotations

import pytest

from reelforge.api.body import MAX_JSON_DEPTH, is_json_content_type, parse_json
from reelforge.errors import InvalidRequest


def test_ordinary_json_parses() -> None:
    assert parse_json(b'{"a": [1, 2.5, "x", null, true], "b": {"c": "\\u00e9"}}') == {
        "a": [1, 2.5, "x", None, True],
        "b": {"c": "é"},
    }


def test_nesting_at_the_limit_parses_and_one_more_level_does_not() -> None:
    def nested(depth: int) -> bytes:
        return ("[" * depth + "]" * depth).encode()

    assert parse_json(nested(MAX_JSON_DEPTH)) is not None
    with pytest.raises(InvalidRequest, match="nested"):
        parse_json(nested(MAX_JSON_DEPTH + 1))


def test_paired_surrogates_are_text_and_lone_ones_are_not() -> None:
    assert parse_json(b'"\\ud83c\\udfac"') == "\U0001f3ac"
    with pytest.raises(InvalidRequest, match="surrogate"):
        parse_json(b'["ok", {"k": "\\udfac"}]')
    with pytest.raises(InvalidRequest, match="surrogate"):
        parse_json(b'{"\\ud800": 1}')


def test_long_integers_are_refused_but_long_floats_are_numbers() -> None:
    assert parse_json(b"12345678901234567890") == 12345678901234567890
    with pytest.raises(InvalidRequest, match="digits"):
        parse_json(b"1" + b"0" * 40)
    assert parse_json(b"1.5e3") == 1500.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("application/json", True),
        ("Application/JSON; charset=utf-8", True),
        ("application/merge-patch+json", True),
        ("text/plain", False),
        ("text/json", False),
        ("", False),
    ],
)
def test_json_content_types(value: str, expected: bool) -> None:
    assert is_json_content_type(value) is expected
