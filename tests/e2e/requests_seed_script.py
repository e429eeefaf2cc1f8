"""Drive a server the way the AI/ML API docs' own Python (requests) Kling example does.

Shape of docs.aimlapi.com .../kling-ai/v2-master-text-to-video "Code Example", pointed at the
universal short URL and bounded in time:

  1. POST {base}/v2/video/generations, Authorization: Bearer KEY, json {model, prompt, ...};
     HTTP status >= 400 is an error; the generation id is response["id"].
  2. GET {base}/v2/video/generations with params {"generation_id": id} until the status is
     not "queued"/"generating", printing each status.
  3. GET response["video"]["url"] (no Authorization header, like the SDK) into --out.

Only needs `requests`. stdout: status lines, then one JSON summary line (the last line).
Exit status: 0 when the video was saved, 1 on any error, 3 on --timeout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import requests

PENDING = ("queued", "generating")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8000 (no /v2)")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--model", default="klingai/v2-master-text-to-video")
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--image-url", default=None, help="image-to-video models")
    parser.add_argument("--duration", default=None, help='sent as given; the docs send "5"')
    parser.add_argument("--aspect-ratio", default=None)
    parser.add_argument("--poll-interval", type=float, default=10.0, help="seconds (docs: 10)")
    parser.add_argument("--timeout", type=float, default=120.0, help="overall bound, seconds")
    parser.add_argument(
        "--download-with-auth",
        action="store_true",
        help="also send the Authorization header when fetching video.url",
    )
    return parser.parse_args(argv)


def finish(code: int, summary: dict[str, Any]) -> int:
    summary["ok"] = code == 0
    print(json.dumps(summary, sort_keys=True, default=str), flush=True)
    if code != 0:
        print(f"FAILED: {summary.get('error')}", file=sys.stderr, flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    base = args.base_url.rstrip("/")
    url = f"{base}/v2/video/generations"
    headers = {"Authorization": f"Bearer {args.api_key}"}
    deadline = time.monotonic() + args.timeout
    summary: dict[str, Any] = {"model": args.model, "statuses": []}

    def left() -> float:
        return max(deadline - time.monotonic(), 0.1)

    data: dict[str, Any] = {"model": args.model, "prompt": args.prompt}
    if args.image_url is not None:
        data["image_url"] = args.image_url
    if args.duration is not None:
        data["duration"] = args.duration
    if args.aspect_ratio is not None:
        data["aspect_ratio"] = args.aspect_ratio

    try:
        response = requests.post(url, json=data, headers=headers, timeout=min(left(), 60.0))
    except requests.RequestException as exc:
        return finish(1, {**summary, "error": f"create request failed: {exc}"})
    summary["create_http_status"] = response.status_code
    if response.status_code >= 400:
        return finish(1, {**summary, "error": f"Error: {response.status_code} - {response.text}"})
    created = response.json()
    gen_id = created.get("id")
    summary["generation_id"] = gen_id
    print("Gen_ID: ", gen_id, flush=True)
    if not gen_id:
        return finish(1, {**summary, "error": f"no id in create response: {created}"})

    result: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        try:
            poll = requests.get(
                url,
                params={"generation_id": gen_id},
                headers={**headers, "Content-Type": "application/json"},
                timeout=min(left(), 30.0),
            )
        except requests.RequestException as exc:
            return finish(1, {**summary, "error": f"poll request failed: {exc}"})
        if poll.status_code >= 400:
            return finish(1, {**summary, "error": f"poll error: {poll.status_code} - {poll.text}"})
        payload = poll.json()
        status = payload.get("status")
        summary["statuses"].append(status)
        if status in PENDING:
            print(f"Status: {status}. Checking again in {args.poll_interval} seconds.", flush=True)
            time.sleep(min(args.poll_interval, left()))
            continue
        print("Processing complete:\n", payload, flush=True)
        result = payload
        break
    if result is None:
        return finish(3, {**summary, "error": f"timed out after {args.timeout} s"})

    summary["final_status"] = result.get("status")
    if result.get("status") != "completed":
        return finish(1, {**summary, "error": f"generation ended: {result}"})
    video = result.get("video") or {}
    video_url = video.get("url") if isinstance(video, dict) else None
    if not video_url:
        return finish(1, {**summary, "error": f"completed without video.url: {result}"})
    summary["video_url"] = video_url

    try:
        download = requests.get(
            video_url,
            headers=headers if args.download_with_auth else None,
            timeout=min(left(), 60.0),
            allow_redirects=True,
        )
    except requests.RequestException as exc:
        return finish(1, {**summary, "error": f"download failed: {exc}"})
    summary["download_http_status"] = download.status_code
    summary["content_type"] = download.headers.get("Content-Type")
    if download.status_code >= 400:
        return finish(1, {**summary, "error": f"download error: {download.status_code}"})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(download.content)
    summary.update(bytes=len(download.content), out=str(args.out))
    return finish(0, summary)


if __name__ == "__main__":
    sys.exit(main())
