"""What the client-side commands share: connection flags, the client factory, exit codes.

Exit codes (stable, for scripts; `EXIT_CODES` below is what `reelforge --help` prints):

    0    success
    1    failure: the generation job failed (its error name and message go to stderr), or
         a command could not do its work
    2    usage error, or the API refused the call (its message goes to stderr)
    3    the server could not be reached (or a model download failed)
    4    `--timeout` passed while the job was still running (the job goes on)
    130  interrupted (Ctrl-C)

This module is imported to build the parser, so it imports the client (httpx, pydantic) only
inside the functions that run a command.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from reelforge.client import ReelforgeClient

__all__ = [
    "CLIENT_ENVIRONMENT",
    "EXIT_CODES",
    "EXIT_CONNECTION",
    "EXIT_GENERATION_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "CommandFailed",
    "UsageError",
    "add_connection_flags",
    "base_url",
    "make_client",
    "report_errors",
]

EXIT_OK = 0
EXIT_GENERATION_FAILED = 1
EXIT_USAGE = 2
EXIT_CONNECTION = 3
EXIT_TIMEOUT = 4
EXIT_INTERRUPTED = 130

EXIT_CODES: tuple[tuple[int, str], ...] = (
    (EXIT_OK, "success"),
    (
        EXIT_GENERATION_FAILED,
        "failure: the generation failed, or the command could not do its work",
    ),
    (EXIT_USAGE, "usage error: a bad flag or value, or the server refused the request"),
    (EXIT_CONNECTION, "the server could not be reached, or a model download failed"),
    (EXIT_TIMEOUT, "--timeout passed while the generation was still running (it goes on)"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C)"),
)

CLIENT_ENVIRONMENT: tuple[tuple[str, str], ...] = (
    ("REELFORGE_BASE_URL", "server to talk to when --base-url is not given "
     "[default: http://127.0.0.1:8000]"),
    ("REELFORGE_API_KEY", "bearer key when --api-key is not given [default: none; a server "
     "without REELFORGE_API_KEYS needs none from this machine]"),
)  # fmt: skip


class UsageError(Exception):
    """A command-line value that argparse could not check by itself (exit code 2)."""


class CommandFailed(Exception):
    """The command could not do its work, e.g. download a video not made yet (exit code 1)."""


def make_client(base_url: str | None, api_key: str | None) -> ReelforgeClient:
    """Build the client every command talks through.

    Commands call it as `common.make_client(...)`, looked up at call time, so tests can
    replace it with one that passes `transport=httpx.MockTransport(...)`.
    """
    from reelforge.client import ReelforgeClient

    return ReelforgeClient(base_url, api_key)


def add_connection_flags(parser: argparse.ArgumentParser) -> None:
    """`--base-url` and `--api-key`, defaulting to the environment like the client does."""
    parser.add_argument(
        "--base-url",
        type=base_url,
        # From the environment here, not in the client, so a bad value is a usage error too.
        default=os.environ.get("REELFORGE_BASE_URL") or None,
        metavar="URL",
        help="server to talk to, with its scheme: http://HOST:PORT "
        "(default: $REELFORGE_BASE_URL, else http://127.0.0.1:8000)",
    )
    parser.add_argument(
        "--api-key",
        metavar="KEY",
        help="bearer key (default: $REELFORGE_API_KEY; none for a loopback server)",
    )


def base_url(text: str) -> str:
    """argparse type of `--base-url`: an http(s) URL with a host, or a usage error that
    shows the URL it should have been."""
    parts = urlsplit(text)
    if parts.scheme in ("http", "https") and parts.netloc:
        return text
    given = f"REELFORGE_BASE_URL={text}" if text == os.environ.get("REELFORGE_BASE_URL") else text
    if "://" in text or parts.scheme in ("http", "https"):
        raise argparse.ArgumentTypeError(
            f"{given}: the server's URL must start with http:// or https:// and name a host"
        )
    raise argparse.ArgumentTypeError(
        f"{given} has no scheme; write http://{text} (or https://{text})"
    )


def report_errors(command: Callable[[], int]) -> int:
    """Run a client-side command, turning each kind of failure into its message and exit code."""
    from reelforge.client import (
        APIError,
        ConnectionFailed,
        GenerationFailed,
        UnexpectedResponse,
        WaitTimeout,
    )

    try:
        return command()
    except GenerationFailed as exc:
        error = exc.generation.error
        detail = str(error) if error else "the generation failed"
        return _fail(EXIT_GENERATION_FAILED, f"generation {exc.generation.id} failed: {detail}")
    except WaitTimeout as exc:
        generation_id = exc.generation.id
        return _fail(
            EXIT_TIMEOUT,
            f"{exc.message}; it goes on on the server: `reelforge wait {generation_id}` "
            f"picks it up later, `reelforge cancel {generation_id}` cancels it",
        )
    except APIError as exc:
        return _fail(EXIT_USAGE, f"the server refused the request: {exc}")
    except UnexpectedResponse as exc:
        return _fail(EXIT_USAGE, f"unexpected answer from the server: {exc.message}")
    except ConnectionFailed as exc:
        return _fail(EXIT_CONNECTION, f"cannot reach the server: {exc.message}")
    except UsageError as exc:
        return _fail(EXIT_USAGE, str(exc))
    except CommandFailed as exc:
        return _fail(EXIT_GENERATION_FAILED, str(exc))
    except KeyboardInterrupt:
        return _fail(EXIT_INTERRUPTED, "interrupted")


def _fail(code: int, message: str) -> int:
    print(f"reelforge: error: {message}", file=sys.stderr)
    return code
