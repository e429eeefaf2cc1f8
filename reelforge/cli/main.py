"""The `reelforge` command: one argparse parser, one module per group of subcommands.

    reelforge serve     API server plus worker processes      (reelforge.cli.serve)
    reelforge worker    one standalone worker                 (reelforge.cli.serve)
    reelforge generate  make a video on a running server      (reelforge.cli.generate)
    reelforge cancel    cancel a queued or running generation (reelforge.cli.cancel)
    reelforge models    list a running server's models        (reelforge.cli.models)
    reelforge micro     train / evaluate the micro model      (reelforge.cli.micro)

Each subcommand sets a `handler(args) -> int` default; `main` parses and calls it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from reelforge import __version__
from reelforge.cli import cancel, common, generate, micro, models, serve

__all__ = ["build_parser", "main"]

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    """The full `reelforge` argument parser."""
    parser = argparse.ArgumentParser(
        prog="reelforge",
        description="Self-hosted video generation speaking the AI/ML API video protocol.",
    )
    parser.add_argument("--version", action="version", version=f"reelforge {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve.add_commands(commands)
    generate.add_command(commands)
    cancel.add_command(commands)
    models.add_command(commands)
    micro.add_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the `reelforge` command line; returns the process exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        # argparse exits for --help, --version and usage errors; callers get a code instead.
        if isinstance(exc.code, int):
            return exc.code
        return common.EXIT_OK if exc.code is None else common.EXIT_USAGE
    handler: Handler = args.handler
    return handler(args)
