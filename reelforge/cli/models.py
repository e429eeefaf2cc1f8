"""`reelforge models list`: the models a running server offers, as a table.

    $ reelforge models list --base-url http://gpu-box:8000
    ID                                ENGINE   TASK
    klingai/v2-master-text-to-video   wan      text-to-video

The table goes to stdout; `--base-url` and `--api-key` default to the environment.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from reelforge.cli import common
from reelforge.client import ModelInfo

__all__ = ["add_command", "format_table", "run_models_list"]


def add_command(commands: Any) -> None:
    """Register `models` (with its `list` subcommand) on the top-level subcommand parser."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "models", help="inspect the models of a running server", description=__doc__
    )
    actions = parser.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="list the models a running server offers")
    common.add_connection_flags(listing)
    listing.set_defaults(handler=run_models_list)


def run_models_list(args: argparse.Namespace) -> int:
    """Run `reelforge models list`; returns the exit code (see `reelforge.cli.common`)."""

    def command() -> int:
        with common.make_client(args.base_url, args.api_key) as client:
            print(format_table(client.models()))
        return common.EXIT_OK

    return common.report_errors(command)


def format_table(models: Sequence[ModelInfo]) -> str:
    """Models as aligned columns ID, ENGINE, TASK (a dash where the server gave none)."""
    rows = [("ID", "ENGINE", "TASK")]
    rows += [(m.id, m.engine or "-", m.task or "-") for m in models]
    widths = [max(len(row[col]) for row in rows) for col in range(2)]
    return "\n".join(
        f"{row[0]:<{widths[0]}}   {row[1]:<{widths[1]}}   {row[2]}".rstrip() for row in rows
    )
