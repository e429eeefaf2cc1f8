"""`reelforge models list|pull|rm|served|make-tiny`: the models on this machine, downloads,
a running server's models, and tiny test checkpoints.

    $ reelforge models list
    MODEL             ENGINE  TASKS  NATIVE           PRESENT   SIZE  DOWNLOAD  SERVES
    wan2.1-t2v-1.3b   wan     t2v    832x480@16 81f   no        -     ~29 GB    -
    ...
    (micro)           micro   t2v    -                built in  -     -         reelforge/micro

    $ reelforge models pull wan2.2-ti2v-5b     # the only command that downloads weights
    pulling Wan-AI/Wan2.2-TI2V-5B-Diffusers at <commit>: <N> files, <size>
    downloading  41% |#########     | <done>B/<size>B, 9/<N> files | <speed>B/s | ETA 05:05
    verifying ...

    $ reelforge models rm wan2.2-ti2v-5b
    removed wan2.2-ti2v-5b from ~/.cache/reelforge/models/Wan2.2-TI2V-5B-Diffusers (<size>)

    $ reelforge models served --base-url http://gpu-box:8000
    ID                                ENGINE   TASK
    klingai/v2-master-text-to-video   wan      text-to-video

    $ reelforge models make-tiny wan2.1-t2v ./tiny-t2v
    built a tiny random-weight wan2.1-t2v checkpoint in ./tiny-t2v (0.5 MB); serve it with
      reelforge serve --models-file tiny-t2v.models.toml

`list` shows every catalog model (present here or not, its size on disk, and its download
size: the hub's figure when the hub answers within 3 s, else the catalog's estimate marked
`~`) and every model the registry configures (`--models-file`, `REELFORGE_MODELS_FILE`, or
the embedded defaults); `pull` downloads a catalog model resumably, four files at a time, and
verifies it (`REELFORGE_MODELS_DIR`, default ~/.cache/reelforge/models): Ctrl-C keeps what
arrived for the next run, and with the hub unreachable a model already here counts as
pulled; `rm` deletes what `pull` wrote, never the Hugging Face cache; `served` asks a running
server (`--base-url` and `--api-key` default to the environment). `make-tiny`
builds offline, in about a second, a checkpoint with the real architecture's layout and
random weights: its output is noise, but it loads and runs exactly as the real model does,
for tests and for a user's own CI.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reelforge.cli import common, parsing

if TYPE_CHECKING:
    from reelforge.client import ModelInfo
    from reelforge.weights.catalog import CatalogModel

# The engines package imports numpy and PIL: each command imports from it when it runs, so
# building the parser (and `reelforge --help`) stays light.

__all__ = [
    "add_command",
    "format_table",
    "run_make_tiny",
    "run_models_list",
    "run_models_pull",
    "run_models_rm",
    "run_models_served",
]


_MODELS_ENVIRONMENT = (
    ("REELFORGE_MODELS_DIR", "where `pull` downloads and `list` looks for catalog models "
     "[default: ~/.cache/reelforge/models]"),
    ("HF_HOME, HF_HUB_CACHE", "the Hugging Face cache, where catalog models are also found "
     "[default: ~/.cache/huggingface]"),
)  # fmt: skip

_HUB_ENVIRONMENT = (
    ("HF_TOKEN", "Hugging Face token, for gated or private repositories [default: none]"),
    ("HF_ENDPOINT", "the hub to download from [default: https://huggingface.co]"),
)


def add_command(commands: Any) -> None:
    """Register `models` and its actions on the top-level subcommand parser."""
    parser = parsing.add_command(
        commands,
        "models",
        summary="models on this machine, downloads, a running server's models",
        description="""
            The video models: which are on this machine and which public ids they serve
            (list), downloading one (pull, the only command that downloads weights), what a
            running server offers (served), and tiny random-weight checkpoints for tests
            (make-tiny). `reelforge models ACTION --help` tells more about each.
        """,
        examples=[
            "reelforge models list",
            "reelforge models pull wan2.2-ti2v-5b",
            "reelforge models served --base-url http://gpu-box:8000",
            "reelforge models make-tiny wan2.1-t2v ./tiny-t2v",
        ],
        environment=[*_MODELS_ENVIRONMENT, *common.CLIENT_ENVIRONMENT],
    )
    actions = parser.add_subparsers(
        dest="models_command", required=True, metavar="ACTION", title="actions"
    )
    listing = parsing.add_command(
        actions,
        "list",
        summary="catalog and configured models: present here, size on disk, ids served",
        description="""
            Every catalog model, whether it is on this machine (pulled, or in the Hugging
            Face cache) and its size on disk, and every model the registry configures, with
            the public ids each serves: the registry exactly as `reelforge serve` would load
            it (--models-file, else REELFORGE_MODELS_FILE, else the embedded defaults, plus
            REELFORGE_MODELS).
        """,
        examples=["reelforge models list", "reelforge models list --models-file models.toml"],
        environment=[
            ("REELFORGE_MODELS_FILE", "registry file when --models-file is not given "
             "[default: the embedded defaults]"),
            ("REELFORGE_MODELS", "extra registry entries ID=ENGINE[:CHECKPOINT], comma-separated"),
            *_MODELS_ENVIRONMENT,
        ],
    )  # fmt: skip
    listing.add_argument(
        "--models-file",
        type=Path,
        default=None,
        metavar="TOML",
        help="registry file (default: $REELFORGE_MODELS_FILE, else the embedded defaults)",
    )
    listing.set_defaults(handler=run_models_list)

    pulling = parsing.add_command(
        actions,
        "pull",
        summary="download a catalog model (resumable, verified)",
        description="""
            Download a catalog model from the Hugging Face hub into REELFORGE_MODELS_DIR,
            with a progress bar, resuming an interrupted download and checking every file
            against the hub's sizes and SHA-256 sums before the model counts as present.
            The only reelforge command that downloads weights.
        """,
        examples=[
            "reelforge models pull wan2.2-ti2v-5b",
            "reelforge models pull wan2.1-t2v-1.3b --revision main",
        ],
        environment=[_MODELS_ENVIRONMENT[0], *_HUB_ENVIRONMENT],
        notes="exit codes: 0 pulled and verified; 3 the download or its check failed.",
    )
    pulling.add_argument(
        "name",
        metavar="MODEL",
        choices=parsing.LazyChoices(_catalog_names),
        help="catalog name: %(choices)s",
    )
    pulling.add_argument(
        "--revision", default="main", help="branch, tag or commit of the repository (main)"
    )
    pulling.set_defaults(handler=run_models_pull)

    removing = parsing.add_command(
        actions,
        "rm",
        summary="delete a pulled catalog model (never the Hugging Face cache)",
        description="""
            Delete the files `reelforge models pull` wrote for a catalog model, and nothing
            else: files it did not write stay, and a snapshot in the Hugging Face cache is
            left to `hf cache rm`.
        """,
        examples=["reelforge models rm wan2.1-t2v-1.3b"],
        environment=[_MODELS_ENVIRONMENT[0]],
    )
    # Not `choices`: an unknown name gets the message of run_models_rm, listing the catalog.
    removing.add_argument("name", metavar="MODEL", help="a catalog name (see models list)")
    removing.set_defaults(handler=run_models_rm)

    served = parsing.add_command(
        actions,
        "served",
        summary="list the models a running server offers",
        description="""
            Ask a running server which model ids it serves and with which engine
            (GET /v1/models), as columns ID, ENGINE, TASK.
        """,
        examples=[
            "reelforge models served",
            "reelforge models served --base-url http://gpu-box:8000 --api-key KEY",
        ],
        environment=common.CLIENT_ENVIRONMENT,
    )
    common.add_connection_flags(served)
    served.set_defaults(handler=run_models_served)

    tiny = parsing.add_command(
        actions,
        "make-tiny",
        summary="build a tiny random-weight checkpoint of an architecture (offline)",
        description="""
            Build, offline and in about a second, a checkpoint with a real architecture's
            layout and random weights. Its output is noise, but it loads and runs exactly as
            the real model does: for tests, and for trying the plumbing in your own CI.
        """,
        examples=[
            "reelforge models make-tiny wan2.2-ti2v ./tiny-ti2v",
            "reelforge serve --models-file ./tiny-ti2v.models.toml",
        ],
    )
    tiny.add_argument(
        "arch",
        metavar="ARCH",
        choices=parsing.LazyChoices(_tiny_arch_names),
        help="architecture: %(choices)s",
    )
    tiny.add_argument(
        "directory", metavar="DIR", type=Path, help="folder to write (created; must be empty)"
    )
    tiny.add_argument(
        "--seed", type=int, default=0, help="random seed: the same seed, the same weights (0)"
    )
    tiny.set_defaults(handler=run_make_tiny)


def _catalog_names() -> list[str]:
    from reelforge.weights.catalog import CATALOG

    return list(CATALOG)


def _tiny_arch_names() -> list[str]:
    from reelforge.testing.tiny import TINY_ARCHS

    return list(TINY_ARCHS)


def run_models_list(args: argparse.Namespace) -> int:
    """Run `reelforge models list`: the catalog and the registry, as seen on this machine."""
    from reelforge.engines.registry import Registry, RegistryError
    from reelforge.settings import Settings
    from reelforge.weights.catalog import CATALOG, local_checkpoint
    from reelforge.weights.pull import hub_download_bytes

    settings = Settings()
    try:
        # The registry exactly as `serve` would load it, the file from --models-file first.
        registry = Registry.load(
            args.models_file or settings.models_file,
            settings.models,
            models_dir=settings.models_dir,
        )
    except (RegistryError, OSError) as exc:
        print(f"reelforge: {exc}", file=sys.stderr)
        return common.EXIT_USAGE
    serving: dict[str, list[str]] = {}
    for entry in registry:
        if entry.catalog:
            serving.setdefault(entry.catalog, []).append(entry.id)
    hub_bytes = hub_download_bytes(model.repo for model in CATALOG.values())
    rows = [("MODEL", "ENGINE", "TASKS", "NATIVE", "PRESENT", "SIZE", "DOWNLOAD", "SERVES")]
    for model in CATALOG.values():
        folder = local_checkpoint(model, settings.models_dir)
        rows.append(
            (
                model.name,
                model.engine,
                model.tasks,
                f"{model.width}x{model.height}@{model.fps:g} {model.max_frames}f",
                "yes" if folder else "no",
                _size(folder) if folder else "-",
                _download_size(model, hub_bytes.get(model.repo)),
                ", ".join(serving.get(model.name, [])) or "-",
            )
        )
    others = [entry for entry in registry if not entry.catalog]
    for entry in others:
        folder = Path(entry.checkpoint) if entry.checkpoint else None
        present = "built in" if folder is None else ("yes" if folder.is_dir() else "no")
        rows.append(
            (
                entry.checkpoint or f"({entry.engine})",
                entry.engine,
                "i2v" if entry.needs_image else "t2v",
                "-",
                present,
                _size(folder) if folder is not None and folder.is_dir() else "-",
                "-",
                entry.id,
            )
        )
    print(_columns(rows))
    return common.EXIT_OK


def run_models_pull(args: argparse.Namespace) -> int:
    """Run `reelforge models pull MODEL`."""
    from reelforge.settings import Settings
    from reelforge.weights.catalog import CATALOG, local_checkpoint
    from reelforge.weights.pull import HubUnreachable, PullError, pull

    model = CATALOG[args.name]
    models_dir = Settings().models_dir
    try:
        folder = pull(model, models_dir, revision=args.revision)
    except HubUnreachable as exc:
        present = local_checkpoint(model, models_dir) if args.revision == "main" else None
        if present is not None:  # pulled before, or an `hf download` snapshot: serve it as is
            print(f"reelforge: {exc}; {model.name} is present in {present}", file=sys.stderr)
            return common.EXIT_OK
        print(
            f"reelforge: {exc}; to pull through a mirror set HF_ENDPOINT, and a snapshot "
            f"from `hf download {model.repo}` in the Hugging Face cache counts as present",
            file=sys.stderr,
        )
        return common.EXIT_CONNECTION
    except PullError as exc:
        print(f"reelforge: {exc}", file=sys.stderr)
        return common.EXIT_CONNECTION  # the download or its check failed
    except KeyboardInterrupt:
        # What arrived stays in the `.part` files, and the next pull starts from there.
        print("reelforge: interrupted; run the same command to resume", file=sys.stderr)
        return common.EXIT_INTERRUPTED
    print(
        f"pulled {model.repo} into {folder} ({_size(folder)}, verified); serve it with\n"
        f"  reelforge serve --model klingai/v2-master-text-to-video={model.name}"
    )
    return common.EXIT_OK


def run_models_rm(args: argparse.Namespace) -> int:
    """Run `reelforge models rm MODEL`: delete what `models pull` wrote for it."""
    from reelforge.settings import Settings
    from reelforge.weights.catalog import CATALOG, local_checkpoint, pull_folder
    from reelforge.weights.pull import remove_pulled

    model = CATALOG.get(args.name)
    if model is None:
        print(
            f"reelforge: unknown model {args.name!r}; the catalog has {', '.join(CATALOG)}",
            file=sys.stderr,
        )
        return common.EXIT_USAGE
    models_dir = Settings().models_dir
    removal = remove_pulled(model, models_dir)
    # After the removal: what is left is not reelforge's.
    cached = local_checkpoint(model, models_dir)
    if removal is None:
        folder = pull_folder(model, models_dir)
        if cached is not None:
            problem = (
                f"{model.name} was not pulled into {folder.parent}; its snapshot in the Hugging "
                f"Face cache ({cached}) is not reelforge's to remove: "
                f"`hf cache rm model/{model.repo}` does that"
            )
        elif folder.exists():
            problem = (
                f"{folder} has no pull marker: not made by `reelforge models pull`, left alone"
            )
        else:
            problem = f"{model.name} is not pulled (nothing at {folder})"
        print(f"reelforge: {problem}", file=sys.stderr)
        return common.EXIT_USAGE
    print(f"removed {model.name} from {removal.folder} ({_bytes(removal.freed_bytes)})")
    if removal.kept:
        print(f"kept {len(removal.kept)} files no pull wrote: {', '.join(removal.kept)}")
    if cached is not None:
        print(f"{model.name} is still present in the Hugging Face cache: {cached}")
    return common.EXIT_OK


def run_models_served(args: argparse.Namespace) -> int:
    """Run `reelforge models served`; returns the exit code (see `reelforge.cli.common`)."""

    def command() -> int:
        with common.make_client(args.base_url, args.api_key) as client:
            print(format_table(client.models()))
        return common.EXIT_OK

    return common.report_errors(command)


def run_make_tiny(args: argparse.Namespace) -> int:
    """Run `reelforge models make-tiny`; returns the exit code."""
    from reelforge.api.aimlapi.vocabulary import IMAGE_TO_VIDEO_MODEL, TEXT_TO_VIDEO_MODEL
    from reelforge.testing.tiny import TINY_ARCHS, build_tiny, tiny_registry_entry

    directory: Path = args.directory
    if directory.exists() and any(directory.iterdir()):
        print(f"reelforge: {directory} is not empty; choose a new folder", file=sys.stderr)
        return common.EXIT_USAGE
    build_tiny(args.arch, directory, args.seed)
    arch = TINY_ARCHS[args.arch]
    size = sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())
    ids = [TEXT_TO_VIDEO_MODEL] * arch.text_to_video + [IMAGE_TO_VIDEO_MODEL] * arch.image_to_video
    # Its small native size goes in the registry entry's options (the engine's defaults are
    # the real model's): a registry file beside the checkpoint serves it.
    models_file = directory.parent / f"{directory.name}.models.toml"
    models_file.write_text(
        "".join(tiny_registry_entry(model, args.arch, directory.resolve()) for model in ids)
    )
    print(
        f"built a tiny random-weight {args.arch} checkpoint in {directory} ({size / 1e6:.1f} MB); "
        f"serve it with\n  reelforge serve --models-file {models_file}"
    )
    return common.EXIT_OK


def _size(folder: Path) -> str:
    from reelforge.weights.catalog import size_on_disk

    return _bytes(size_on_disk(folder))


def _download_size(model: CatalogModel, hub_bytes: int | None) -> str:
    """The hub's exact figure when it answered, else the catalog's estimate, marked `~`."""
    if hub_bytes is not None:
        return _bytes(hub_bytes)
    return f"~{model.download_gb:g} GB" if model.download_gb is not None else "?"


def _bytes(count: int) -> str:
    return f"{count / 1e9:.1f} GB" if count >= 1e9 else f"{count / 1e6:.1f} MB"


def _columns(rows: Sequence[Sequence[str]]) -> str:
    """Rows as left-aligned columns, three spaces apart."""
    widths = [max(len(row[col]) for row in rows) for col in range(len(rows[0]))]
    return "\n".join(
        "   ".join(f"{cell:<{width}}" for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def format_table(models: Sequence[ModelInfo]) -> str:
    """Models as aligned columns ID, ENGINE, TASK (a dash where the server gave none)."""
    rows = [("ID", "ENGINE", "TASK")]
    rows += [(m.id, m.engine or "-", m.task or "-") for m in models]
    widths = [max(len(row[col]) for row in rows) for col in range(2)]
    return "\n".join(
        f"{row[0]:<{widths[0]}}   {row[1]:<{widths[1]}}   {row[2]}".rstrip() for row in rows
    )
