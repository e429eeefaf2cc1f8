"""The `reelforge` command: one argparse parser, one module per group of subcommands.

    reelforge serve     API server plus worker processes      (reelforge.cli.serve)
    reelforge worker    one standalone worker                 (reelforge.cli.serve)
    reelforge generate  make a video on a running server      (reelforge.cli.generate)
    reelforge cancel    cancel a queued or running generation (reelforge.cli.cancel)
    reelforge list, status, wait, download, delete
                        the generations on a server           (reelforge.cli.jobs)
    reelforge models    the models here, downloads, a server's (reelforge.cli.models)
    reelforge micro     train / evaluate the micro model      (reelforge.cli.micro)
    reelforge keys      managed API keys, on the database     (reelforge.cli.keys)
    reelforge usage     what your key used, per day and model (reelforge.cli.usage)

Each subcommand sets a `handler(args) -> int` default; `main` parses and calls it. Every
parser is a `reelforge.cli.parsing.CommandParser`. Building the parser imports no torch,
numpy, PIL, uvicorn, httpx or pydantic (`reelforge --help` answers in well under 0.1 s;
tests/unit/test_cli.py checks the imports): each command imports what it runs on when it
runs, and help that needs a heavy import is filled in when printed (`parsing.defer_help`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from reelforge import __version__
from reelforge.cli import cancel, common, generate, jobs, keys, micro, models, serve, usage
from reelforge.cli.parsing import CommandParser, format_pairs

__all__ = ["build_parser", "main"]

Handler = Callable[[argparse.Namespace], int]

_DESCRIPTION = """\
Self-hosted video generation speaking the AI/ML API video protocol. `serve` runs the
server (API, job queue and workers); `generate`, `list`, `status`, `wait`, `download`,
`cancel`, `delete` and `models served` talk to a running one; `models` and `micro` manage
the models on this machine."""

_EXAMPLES = """\
examples:
  reelforge serve                                   # http://127.0.0.1:8000, until Ctrl-C
  reelforge generate "a red circle moving left on a black background" -o circle.mp4
  reelforge list                                    # your generations, newest first
  reelforge wait ID && reelforge download ID        # pick up a generation later
  reelforge models list
  reelforge COMMAND --help                          # what each command does and reads"""


_ENVIRONMENT = """\
environment:
  Each command's --help lists the variables it reads: serve and worker every REELFORGE_*
  setting, the client commands REELFORGE_BASE_URL and REELFORGE_API_KEY."""


def build_parser() -> argparse.ArgumentParser:
    """The full `reelforge` argument parser."""
    exit_codes = format_pairs([(str(code), meaning) for code, meaning in common.EXIT_CODES])
    parser = CommandParser(
        prog="reelforge",
        description=_DESCRIPTION,
        epilog=f"{_EXAMPLES}\n\n{_ENVIRONMENT}\n\nexit codes:\n{exit_codes}",
    )
    parser.add_argument("--version", action="version", version=f"reelforge {__version__}")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", title="commands"
    )
    serve.add_commands(commands)
    generate.add_command(commands)
    jobs.add_commands(commands)
    cancel.add_command(commands)
    models.add_command(commands)
    keys.add_command(commands)
    usage.add_command(commands)
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
    try:
        return handler(args)
    except KeyboardInterrupt:
        # The client commands report this themselves; this covers the local ones (training).
        print("reelforge: interrupted", file=sys.stderr)
        return common.EXIT_INTERRUPTED
