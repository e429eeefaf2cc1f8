"""`reelforge cancel ID`: cancel a generation on a running server.

    $ reelforge cancel 3f6c2a9e-...
    3f6c2a9e-...: cancel requested; it stops at its next denoising step

A queued generation ends at once; a running one stops at its next denoising step. Exit code
0 when the cancel was taken, 2 when the generation had already finished (or is unknown).
"""

from __future__ import annotations

import argparse
from typing import Any

from reelforge.cli import common, parsing

__all__ = ["add_command", "run_cancel"]


def add_command(commands: Any) -> None:
    """Register `cancel` on the top-level subcommand parser."""
    parser = parsing.add_command(
        commands,
        "cancel",
        summary="cancel a queued or running generation",
        description="""
            Cancel a generation on a running server. A queued generation ends at once; a
            running one stops at its next denoising step, and nothing is encoded. Polls of
            it then answer status `error` with error name `canceled`.
        """,
        examples=[
            "reelforge cancel 3f6c2a9e-...",
            "reelforge cancel 3f6c2a9e-... --base-url http://gpu-box:8000 --api-key KEY",
        ],
        environment=common.CLIENT_ENVIRONMENT,
        notes="""
            exit codes: 0 the cancel was taken; 2 the generation had already finished, or is
            unknown; 3 the server could not be reached (all codes: reelforge --help).
        """,
    )
    parser.add_argument(
        "generation_id",
        metavar="ID",
        help="the generation's id (`reelforge generate` prints it first, on stderr)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the generation object as JSON on stdout"
    )
    common.add_connection_flags(parser)
    parser.set_defaults(handler=run_cancel)


def run_cancel(args: argparse.Namespace) -> int:
    """Run `reelforge cancel`; returns the exit code (see `reelforge.cli.common`)."""

    def command() -> int:
        with common.make_client(args.base_url, args.api_key) as client:
            generation = client.cancel_generation(args.generation_id)
        if args.json:
            from reelforge.cli.jobs import generation_json, print_json

            print_json(generation_json(generation))
        elif generation.is_terminal:
            print(f"{generation.id}: canceled")
        else:
            print(f"{generation.id}: cancel requested; it stops at its next denoising step")
        return common.EXIT_OK

    return common.report_errors(command)
