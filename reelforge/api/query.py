"""Query parameters every dialect reads the same way."""

from __future__ import annotations

from reelforge.errors import FieldError, InvalidRequest

__all__ = ["bounded_int"]


def bounded_int(name: str, value: str | None, default: int, maximum: int) -> int:
    """`value` as an integer from 1 to `maximum` (`default` when absent); else a 400 naming
    `name`. ASCII digits only: `str.isdigit` also accepts "²", which `int` refuses."""
    if value is None:
        return default
    value = value.strip()
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= maximum:
        raise InvalidRequest(FieldError(name, f"must be an integer from 1 to {maximum}"))
    return int(value)
