"""`reelforge models list|make-tiny`: a running server's models; tiny test checkpoints.

    $ reelforge models list --base-url http://gpu-box:8000
    ID                                ENGINE   TASK
    klingai/v2-master-text-to-video   wan      text-to-video

    $ reelforge models make-tiny wan2.1-t2v ./tiny-t2v
    built a tiny random-weight wan2.1-t2v checkpoint in ./tiny-t2v (0.5 MB); serve it with
      reelforge serve --model klingai/v2-master-text-to-video=wan:./tiny-t2v

`list` prints to stdout; `--base-url` and `--api-key` default to the environment. `make-tiny`
builds offline, in about a second, a checkpoint with the real architecture's layout and
random weights: its output is noise, but it loads and runs exactly as the real model does,
for tests and for a user's own CI.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reelforge.cli import common
from reelforge.client import ModelInfo
from reelforge.engines.tiny import TINY_ARCHS, build_tiny

__all__ = ["add_command", "format_table", "run_make_tiny", "run_models_list"]

_T2V_ID = "klingai/v2-master-text-to-video"
_I2V_ID = "klingai/v2-master-image-to-video"


def add_command(commands: Any) -> None:
    """Register `models` (with its `list` subcommand) on the top-level subcommand parser."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "models", help="inspect the models of a running server", description=__doc__
    )
    actions = parser.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="list the models a running server offers")
    common.add_connection_flags(listing)
    listing.set_defaults(handler=run_models_list)

    tiny = actions.add_parser(
        "make-tiny", help="build a tiny random-weight checkpoint of an architecture (offline)"
    )
    tiny.add_argument("arch", metavar="ARCH", choices=list(TINY_ARCHS), help=", ".join(TINY_ARCHS))
    tiny.add_argument("directory", metavar="DIR", type=Path, help="folder to write (created)")
    tiny.add_argument("--seed", type=int, default=0, help="same seed, same weights (0)")
    tiny.set_defaults(handler=run_make_tiny)


def run_models_list(args: argparse.Namespace) -> int:
    """Run `reelforge models list`; returns the exit code (see `reelforge.cli.common`)."""

    def command() -> int:
        with common.make_client(args.base_url, args.api_key) as client:
            print(format_table(client.models()))
        return common.EXIT_OK

    return common.report_errors(command)


def run_make_tiny(args: argparse.Namespace) -> int:
    """Run `reelforge models make-tiny`; returns the exit code."""
    directory: Path = args.directory
    if directory.exists() and any(directory.iterdir()):
        print(f"reelforge: {directory} is not empty; choose a new folder", file=sys.stderr)
        return common.EXIT_USAGE
    build_tiny(args.arch, directory, args.seed)
    arch = TINY_ARCHS[args.arch]
    size = sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())
    ids = [_T2V_ID] * arch.text_to_video + [_I2V_ID] * arch.image_to_video
    flags = " ".join(f"--model {model}={arch.engine}:{directory}" for model in ids)
    print(
        f"built a tiny random-weight {args.arch} checkpoint in {directory} ({size / 1e6:.1f} MB); "
        f"serve it with\n  reelforge serve {flags}"
    )
    return common.EXIT_OK


def format_table(models: Sequence[ModelInfo]) -> str:
    """Models as aligned columns ID, ENGINE, TASK (a dash where the server gave none)."""
    rows = [("ID", "ENGINE", "TASK")]
    rows += [(m.id, m.engine or "-", m.task or "-") for m in models]
    widths = [max(len(row[col]) for row in rows) for col in range(2)]
    return "\n".join(
        f"{row[0]:<{widths[0]}}   {row[1]:<{widths[1]}}   {row[2]}".rstrip() for row in rows
    )
