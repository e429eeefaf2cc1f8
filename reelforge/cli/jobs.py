"""`reelforge list|status|wait|download|delete`: the generations on a running server.

    $ reelforge list
    ID                                    MODEL                            STATUS      PROGRESS  AGE
    3f0c2a9e-...                          klingai/v2-master-text-to-video  generating  40%       2m
    $ reelforge status 3f0c2a9e-...        # status, progress, queue position, ETA, error, URLs
    $ reelforge wait 3f0c2a9e-...          # the progress bar of `generate`; exit 0 once completed
    $ reelforge download 3f0c2a9e-...      # ./3f0c2a9e-....mp4 (--preview: the GIF)
    $ reelforge delete 3f0c2a9e-...        # the generation and its files

Each takes `--json`: the generation object(s) as the client reads them, on stdout (a list for
`list`). Building these parsers imports nothing but argparse: the client, tqdm and the
progress bar are imported when a command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reelforge.cli import common, parsing

if TYPE_CHECKING:
    from collections.abc import Sequence

    from reelforge.client import Generation

__all__ = ["add_commands", "format_age", "run_delete", "run_download", "run_list", "run_status",
           "run_wait"]  # fmt: skip

STATUS_WORDS = ("queued", "generating", "completed", "error")
LIST_DEFAULT_LIMIT = 20

_ID_HELP = "the generation's id (`reelforge generate` prints it first; `reelforge list` shows it)"
_JSON_HELP = "print the generation object as JSON on stdout instead"


def add_commands(commands: Any) -> None:
    """Register `list`, `status`, `wait`, `download` and `delete` on the top-level parser."""
    _add_list(commands)
    _add_status(commands)
    _add_wait(commands)
    _add_download(commands)
    _add_delete(commands)


def _add_list(commands: Any) -> None:
    parser = parsing.add_command(
        commands,
        "list",
        summary="list your generations on a server, newest first",
        description="""
            List the generations of your API key on a running server, newest first, one
            line each: id, model, status, progress and age (since it was submitted). The
            newest 20 by default; --limit shows more or fewer, --all every one.
        """,
        examples=[
            "reelforge list",
            "reelforge list --status queued,generating      # what is waiting or running",
            "reelforge list --all --status error --json",
        ],
        environment=common.CLIENT_ENVIRONMENT,
        notes="""
            exit codes: 0 listed; 2 usage error or the server refused the request; 3 the
            server could not be reached (all codes: reelforge --help).
        """,
    )
    count = parser.add_mutually_exclusive_group()
    count.add_argument(
        "--limit",
        type=_positive_int,
        default=LIST_DEFAULT_LIMIT,
        metavar="N",
        help=f"show the newest N (default {LIST_DEFAULT_LIMIT})",
    )
    count.add_argument("--all", action="store_true", help="show every one (page after page)")
    parser.add_argument(
        "--status",
        type=_statuses,
        action="extend",
        default=[],
        metavar="STATUS",
        help="only these: queued, generating, completed, error (comma-separated, repeatable)",
    )
    parser.add_argument("--model", metavar="ID", help="only this model id")
    parser.add_argument("--json", action="store_true", help="print a JSON list of generations")
    common.add_connection_flags(parser)
    parser.set_defaults(handler=run_list)


def _add_status(commands: Any) -> None:
    parser = parsing.add_command(
        commands,
        "status",
        summary="show where a generation stands, its error or its file URLs",
        description="""
            Show where one generation stands: its status and progress, how many jobs are
            ahead of it while queued, the server's ETA, the error of a failed one, and the
            links to its files once completed. One look; `reelforge wait` follows it.
        """,
        examples=[
            "reelforge status 3f6c2a9e-...",
            "reelforge status 3f6c2a9e-... --json | jq -r .video.url",
        ],
        environment=common.CLIENT_ENVIRONMENT,
        notes="""
            exit codes: 0 shown, whatever its status; 2 unknown id, or the server refused
            the request; 3 the server could not be reached (all codes: reelforge --help).
        """,
    )
    parser.add_argument("generation_id", metavar="ID", help=_ID_HELP)
    parser.add_argument("--json", action="store_true", help=_JSON_HELP)
    common.add_connection_flags(parser)
    parser.set_defaults(handler=run_status)


def _add_wait(commands: Any) -> None:
    parser = parsing.add_command(
        commands,
        "wait",
        summary="follow a generation with a progress bar until it finishes",
        description="""
            Follow a generation (one submitted by `reelforge generate` that was interrupted
            or timed out, or by any client) with the progress bar of `generate` until it
            finishes: exit 0 once it completed, 1 if it failed. It prints `ID: completed`
            on stdout; `reelforge download ID` then saves the video.
        """,
        examples=[
            "reelforge wait 3f6c2a9e-...",
            "reelforge wait 3f6c2a9e-... --timeout 600 && reelforge download 3f6c2a9e-...",
        ],
        environment=common.CLIENT_ENVIRONMENT,
        notes="""
            Ctrl-C or --timeout stops waiting, not the generation.

            exit codes: 0 completed; 1 the generation failed (its error on stderr); 2 unknown
            id, or the server refused the request; 3 the server could not be reached; 4
            --timeout passed (it goes on); 130 interrupted (all codes: reelforge --help).
        """,
    )
    parser.add_argument("generation_id", metavar="ID", help=_ID_HELP)
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="how often to ask for progress, on a server without an event stream (default 1)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="stop waiting after this long, exit 4; the generation goes on (default: wait)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the final generation object as JSON"
    )
    common.add_connection_flags(parser)
    parser.set_defaults(handler=run_wait)


def _add_download(commands: Any) -> None:
    parser = parsing.add_command(
        commands,
        "download",
        summary="save a completed generation's video (or its GIF preview)",
        description="""
            Save the mp4 of a completed generation, or with --preview its GIF preview, to
            FILE (default: ./ID.mp4, or ./ID.gif) and print the path on stdout. A generation
            still queued or running is not waited for (`reelforge wait ID` does that).
        """,
        examples=[
            "reelforge download 3f6c2a9e-...                 # ./3f6c2a9e-....mp4",
            "reelforge download 3f6c2a9e-... -o fox.mp4",
            "reelforge download 3f6c2a9e-... --preview -o fox.gif",
        ],
        environment=common.CLIENT_ENVIRONMENT,
        notes="""
            exit codes: 0 saved; 1 the generation failed or has not finished yet; 2 unknown
            id, or the server refused the request; 3 the server could not be reached (all
            codes: reelforge --help).
        """,
    )
    parser.add_argument("generation_id", metavar="ID", help=_ID_HELP)
    parser.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="where to save (default ./ID.mp4)"
    )
    parser.add_argument(
        "--preview", action="store_true", help="save the GIF preview instead (default ./ID.gif)"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the generation object as JSON, with the saved file's `path`",
    )
    common.add_connection_flags(parser)
    parser.set_defaults(handler=run_download)


def _add_delete(commands: Any) -> None:
    parser = parsing.add_command(
        commands,
        "delete",
        summary="delete a generation and its files",
        description="""
            Delete a generation from a running server: a queued or running one is canceled
            first; its row and its files (video, preview, thumbnail, input image) are
            removed, and its links answer 404 from then on.
        """,
        examples=[
            "reelforge delete 3f6c2a9e-...",
            "reelforge list --status error --json | jq -r '.[].id' | xargs -n1 reelforge delete",
        ],
        environment=common.CLIENT_ENVIRONMENT,
        notes="""
            exit codes: 0 deleted; 2 unknown id (or already deleted), or the server refused
            the request; 3 the server could not be reached (all codes: reelforge --help).
        """,
    )
    parser.add_argument("generation_id", metavar="ID", help=_ID_HELP)
    parser.add_argument(
        "--json", action="store_true", help='print the server\'s answer {"id", "deleted"}'
    )
    common.add_connection_flags(parser)
    parser.set_defaults(handler=run_delete)


# --- running them ---------------------------------------------------------------------------


def run_list(args: argparse.Namespace) -> int:
    """Run `reelforge list`; returns the exit code (see `reelforge.cli.common`)."""

    def command() -> int:
        with common.make_client(args.base_url, args.api_key) as client:
            if args.all:
                found = list(client.iter_generations(status=args.status, model=args.model))
                more = False
            else:
                # One more than shown, to know whether there are more.
                generations = client.iter_generations(
                    status=args.status, model=args.model, page_size=min(100, args.limit + 1)
                )
                found = list(islice(generations, args.limit + 1))
                more = len(found) > args.limit
                found = found[: args.limit]
        if args.json:
            print_json([generation_json(generation) for generation in found])
        elif found:
            print(_list_table(found, now=datetime.now(UTC)))
        else:
            print("reelforge: no generations", file=sys.stderr)
        if more:
            print(
                f"reelforge: showing the newest {args.limit}; --limit N or --all for more",
                file=sys.stderr,
            )
        return common.EXIT_OK

    return common.report_errors(command)


def run_status(args: argparse.Namespace) -> int:
    """Run `reelforge status`; returns the exit code (see `reelforge.cli.common`)."""

    def command() -> int:
        with common.make_client(args.base_url, args.api_key) as client:
            generation = client.get_generation(args.generation_id)
        if args.json:
            print_json(generation_json(generation))
        else:
            print(format_fields(status_fields(generation, now=datetime.now(UTC))))
        return common.EXIT_OK

    return common.report_errors(command)


def run_wait(args: argparse.Namespace) -> int:
    """Run `reelforge wait`; returns the exit code (see `reelforge.cli.common`)."""

    def command() -> int:
        from reelforge.cli.progress import follow, print_warnings
        from reelforge.client import GenerationFailed, WaitTimeout

        with common.make_client(args.base_url, args.api_key) as client:
            first = client.get_generation(args.generation_id)  # an unknown id fails here
            try:
                generation = follow(
                    client, first, poll_interval_s=args.poll_interval, timeout_s=args.timeout
                )
            except (GenerationFailed, WaitTimeout) as exc:
                if args.json:
                    print_json(generation_json(exc.generation))
                raise
        print_warnings(generation)
        if args.json:
            print_json(generation_json(generation))
        else:
            print(f"{generation.id}: {generation.status}")
            print(f"reelforge: `reelforge download {generation.id}` saves it", file=sys.stderr)
        return common.EXIT_OK

    return common.report_errors(command)


def run_download(args: argparse.Namespace) -> int:
    """Run `reelforge download`; returns the exit code (see `reelforge.cli.common`)."""

    def command() -> int:
        from reelforge.client import GenerationFailed

        with common.make_client(args.base_url, args.api_key) as client:
            generation = client.get_generation(args.generation_id)
            if generation.failed:
                raise GenerationFailed(generation)
            if not generation.succeeded:
                raise common.CommandFailed(
                    f"generation {generation.id} is still {generation.status} "
                    f"({generation.progress}%); `reelforge wait {generation.id}` waits for it"
                )
            artifact = generation.preview if args.preview else generation.video
            if artifact is None:
                what = "GIF preview" if args.preview else "video"
                raise common.CommandFailed(f"the server sent no {what} for {generation.id}")
            suffix = ".gif" if args.preview else ".mp4"
            path: Path = args.output or Path(f"{generation.id}{suffix}")
            path.parent.mkdir(parents=True, exist_ok=True)
            client.download(artifact.url, path)
        if args.json:
            print_json({**generation_json(generation), "path": str(path)})
        else:
            print(path)
        return common.EXIT_OK

    return common.report_errors(command)


def run_delete(args: argparse.Namespace) -> int:
    """Run `reelforge delete`; returns the exit code (see `reelforge.cli.common`)."""

    def command() -> int:
        with common.make_client(args.base_url, args.api_key) as client:
            deleted = client.delete_generation(args.generation_id)
        if args.json:
            print_json(deleted.model_dump(mode="json"))
        else:
            print(f"{deleted.id}: deleted")
        return common.EXIT_OK

    return common.report_errors(command)


# --- what they print ------------------------------------------------------------------------


def generation_json(generation: Generation) -> dict[str, Any]:
    """The generation as `--json` prints it: every field the client reads."""
    data: dict[str, Any] = generation.model_dump(mode="json")
    return data


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _list_table(generations: Sequence[Generation], *, now: datetime) -> str:
    rows = [
        [g.id, g.model or "-", g.status, f"{g.progress}%", format_age(g.created_at, now=now)]
        for g in generations
    ]
    return format_columns(["ID", "MODEL", "STATUS", "PROGRESS", "AGE"], rows)


def format_columns(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns two spaces apart, as `ps` prints them."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
             for row in [header, *rows]]  # fmt: skip
    return "\n".join(line.rstrip() for line in lines)


def format_age(created_at: datetime | None, *, now: datetime) -> str:
    """How long ago, in its largest whole unit: `42s`, `5m`, `3h`, `2d`; `-` if unknown."""
    if created_at is None:
        return "-"
    if created_at.tzinfo is None:  # the protocol's timestamps are UTC
        created_at = created_at.replace(tzinfo=UTC)
    seconds = max(0, int((now - created_at).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def status_fields(generation: Generation, *, now: datetime) -> list[tuple[str, str]]:
    """The (field, value) rows `reelforge status` prints: only those that say something."""
    from reelforge.cli.progress import describe, eta_text

    status = generation.status
    if status == "generating":  # the phase: rendering, or encoding
        status = f"{status} ({describe(generation)})"
    if generation.cancel_requested and not generation.is_terminal:
        status += ", cancel requested"
    fields = [("id", generation.id), ("model", generation.model or "-"), ("status", status),
              ("progress", f"{generation.progress}%")]  # fmt: skip
    if generation.status == "queued" and generation.queue_position is not None:
        fields.append(("queue position", f"{generation.queue_position} ahead"))
    eta = eta_text(generation)
    if eta:
        fields.append(("eta", eta.removeprefix("ETA ")))
    if generation.error is not None:
        fields.append(("error", str(generation.error)))
    if generation.created_at is not None:
        age = format_age(generation.created_at, now=now)
        fields.append(("created", f"{generation.created_at.isoformat()} ({age} ago)"))
    for name, value in (("seed", generation.seed), ("engine", generation.engine)):
        if value is not None:
            fields.append((name, str(value)))
    for name, file in (("video", generation.video), ("preview", generation.preview),
                       ("thumbnail", generation.thumbnail)):  # fmt: skip
        if file is not None:
            fields.append((name, file.url))
    return fields


def format_fields(fields: Sequence[tuple[str, str]]) -> str:
    """(name, value) rows as two columns, values unwrapped (URLs stay whole for copying)."""
    width = max(len(name) for name, _ in fields)
    return "\n".join(f"{name + ':':<{width + 1}}  {value}" for name, value in fields)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _statuses(text: str) -> list[str]:
    words = [word.strip() for word in text.split(",") if word.strip()]
    for word in words:
        if word not in STATUS_WORDS:
            raise argparse.ArgumentTypeError(
                f"{word!r} is not a status; use {', '.join(STATUS_WORDS)}"
            )
    return words
