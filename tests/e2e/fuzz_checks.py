"""A Schemathesis check of reelforge's own, loaded by `test_fuzz.py` into the fuzzer's own
environment (SCHEMATHESIS_HOOKS names this file; nothing of reelforge is importable there):
no answer, body or headers, carries a stack trace or a secret the server was configured with
(REELFORGE_FUZZ_SECRETS, comma-separated: keys, the URL signing secret, the webhook secret).
The server's log is checked for tracebacks apart; this checks what a client sees."""

from __future__ import annotations

import os
from typing import Any

import schemathesis

SECRETS = [s.encode() for s in os.environ.get("REELFORGE_FUZZ_SECRETS", "").split(",") if s]
# A Python stack trace's header and its frame lines.
TRACE_MARKS = (b"Traceback (most recent call last)", b'.py", line ')


@schemathesis.check
def no_secret_or_stack_trace(ctx: Any, response: Any, case: Any) -> None:
    headers = "\n".join(
        f"{name}: {value}" for name, values in response.headers.items() for value in values
    ).encode()
    for part, data in (("body", response.content or b""), ("headers", headers)):
        for mark in TRACE_MARKS:
            if mark in data:
                raise AssertionError(f"the answer's {part} carries a stack trace ({mark!r})")
        for number, secret in enumerate(SECRETS, 1):
            if secret in data:
                raise AssertionError(f"the answer's {part} carries configured secret #{number}")
