"""`reelforge generate`: submit one video, show its progress, save the mp4 (and GIF preview).

    reelforge generate "a crimson ball drifting to the left" --duration 5 -o ball.mp4 --preview
    reelforge generate "the square slides to the right" --image square.png   # image-to-video

Saved paths go to stdout, one per line, so scripts can pick them up; everything else (the
generation id, the progress bar, the engine's warnings about the result, errors) goes to
stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reelforge.cli import common, parsing

if TYPE_CHECKING:
    from reelforge.client import Generation, ReelforgeClient

# The client (httpx, pydantic), tqdm and the AI/ML API vocabulary are imported when the command runs
# (the choices below load on first use), so building the parser stays light.

__all__ = ["add_command", "image_url_for", "run_generate"]


def _aspect_ratios() -> Iterable[str]:
    from reelforge.api.aimlapi.vocabulary import AspectRatio

    return [ratio.value for ratio in AspectRatio]


def _camera_presets() -> Iterable[str]:
    from reelforge.api.aimlapi.vocabulary import CAMERA_PRESETS

    return list(CAMERA_PRESETS)


def add_command(commands: Any) -> None:
    """Register `generate` on the top-level subcommand parser."""
    parser = parsing.add_command(
        commands,
        "generate",
        summary="generate a video on a running server and save it",
        description="""
            Submit one video to a running server (`reelforge serve`), show its status,
            progress and queue position, and save the mp4 (and, with --preview, the GIF).
            Saved paths go to stdout, one per line, so scripts can pick them up; the
            generation id, the progress bar and errors go to stderr.
        """,
        examples=[
            'reelforge generate "a paper boat on a rainy street" -o boat.mp4 --preview',
            'reelforge generate "the boat sails away" --image boat.png      # image-to-video',
            'reelforge generate "a red circle moving left" --seed 7 --base-url http://gpu-box:8000',
        ],
        environment=common.CLIENT_ENVIRONMENT,
        notes="""
            Ctrl-C or --timeout stops waiting, not the generation: it goes on on the server,
            `reelforge wait ID` picks it up and `reelforge cancel ID` cancels it.

            exit codes: 0 saved; 1 the generation failed; 2 usage error or the server refused
            the request; 3 the server could not be reached; 4 --timeout passed (the job goes
            on; its id is on stderr); 130 interrupted (all codes: reelforge --help).
        """,
    )
    parser.add_argument(
        "prompt", nargs="?", metavar="PROMPT", help="what to show (optional with --image)"
    )
    parser.add_argument(
        "--model",
        help="model id (default: klingai/v2-master-text-to-video, or "
        "klingai/v2-master-image-to-video with --image)",
    )
    parser.add_argument(
        "--image", metavar="PATH|URL", help="start image: a local file (uploaded) or an http(s) URL"
    )
    parser.add_argument("--duration", type=int, choices=(5, 10), help="seconds (default 5)")
    parser.add_argument(
        "--aspect-ratio",
        choices=parsing.LazyChoices(_aspect_ratios),
        metavar="RATIO",
        help="frame shape: 16:9 is 1280x720, 9:16 720x1280, 1:1 960x960 (default 16:9)",
    )
    parser.add_argument("--negative-prompt", metavar="TEXT", help="what to avoid")
    parser.add_argument(
        "--cfg-scale", type=_unit_interval, metavar="0..1", help="prompt adherence (default 0.5)"
    )
    parser.add_argument(
        "--camera-control",
        choices=parsing.LazyChoices(_camera_presets),
        metavar="PRESET",
        help="camera movement: %(choices)s",
    )
    parser.add_argument("--seed", type=int, help="random seed, for repeatable results")
    parser.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="where to save the mp4 (default ./ID.mp4)"
    )
    parser.add_argument(
        "--preview", action="store_true", help="also save the GIF preview, as FILE with .gif"
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="how often to ask for progress (default 1)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="stop waiting after this long, exit 4; the generation goes on (default: wait)",
    )
    common.add_connection_flags(parser)
    parser.set_defaults(handler=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    """Run `reelforge generate`; returns the exit code (see `reelforge.cli.common`)."""
    return common.report_errors(lambda: _generate(args))


def _generate(args: argparse.Namespace) -> int:
    from reelforge.cli.progress import print_warnings

    if not args.prompt and not args.image:
        raise common.UsageError("generate needs a PROMPT, an --image, or both")
    image_url = image_url_for(args.image) if args.image else None
    with common.make_client(args.base_url, args.api_key) as client:
        generation = _create_and_wait(client, args, image_url)
        print_warnings(generation)
        saved = _save(client, generation, args.output, preview=args.preview)
    for path in saved:
        print(path)
    return common.EXIT_OK


def image_url_for(value: str) -> str:
    """What `--image` sends: URLs and data URIs as given, a local file as a data URI."""
    if value.startswith(("http://", "https://", "data:")):
        return value
    from reelforge.client import image_to_data_uri

    path = Path(value).expanduser()
    if not path.is_file():
        raise common.UsageError(
            f"--image {value}: no such file (give a local image file or an http(s) URL)"
        )
    return image_to_data_uri(path)


def _create_and_wait(
    client: ReelforgeClient, args: argparse.Namespace, image_url: str | None
) -> Generation:
    from reelforge.cli.progress import follow
    from reelforge.client import default_model

    model = args.model or default_model(image_url)
    created = client.create_generation(
        args.prompt,
        model=model,
        image_url=image_url,
        duration=args.duration,
        aspect_ratio=args.aspect_ratio,
        negative_prompt=args.negative_prompt,
        cfg_scale=args.cfg_scale,
        camera_control=args.camera_control,
        seed=args.seed,
    )
    # The id first, so an interrupted or timed-out wait still tells the user what to look up.
    print(f"reelforge: generation {created.id} ({created.model or model})", file=sys.stderr)
    return follow(client, created, poll_interval_s=args.poll_interval, timeout_s=args.timeout)


def _save(
    client: ReelforgeClient, generation: Generation, output: Path | None, *, preview: bool
) -> list[Path]:
    if generation.video is None:
        raise common.UsageError(f"generation {generation.id} completed without a video URL")
    video_path = output if output is not None else Path(f"{generation.id}.mp4")
    video_path.parent.mkdir(parents=True, exist_ok=True)
    saved = [client.download(generation.video.url, video_path)]
    if preview:
        if generation.preview is None:
            print("reelforge: warning: the server sent no GIF preview", file=sys.stderr)
        else:
            gif_path = video_path.with_suffix(".gif")
            if gif_path == video_path:  # `-o clip.gif` must not be overwritten by its preview
                gif_path = video_path.with_name(video_path.name + ".preview.gif")
            saved.append(client.download(generation.preview.url, gif_path))
    return saved


def _unit_interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number between 0 and 1, got {text}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value
