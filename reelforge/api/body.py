"""Reading a JSON request body: content type, size, and a strict parse, before any validation.

Strict where Python's `json` is lenient, because every leniency is a way in: a body must be
declared as JSON (a cross-site page can send `text/plain` without a CORS preflight); NaN and
Infinity are not JSON; a key given twice is refused rather than "last one wins" (two parsers
reading one body differently is a classic smuggling trick); integers are capped in length
(Python refuses to convert more than 4,300 digits, with a ValueError that was a 500); nesting
is capped in depth (a deep array raised RecursionError); and every string must be encodable
as UTF-8 (a lone surrogate such as "\\ud800" parses, then fails when the job is stored).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from reelforge.errors import FieldError, InvalidRequest, PayloadTooLarge, UnsupportedMediaType

__all__ = [
    "MAX_JSON_DEPTH",
    "body_too_large",
    "is_json_content_type",
    "parse_json",
    "read_json_body",
]

MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays and objects accepted (the deepest real body has 3 levels)."""

_MAX_INT_DIGITS = 40


def is_json_content_type(value: str) -> bool:
    """`application/json` or a `+json` type, with any parameters (charset=utf-8, ...)."""
    media_type = value.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


async def read_json_body(
    request: Request, max_bytes: int, *, image_field: str | None = None
) -> Any:
    """Return the parsed JSON body: 415 unless declared JSON, 413 past `max_bytes`, 400 naming
    `body` if it is not strict JSON. On a route that takes an input image in `image_field`,
    the 413 names that field (`body_too_large`)."""
    if not is_json_content_type(request.headers.get("content-type", "")):
        raise UnsupportedMediaType(
            "body: send the request body as JSON, with the header 'Content-Type: application/json'"
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise body_too_large(max_bytes, image_field)
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > max_bytes:
            raise body_too_large(max_bytes, image_field)
        chunks.append(chunk)
    return parse_json(b"".join(chunks))


def body_too_large(max_bytes: int, image_field: str | None) -> PayloadTooLarge:
    """The 413 for a body past `max_bytes`. Where the route takes an input image, nothing
    else in a create body comes near the limit, so it names the image's field: an upload
    that large is an image too large, which the user fixes by sending a smaller one."""
    if image_field is None:
        return PayloadTooLarge(f"body: request body is larger than {max_bytes} bytes")
    return PayloadTooLarge(
        f"{image_field}: image too large (the request body is larger than {max_bytes} "
        "bytes; send a smaller image, or a link to it)",
        field=image_field,
    )


def parse_json(raw: bytes) -> Any:
    """Parse `raw` as strict JSON (see the module docstring); raise `InvalidRequest` naming
    `body` otherwise."""
    if not raw.strip():
        raise InvalidRequest(FieldError("body", "a JSON object is required"))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _malformed("not UTF-8 text") from None
    try:
        value = json.loads(
            text,
            object_pairs_hook=_object_without_duplicates,
            parse_constant=_refuse_constant,
            parse_int=_bounded_int,
        )
    except json.JSONDecodeError as exc:
        raise _malformed(f"at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise _too_deep() from None
    _check_nesting_and_text(value)
    return value


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise InvalidRequest(FieldError(key, "is given more than once in the JSON object"))
        result[key] = value
    return result


def _refuse_constant(name: str) -> Any:
    raise _malformed(f"{name} is not a JSON number")


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > _MAX_INT_DIGITS:
        raise _malformed(f"an integer has more than {_MAX_INT_DIGITS} digits")
    return int(digits)


def _check_nesting_and_text(value: Any) -> None:
    """Walk the parsed body once (iteratively: a recursive walk is what it guards against)."""
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise _too_deep()
            children = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in children:
                if isinstance(key, str):
                    _check_text(key)
                pending.append((child, depth + 1))


def _check_text(text: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _malformed("a string holds an unpaired surrogate escape (\\ud800-\\udfff)") from None


def _malformed(why: str) -> InvalidRequest:
    return InvalidRequest(FieldError("body", f"malformed JSON: {why}"))


def _too_deep() -> InvalidRequest:
    return InvalidRequest(
        FieldError("body", f"JSON is nested more than {MAX_JSON_DEPTH} levels deep")
    )
