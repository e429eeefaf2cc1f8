"""`reelforge serve` and `reelforge worker`: settings from the environment, then from flags.

    reelforge serve --port 9000 --model klingai/v2-master-text-to-video=testsrc
    reelforge worker --database-url postgresql+psycopg://reelforge@db/reelforge

Every flag overrides one `REELFORGE_*` variable of `reelforge.settings.Settings`; `--model`
adds to `REELFORGE_MODELS` rather than replacing it. The server and worker modules, and
`Settings` itself (pydantic), are imported only when their command runs, or its help is
printed, so the client commands and `reelforge --help` never load them.

Both exit 1 with one `reelforge: error: ...` line, and no traceback, when the job database
cannot be reached or opened at start-up (`reelforge.jobs.DatabaseStartupError`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reelforge.cli import common, parsing

if TYPE_CHECKING:
    from reelforge.settings import Settings

__all__ = ["add_commands", "run_serve", "run_worker", "settings_from_args"]

EXIT_CANNOT_START = 1

# Flags whose dest is a Settings field of the same name; applied only when given.
_SETTING_FLAGS = (
    "host",
    "port",
    "data_dir",
    "database_url",
    "storage_url",
    "models_file",
    "workers",
    "api_processes",
    "public_base_url",
    "device",
)


_SERVE_DESCRIPTION = """
    Run the API server on --host:--port, with --workers worker processes beside it that
    claim jobs from the database and render them (--workers auto: one per visible GPU).
    Runs until Ctrl-C (or SIGTERM), then drains its workers: each finishes its running job
    within REELFORGE_DRAIN_SECONDS or hands it back to the queue. At start-up it logs where
    its data lives (data dir, database, storage), the devices and the URL it listens on.

    Every setting is a REELFORGE_* variable (listed below, generated from
    reelforge.settings.Settings); a flag overrides its variable, and --model adds to
    REELFORGE_MODELS rather than replacing it. Without REELFORGE_API_KEYS only clients on
    this machine (loopback) are served.
"""

_WORKER_DESCRIPTION = """
    Run one worker process that claims jobs from the shared job database, renders them and
    writes the artifacts to the shared storage: the way to scale out, one per GPU host,
    next to API-only servers (REELFORGE_WORKERS=0 reelforge serve). It reads the same
    REELFORGE_* settings as serve (the API's own, such as the host and the keys, go
    unused); a flag overrides its variable. --device cuda:N pins it to one GPU.

    Runs until Ctrl-C or SIGTERM, which drain it: it stops claiming at once, gives its
    running job REELFORGE_DRAIN_SECONDS to finish, then hands the job back to the queue
    (no attempt spent) and exits 0. A second signal hands the job back at once.
"""

# Read by the process beside Settings: huggingface_hub's own variables for finding catalog
# models in the Hugging Face cache.
_PROCESS_ENVIRONMENT = (
    ("HF_HOME, HF_HUB_CACHE", "Where catalog models are also looked for (the Hugging Face "
     "cache; `hf download REPO` puts them there) [default: ~/.cache/huggingface]"),
)  # fmt: skip


def _environment() -> list[tuple[str, str]]:
    from reelforge.settings import Settings

    return [*parsing.settings_environment(Settings), *_PROCESS_ENVIRONMENT]


def _fill_setting_help(parser: parsing.CommandParser) -> None:
    """Each settings flag's help: its `Settings` field's description, variable and default."""
    from reelforge.settings import Settings

    for action in parser._actions:
        if action.dest in _SETTING_FLAGS:
            action.help = parsing.setting_help(Settings, action.dest)


def add_commands(commands: Any) -> None:
    """Register `serve` and `worker` on the top-level subcommand parser."""
    serve = parsing.add_command(
        commands,
        "serve",
        summary="run the API server and its worker processes",
        description=_SERVE_DESCRIPTION,
        examples=[
            "reelforge serve                                   # http://127.0.0.1:8000",
            "REELFORGE_API_KEYS=key1,key2 reelforge serve --host 0.0.0.0",
            "reelforge serve --port 9000 --model klingai/v2-master-text-to-video=wan2.1-t2v-1.3b",
            "reelforge serve --models-file ./tiny-ti2v.models.toml   # see models make-tiny",
            "REELFORGE_WORKERS=0 reelforge serve --database-url "
            "postgresql+psycopg://reelforge@db/reelforge",
        ],
        environment=_environment,
    )
    # Each settings flag's help comes from its Settings field, filled in by _fill_setting_help.
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=_worker_count, metavar="N|auto")
    serve.add_argument("--api-processes", type=_positive_int, metavar="N")
    serve.add_argument("--public-base-url", metavar="URL")
    _add_shared_flags(serve)
    serve.set_defaults(handler=run_serve)

    worker = parsing.add_command(
        commands,
        "worker",
        summary="run one standalone worker (scale-out: one per GPU)",
        description=_WORKER_DESCRIPTION,
        examples=[
            "reelforge worker --database-url postgresql+psycopg://reelforge@db/reelforge \\",
            "    --storage-url file:///shared/reelforge-artifacts --device cuda:0",
            "kill -TERM PID     # drain: finish the running job (REELFORGE_DRAIN_SECONDS), exit 0",
        ],
        environment=_environment,
    )
    _add_shared_flags(worker)
    worker.set_defaults(handler=run_worker)


def _add_shared_flags(parser: parsing.CommandParser) -> None:
    parser.add_argument("--data-dir", type=Path, metavar="DIR")
    parser.add_argument("--database-url", metavar="URL")
    parser.add_argument("--storage-url", metavar="URL")
    parser.add_argument("--models-file", type=Path, metavar="TOML")
    parser.add_argument(
        "--model",
        dest="extra_models",
        action="append",
        type=_model_entry,
        default=[],
        metavar="ID=ENGINE[:CHECKPOINT]",
        help="serve a model id with an engine, a catalog name or a checkpoint folder "
        "(repeatable; adds to $REELFORGE_MODELS), e.g. "
        "klingai/v2-master-text-to-video=wan2.1-t2v-1.3b",
    )
    parser.add_argument("--device")
    parser.defer_help(_fill_setting_help)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """`Settings` from the environment, overridden by the flags that were given."""
    from reelforge.settings import Settings

    settings = Settings()
    update: dict[str, Any] = {
        name: getattr(args, name)
        for name in _SETTING_FLAGS
        if getattr(args, name, None) is not None
    }
    if args.extra_models:
        update["models"] = [*settings.models, *args.extra_models]
    return settings.model_copy(update=update)


def run_serve(args: argparse.Namespace) -> int:
    """Run `reelforge serve` until interrupted; returns the server's exit code."""
    settings = _settings_or_none(args)
    if settings is None:
        return common.EXIT_USAGE
    from reelforge.errors import ConfigurationError
    from reelforge.jobs import DatabaseStartupError
    from reelforge.server import serve

    try:
        return serve(settings)
    except (DatabaseStartupError, ConfigurationError) as exc:
        return _cannot_start(exc)


def run_worker(args: argparse.Namespace) -> int:
    """Run `reelforge worker` until interrupted; returns the worker's exit code."""
    settings = _settings_or_none(args)
    if settings is None:
        return common.EXIT_USAGE
    from reelforge.errors import ConfigurationError
    from reelforge.jobs import DatabaseStartupError
    from reelforge.worker.main import run_worker as run_worker_process

    try:
        return run_worker_process(settings)
    except (DatabaseStartupError, ConfigurationError) as exc:
        return _cannot_start(exc)


def _cannot_start(exc: Exception) -> int:
    # A database that is down or a damaged file is for an operator to fix: one line that says
    # what and how, not a traceback; restarting in a loop would not help either.
    print(f"reelforge: error: {exc}", file=sys.stderr)
    return EXIT_CANNOT_START


def _settings_or_none(args: argparse.Namespace) -> Settings | None:
    from pydantic import ValidationError

    try:
        return settings_from_args(args)
    except ValidationError as exc:
        # A bad REELFORGE_* variable: name it instead of dumping a traceback.
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            print(f"reelforge: error: REELFORGE_{field.upper()}: {error['msg']}", file=sys.stderr)
        return None


def _model_entry(text: str) -> str:
    model_id, sep, engine = text.partition("=")
    if not sep or not model_id.strip() or not engine.partition(":")[0].strip():
        raise argparse.ArgumentTypeError(
            f"expected ID=ENGINE[:CHECKPOINT], e.g. klingai/v2-master-text-to-video=testsrc; "
            f"got {text!r}"
        )
    return text


def _worker_count(text: str) -> int | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return _non_negative_int(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (or auto: one per GPU)") from None


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value
