"""Drive reelforge's /v1/videos with OpenAI's own `openai` package, unmodified.

Run by tests/e2e/test_openai_dialect.py with the interpreter of `.venv-openai` (`make
openai-env`); it imports nothing from reelforge. Writes every downloaded file into `--out`
and prints one JSON summary line last.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path
from typing import Any

import openai
from openai import OpenAI

warnings.simplefilter("ignore", DeprecationWarning)  # "The Sora API is scheduled to shut down"

POLL_MS = 200


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--image", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    client = OpenAI(base_url=args.base_url + "/v1", api_key=args.api_key, max_retries=0)
    summary: dict[str, Any] = {}

    # Text to video: create, then create_and_poll (which polls retrieve).
    queued = client.videos.create(model="sora-2", prompt="a fox in the snow", seconds="4")
    summary["queued"] = {"status": queued.status, "size": queued.size, "seconds": queued.seconds}
    t2v = client.videos.create_and_poll(
        model="sora-2",
        prompt="a raccoon in a sequoia forest",
        seconds="4",
        size="1792x1024",
        poll_interval_ms=POLL_MS,
    )
    summary["t2v"] = t2v.model_dump()
    for variant in ("video", "thumbnail", "spritesheet"):
        content = client.videos.download_content(t2v.id, variant=variant)
        content.write_to_file(args.out / f"t2v-{variant}")

    # Image to video: the first frame uploaded as a file (multipart).
    with open(args.image, "rb") as image:
        i2v = client.videos.create_and_poll(
            prompt="the scene comes alive",
            input_reference=image,
            seconds="8",
            size="720x1280",
            poll_interval_ms=POLL_MS,
        )
    summary["i2v"] = i2v.model_dump()
    client.videos.download_content(i2v.id).write_to_file(args.out / "i2v-video")

    # Remix: the same spec and seed, a new prompt.
    remix = client.videos.remix(t2v.id, prompt="a raccoon in a sequoia forest at night")
    remix = client.videos.poll(remix.id, poll_interval_ms=POLL_MS)
    summary["remix"] = remix.model_dump()
    client.videos.download_content(remix.id).write_to_file(args.out / "remix-video")

    # List, auto-paging two at a time over every video.
    page = client.videos.list(limit=2)
    summary["first_page"] = [video.id for video in page.data]
    summary["listed"] = [video.id for video in client.videos.list(limit=2)]
    summary["listed_asc"] = [video.id for video in client.videos.list(limit=2, order="asc")]

    # Bad input: OpenAI's error, naming the field.
    summary["errors"] = {}
    for name, kwargs in {
        "size": {"size": "640x480"},
        "seconds": {"seconds": "6"},
        "model": {"model": "sora-9"},
    }.items():
        try:
            client.videos.create(prompt="x", **kwargs)  # type: ignore[arg-type]
        except openai.BadRequestError as exc:
            summary["errors"][name] = {"status": exc.status_code, "body": exc.body}
        else:
            raise SystemExit(f"a create with a bad {name} was accepted")

    # Delete, after which the video is gone.
    deleted = client.videos.delete(queued.id)
    summary["deleted"] = deleted.model_dump()
    try:
        client.videos.retrieve(queued.id)
    except openai.NotFoundError as exc:
        summary["after_delete"] = exc.status_code
    summary["ids"] = {"queued": queued.id, "t2v": t2v.id, "i2v": i2v.id, "remix": remix.id}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
