"""Drive a server with the AI/ML API's official Python SDK (`aimlapi-sdk-python`), unchanged.

Run with the SDK's own isolated interpreter, never the reelforge venv: the SDK wheel ships
its own copy of the `openai` package.

    python3.11 -m venv /tmp/aimlenv && /tmp/aimlenv/bin/pip install aimlapi-sdk-python
    /tmp/aimlenv/bin/python tests/e2e/aimlapi_sdk_script.py --base-url http://127.0.0.1:8000 \
        --api-key KEY --model klingai/v2-master-text-to-video --prompt "a cat" --out /tmp/v.mp4

What the SDK does (aimlapi/resources/videos.py, SDK 2.24.0rc1):
  * POST {scheme://host:port}/v2/video/generations -- the path of --base-url is discarded;
  * GET  /v2/video/generations?generation_id=<id> every `poll_interval` s while the status is
    "queued" or "generating" (case-insensitive); any other status ends the polling;
  * with return_bytes=True: GET the first "url" string found anywhere in the final payload,
    with a fresh httpx client (no Authorization header, redirects followed, no timeout).

stdout gets exactly one JSON line (the summary); status updates go to stderr.
Exit status: 0 on success, 1 when the SDK raised, 2 when the SDK is not importable.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8000")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--model", default="klingai/v2-master-text-to-video")
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--out", required=True, type=Path, help="where the video bytes go")
    parser.add_argument(
        "--image-url",
        default=None,
        help="image-to-video: sent as extra_body={'image_url': ...} (the SDK has no parameter)",
    )
    parser.add_argument("--duration", type=int, default=None, help="seconds (int in the SDK)")
    parser.add_argument("--aspect-ratio", default=None, help='e.g. "16:9"')
    parser.add_argument("--negative-prompt", default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--poll-interval", type=float, default=0.5, help="SDK poll_interval (default 10 s)"
    )
    parser.add_argument(
        "--poll-timeout", type=float, default=120.0, help="SDK poll_timeout (default 600 s)"
    )
    parser.add_argument(
        "--max-retries", type=int, default=2, help="client max_retries (SDK default 2)"
    )
    parser.add_argument(
        "--request-timeout", type=float, default=60.0, help="per-request HTTP timeout, seconds"
    )
    parser.add_argument(
        "--idempotency-key",
        default=None,
        help="sent as extra_headers={'Idempotency-Key': ...}; the SDK repeats it on retries",
    )
    return parser.parse_args(argv)


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


class _RetryCounter(logging.Handler):
    """Counts the SDK's own "Retrying request to ..." log records."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("Retrying request"):
            self.count += 1


def _count_sdk_retries() -> _RetryCounter:
    counter = _RetryCounter()
    sdk_log = logging.getLogger("openai._base_client")
    sdk_log.setLevel(logging.INFO)
    sdk_log.addHandler(counter)
    return counter


def emit(summary: Mapping[str, Any]) -> None:
    summary = {
        **summary,
        **({"retries": summary["retries"].count} if "retries" in summary else {}),
    }
    sys.stdout.write(json.dumps(summary, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import aimlapi
        from aimlapi import AIMLAPI
    except ImportError as exc:
        emit({"ok": False, "error_type": "ImportError", "error": str(exc)})
        print(f"aimlapi SDK not importable from {sys.executable}: {exc}", file=sys.stderr)
        return 2

    updates: list[dict[str, Any]] = []
    retries = _count_sdk_retries()

    def on_status(payload: Mapping[str, Any]) -> None:
        updates.append(dict(payload))
        print(f"[status] {json.dumps(dict(payload), default=str)}", file=sys.stderr, flush=True)

    extra_body: dict[str, Any] | None = None
    if args.image_url is not None:
        extra_body = {"image_url": args.image_url}

    client = AIMLAPI(
        api_key=args.api_key,
        base_url=args.base_url,
        max_retries=args.max_retries,
        timeout=args.request_timeout,
    )
    started = time.monotonic()
    summary: dict[str, Any] = {
        # the dist version (2.24.0rc1) differs from aimlapi.__version__ (v2.8.1-beta.2)
        "sdk_version": getattr(aimlapi, "__version__", None),
        "sdk_dist_version": _dist_version("aimlapi-sdk-python"),
        "model": args.model,
        "retries": retries,
    }
    try:
        result = client.videos.generate_with_polling(
            model=args.model,
            prompt=args.prompt,
            aspect_ratio=args.aspect_ratio,
            duration=args.duration,
            negative_prompt=args.negative_prompt,
            seed=args.seed,
            poll_interval=args.poll_interval,
            poll_timeout=args.poll_timeout,
            return_bytes=True,
            status_callback=on_status,
            extra_body=extra_body,
            extra_headers=(
                {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else None
            ),
        )
    except Exception as exc:
        summary.update(
            ok=False,
            error_type=f"{type(exc).__module__}.{type(exc).__name__}",
            error=str(exc),
            status_code=getattr(exc, "status_code", None),
            body=getattr(exc, "body", None),
            last_update=updates[-1] if updates else None,
            polls=max(len(updates) - 1, 0),
            elapsed_s=round(time.monotonic() - started, 3),
        )
        emit(summary)
        print(f"FAILED: {summary['error_type']}: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()

    if not isinstance(result, bytes | bytearray):
        summary.update(ok=False, error=f"expected bytes, got {type(result).__name__}")
        emit(summary)
        return 1

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(result)
    first = updates[0] if updates else {}
    last = updates[-1] if updates else {}
    summary.update(
        ok=True,
        bytes=len(result),
        out=str(args.out),
        generation_id=first.get("generation_id") or first.get("id"),
        final_status=last.get("status"),
        statuses=[u.get("status") for u in updates],
        polls=max(len(updates) - 1, 0),
        elapsed_s=round(time.monotonic() - started, 3),
    )
    emit(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
