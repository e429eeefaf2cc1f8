"""`reelforge usage`: what your key used on a running server, per day and model."""

from __future__ import annotations

import argparse
import json
from typing import Any

from reelforge.cli import common, parsing

__all__ = ["add_command"]


def add_command(commands: Any) -> None:
    parser = parsing.add_command(
        commands,
        "usage",
        summary="what your API key used, per day and model",
        description="""
            What your API key used on a running server over the last days (UTC): jobs by
            status, seconds of video (failed and canceled jobs excluded) and seconds of
            engine time, per day and model, then the totals. An admin key may ask for another
            tenant's, or every tenant's (--tenant all).
        """,
        examples=[
            "reelforge usage",
            "reelforge usage --days 7 --json",
            "reelforge usage --tenant all --api-key $ADMIN_KEY",
        ],
        environment=common.CLIENT_ENVIRONMENT,
    )
    parser.add_argument(
        "--days", type=int, default=30, metavar="N", help="the last N days, today included"
    )
    parser.add_argument(
        "--tenant", metavar="TENANT", help="another tenant's, or all (admin keys only)"
    )
    parser.add_argument("--json", action="store_true", help="print the usage object as JSON")
    common.add_connection_flags(parser)
    parser.set_defaults(handler=run_usage)


def run_usage(args: argparse.Namespace) -> int:
    def command() -> int:
        with common.make_client(args.base_url, args.api_key) as client:
            answer = client.usage(days=args.days, tenant=args.tenant)
        if args.json:
            print(json.dumps(answer))
        else:
            print(format_usage(answer))
        return common.EXIT_OK

    return common.report_errors(command)


def format_usage(answer: dict[str, Any]) -> str:
    rows = answer["data"]
    header = (
        f"{'DATE':10}  {'TENANT':18}  {'MODEL':34}  {'JOBS':>5}  {'VIDEO S':>9}  {'ENGINE S':>9}"
    )
    lines = [header]
    for row in rows:
        lines.append(
            f"{row['date']:10}  {row['tenant'][:18]:18}  {row['model'][:34]:34}  "
            f"{sum(row['jobs'].values()):>5}  {row['video_seconds']:>9.1f}  "
            f"{row['engine_seconds']:>9.1f}"
        )
    totals = answer["totals"]
    by_status = ", ".join(f"{n} {status}" for status, n in sorted(totals["jobs"].items()))
    lines.append(
        f"total over {answer['days']} day(s): {by_status or 'no jobs'}; "
        f"{totals['video_seconds']:.1f} s of video, {totals['engine_seconds']:.1f} s of engine"
    )
    return "\n".join(lines) if rows else lines[-1]
