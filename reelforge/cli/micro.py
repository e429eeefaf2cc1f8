"""`reelforge micro train|eval`: train the built-in micro model and measure it.

    $ reelforge micro train --out my-micro.safetensors      # about 40 min on 2 CPU cores
    $ reelforge micro eval --checkpoint my-micro.safetensors

`train` writes `micro.safetensors` in the current directory unless `--out` says otherwise,
and never over the shipped checkpoint in the package without `--overwrite-shipped` (for
maintainers updating it); `eval` scores the shipped checkpoint unless `--checkpoint` names
another. Torch is imported only when one of
these runs, never for the other commands.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from reelforge.cli import common, parsing

__all__ = ["add_command"]

# Where the shipped checkpoint lives, without importing torch to ask reelforge.micro.
_SHIPPED = Path(__file__).resolve().parent.parent / "micro" / "weights" / "micro.safetensors"
_DEFAULT_OUT = Path("micro.safetensors")


def add_command(commands: Any) -> None:
    """Register `micro` (with `train` and `eval`) on the top-level subcommand parser."""
    parser = parsing.add_command(
        commands,
        "micro",
        summary="train or evaluate the built-in micro model",
        description="""
            The micro model is the 3.3 M-parameter text-to-video model shipped in the package
            (the default engine when no other model is configured). `train` reproduces its
            checkpoint from scratch (seeded); `eval` generates the canonical prompts of its
            world and held-out paraphrases, and scores colour, shape and direction of motion.
            Both run on this machine's CPU cores; neither needs a server.
        """,
        examples=[
            "reelforge micro train --out my-micro.safetensors      # about 40 min on 2 CPU cores",
            "reelforge micro eval --checkpoint my-micro.safetensors",
        ],
    )
    actions = parser.add_subparsers(
        dest="micro_command", required=True, metavar="ACTION", title="actions"
    )

    training = parsing.add_command(
        actions,
        "train",
        summary="train the micro model from scratch (seeded)",
        description="""
            Train the micro model from scratch on clips drawn from its synthetic world and
            write a safetensors checkpoint (by default micro.safetensors in the current
            directory; the defaults reproduce the shipped one: the same seed gives the same
            weights). About 40 minutes for the default 4500 steps of 32 clips (40 % of them
            10 s clips, at half the batch) on two CPU cores.
        """,
        examples=[
            "reelforge micro train --out my-micro.safetensors",
            "reelforge micro train --out quick.safetensors --steps 200 --threads 2",
        ],
    )
    training.add_argument(
        "--out",
        type=Path,
        default=_DEFAULT_OUT,
        metavar="FILE",
        help=f"checkpoint file to write ({_DEFAULT_OUT}, in the current directory)",
    )
    training.add_argument(
        "--overwrite-shipped",
        action="store_true",
        help="allow --out to be the shipped checkpoint in the package (for maintainers)",
    )
    training.add_argument(
        "--steps", type=int, default=None, metavar="N", help="optimiser steps (4500)"
    )
    training.add_argument(
        "--batch-size", type=int, default=None, metavar="N", help="clips per step (32)"
    )
    training.add_argument(
        "--seed", type=int, default=0, help="seed of the data and the initial weights (0)"
    )
    training.add_argument(
        "--threads", type=int, default=0, metavar="N", help="torch threads; 0: all cores (0)"
    )
    training.set_defaults(handler=run_train)

    scoring = parsing.add_command(
        actions,
        "eval",
        summary="score colour, shape and motion of generated clips",
        description="""
            Generate every canonical prompt of the micro model's world, and one held-out
            paraphrase per scene, on seeds never used in training, and measure colour, shape
            and direction of motion by pixel analysis; then every canonical prompt as a 10 s
            clip, whose motion must go on through both halves and cross at least three
            quarters of the frame. One line per prompt set, then the time taken. About two
            minutes on two CPU cores.
        """,
        examples=[
            "reelforge micro eval",
            "reelforge micro eval --checkpoint my-micro.safetensors --seeds-per-scene 3",
        ],
    )
    scoring.add_argument(
        "--checkpoint",
        type=Path,
        default=_SHIPPED,
        metavar="FILE",
        help="checkpoint to score (default: the shipped one)",
    )
    scoring.add_argument(
        "--seeds-per-scene",
        type=int,
        default=1,
        metavar="N",
        help="clips per scene, each on its own seed (1)",
    )
    scoring.add_argument(
        "--steps", type=int, default=None, metavar="N", help="denoising steps (20)"
    )
    scoring.add_argument(
        "--guidance", type=float, default=None, help="classifier-free guidance (the engine's)"
    )
    scoring.add_argument("--no-paraphrases", action="store_true", help="no held-out paraphrases")
    scoring.add_argument("--no-long-clips", action="store_true", help="no 10 s clips")
    scoring.add_argument(
        "--raw-prompts",
        action="store_true",
        help="condition the model on the prompts as written, without canonicalising them",
    )
    scoring.set_defaults(handler=run_eval)


def run_train(args: argparse.Namespace) -> int:
    from dataclasses import replace

    if _is_shipped(args.out) and not args.overwrite_shipped:
        print(
            f"reelforge: error: --out {args.out} is the shipped checkpoint, which every "
            "`micro` engine without a checkpoint of its own serves; write elsewhere, or add "
            "--overwrite-shipped to replace it",
            file=sys.stderr,
        )
        return common.EXIT_USAGE

    from reelforge.micro.train import TrainConfig, train

    config = replace(TrainConfig(), seed=args.seed, threads=args.threads)
    if args.steps is not None:
        config = replace(config, steps=args.steps, save_every=min(config.save_every, args.steps))
    if args.batch_size is not None:
        config = replace(config, batch_size=args.batch_size)
    path = train(args.out, config)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return common.EXIT_OK


def _is_shipped(path: Path) -> bool:
    """Whether `path` names the shipped checkpoint's file (through any link or `..`)."""
    return path.resolve() == _SHIPPED


def run_eval(args: argparse.Namespace) -> int:
    from reelforge.micro.evaluate import evaluate
    from reelforge.micro.generator import DEFAULT_GUIDANCE, MicroGenerator

    generator = MicroGenerator.from_checkpoint(args.checkpoint)
    steps = args.steps or generator.default_steps
    guidance = DEFAULT_GUIDANCE if args.guidance is None else args.guidance
    started = time.monotonic()
    reports = evaluate(
        lambda prompts, seeds, seconds: generator.generate(
            prompts,
            seeds,
            steps=steps,
            guidance=guidance,
            canonicalise=not args.raw_prompts,
            frames=generator.frames_for(seconds),
        ),
        seeds_per_scene=args.seeds_per_scene,
        paraphrase=not args.no_paraphrases,
        long_clips=not args.no_long_clips,
    )
    for report in reports:
        print(report.line())
    print(
        f"{time.monotonic() - started:.1f} s, {steps} steps, guidance {guidance:g}, "
        f"{'raw' if args.raw_prompts else 'canonicalised'} prompts, checkpoint {args.checkpoint}"
    )
    return common.EXIT_OK
