"""Reading a JSON request body with a size cap, before any parsing."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from reelforge.errors import FieldError, InvalidRequest, PayloadTooLarge

__all__ = ["read_json_body"]


async def read_json_body(request: Request, max_bytes: int) -> Any:
    """Return the parsed JSON body; 413 past `max_bytes`, 400 naming `body` if malformed."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"body: request body is larger than {max_bytes} bytes")
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > max_bytes:
            raise PayloadTooLarge(f"body: request body is larger than {max_bytes} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise InvalidRequest(FieldError("body", "a JSON object is required"))
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        where = f" at line {exc.lineno} column {exc.colno}"
        raise InvalidRequest(FieldError("body", f"malformed JSON{where}")) from None
    except UnicodeDecodeError:
        raise InvalidRequest(FieldError("body", "malformed JSON: not UTF-8 text")) from None
