"""Benchmark: reelforge's `wan` engine against plain diffusers, same model, same settings.

Builds Wan2.2-TI2V-5B with random weights (speed does not depend on weight values, so no
download is needed) into a temporary folder, then, in one run, times

- plain diffusers: `WanPipeline.from_pretrained(folder)` called as the diffusers docs show;
- reelforge: `WanEngine(folder).generate(spec)`, the path a worker takes;

with the same prompt, size, frames, steps, guidance and seed, and prints seconds per
denoising step, VAE decode seconds, end-to-end seconds, peak device memory (CUDA only) and
the ratio plain / reelforge (above 1: reelforge is faster). It also checks that both return
the same frames, as they must while no speed option changes the numerics: on the CPU exactly;
with CUDA to within 2 levels of 255, since batched guidance (on there) rounds differently.

    python benchmarks/engine_speed.py --tiny                  # CPU, tiny configs, seconds
    python benchmarks/engine_speed.py --device cuda           # full size: 1280x704, 121 frames
    python benchmarks/engine_speed.py --device cuda --each-option   # + each speed option alone

Every side runs once untimed first (loading, allocator and kernel warm-up), then the timed
repeats go round in an order that rotates each time, so drift in the machine's speed weighs
on every side alike. Both timers end after the frames are uint8 arrays. Beside reelforge's
defaults, a row with `batch_guidance` off runs the same two guidance passes as diffusers, so
that on a GPU the two compare like with like; `--each-option` adds a row per speed option
alone (first-block cache, regional compile, fp8 storage, batched guidance) and one with all.

Full size follows the published Wan2.2-TI2V-5B configs (transformer: 30 layers of width 3072,
24 heads, FFN 14336; the Wan2.2 VAE: base width 160, decoder 256, 16x spatial compression),
except the text encoder: UMT5-XXL's width (4096, what the transformer's cross-attention sees)
with 1 of its 24 layers and a byte-level vocabulary, since it runs once per request and its
weights would double the folder. Tiny mode uses `reelforge models make-tiny wan2.2-ti2v`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reelforge.engines.diffusers.wan import WanEngine
from reelforge.spec import GenerationSpec
from reelforge.testing.tiny import build_tiny

PROMPT = "a red kite over a green hill"
SEED = 42


@dataclass
class Timing:
    """One generation: seconds per phase, and the frames it produced."""

    total_s: float
    step_s: list[float]
    decode_s: float
    peak_gb: float | None
    frames: np.ndarray


class StepClock:
    """Timestamps of every denoising step, for per-step and decode (after the last step) time."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.marks: list[float] = []

    def now(self) -> float:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter()

    def step(self, *_: Any) -> None:
        self.marks.append(self.now())


def build_full_ti2v(directory: Path, device: str) -> Path:
    """Wan2.2-TI2V-5B at full size with random weights, saved in the diffusers layout."""
    from diffusers import (
        AutoencoderKLWan,
        UniPCMultistepScheduler,
        WanPipeline,
        WanTransformer3DModel,
    )
    from transformers import ByT5Tokenizer, UMT5Config, UMT5EncoderModel

    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    with torch.device(device):
        transformer = WanTransformer3DModel(
            patch_size=(1, 2, 2),
            num_attention_heads=24,
            attention_head_dim=128,
            in_channels=48,
            out_channels=48,
            text_dim=4096,
            freq_dim=256,
            ffn_dim=14336,
            num_layers=30,
            cross_attn_norm=True,
            qk_norm="rms_norm_across_heads",
            eps=1e-6,
            rope_max_seq_len=1024,
        ).to(dtype)
        vae = AutoencoderKLWan(
            base_dim=160,
            decoder_base_dim=256,
            z_dim=48,
            dim_mult=[1, 2, 4, 4],
            num_res_blocks=2,
            temperal_downsample=[False, True, True],
            is_residual=True,
            in_channels=12,
            out_channels=12,
            patch_size=2,
            scale_factor_spatial=16,
            scale_factor_temporal=4,
            latents_mean=[0.0] * 48,
            latents_std=[1.0] * 48,
        )
        tokenizer = ByT5Tokenizer()
        text_encoder = UMT5EncoderModel(
            UMT5Config(
                vocab_size=len(tokenizer),
                d_model=4096,
                d_kv=64,
                d_ff=10240,
                num_layers=1,
                num_heads=64,
                relative_attention_num_buckets=32,
            )
        ).to(dtype)
    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0
    )
    pipeline = WanPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        transformer=transformer,
        scheduler=scheduler,
        expand_timesteps=True,
    )
    pipeline.save_pretrained(directory)
    return directory


def plain_runner(folder: Path, device: str, settings: dict[str, Any]) -> Callable[[], Timing]:
    """Plain diffusers, as its documentation shows: loads, returns one timed generation."""
    from diffusers import WanPipeline

    dtype: Any = torch.float32
    if device.startswith("cuda"):
        dtype = {"default": torch.bfloat16, "vae": torch.float32}
    pipeline = WanPipeline.from_pretrained(folder, dtype=dtype).to(device)
    pipeline.set_progress_bar_config(disable=True)
    clock = StepClock(device)

    def on_step(pipe: Any, index: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        clock.step()
        return {}

    def once() -> Timing:
        clock.marks.clear()
        _reset_peak(device)
        started = clock.now()
        video = pipeline(
            prompt=PROMPT,
            negative_prompt="",
            width=settings["width"],
            height=settings["height"],
            num_frames=settings["frames"],
            num_inference_steps=settings["steps"],
            guidance_scale=settings["guidance"],
            generator=torch.Generator(device=device).manual_seed(SEED),
            output_type="np",
            callback_on_step_end=on_step,
        ).frames[0]
        frames = (np.clip(video, 0.0, 1.0) * 255.0).round().astype(np.uint8)
        ended = clock.now()  # after the uint8 conversion, as the engine's own timer
        # The decode (and the conversion) run after the last step's callback.
        return _timing(started, ended, clock.marks, ended - clock.marks[-1], device, frames)

    return once


def reelforge_runner(
    folder: Path, device: str, settings: dict[str, Any], options: dict[str, Any] | None = None
) -> Callable[[], Timing]:
    """reelforge's engine, as a worker runs it (with `options` on top of the benchmark's):
    loads, returns one timed generation."""
    engine = WanEngine(
        str(folder),
        device,
        {
            **(options or {}),
            "native_width": settings["width"],
            "native_height": settings["height"],
            "native_fps": 24,
            "max_native_frames": settings["frames"],
            "steps": settings["steps"],
            "guidance_min": 1.0,
            # cfg_scale 0.5 then maps to exactly the guidance plain diffusers gets.
            "guidance_max": 2 * settings["guidance"] - 1.0,
        },
    )
    engine.load()
    clock = StepClock(device)
    spec = GenerationSpec(
        model="klingai/v2-master-text-to-video",
        prompt=PROMPT,
        width=settings["width"],
        height=settings["height"],
        num_frames=settings["frames"] - 1,  # the engine adds the first frame (4k + 1)
        fps=24,
        seed=SEED,
    )

    def once() -> Timing:
        clock.marks.clear()
        _reset_peak(device)
        started = clock.now()
        clip = engine.generate(spec, None, clock.step)
        ended = clock.now()
        # The engine reports the prompt encoded, each step, then the decode done.
        marks = clock.marks
        return _timing(started, ended, marks[1:-1], marks[-1] - marks[-2], device, clip.frames)

    return once


def _reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def _timing(
    started: float,
    ended: float,
    step_marks: list[float],
    decode_s: float,
    device: str,
    frames: np.ndarray,
) -> Timing:
    steps = [b - a for a, b in zip([started, *step_marks[:-1]], step_marks, strict=True)]
    peak = torch.cuda.max_memory_allocated() / 1e9 if device.startswith("cuda") else None
    # The first "step" also holds text encoding and latent preparation; the per-step figure
    # printed is the median of the others.
    return Timing(ended - started, steps, decode_s, peak, frames)


def _median(runs: list[Timing]) -> Timing:
    ordered = sorted(runs, key=lambda run: run.total_s)
    return ordered[len(ordered) // 2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny configs on CPU")
    parser.add_argument("--device", default=None, help="cpu or cuda (cuda unless --tiny)")
    parser.add_argument("--steps", type=int, default=None, help="50 full size, 20 tiny")
    parser.add_argument("--frames", type=int, default=None, help="121 full size, 97 tiny")
    parser.add_argument("--repeats", type=int, default=3, help="runs per side; the median counts")
    parser.add_argument("--guidance", type=float, default=5.0)
    parser.add_argument(
        "--each-option", action="store_true", help="a row per speed option alone, and all"
    )
    args = parser.parse_args(argv)

    device = args.device or ("cpu" if args.tiny else "cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device here; use --tiny for the CPU comparison", file=sys.stderr)
        return 2
    width, height = (96, 64) if args.tiny else (1280, 704)
    settings = {
        "width": width,
        "height": height,
        "frames": args.frames or (97 if args.tiny else 121),
        "steps": args.steps or (20 if args.tiny else 50),
        "guidance": args.guidance,
        "repeats": args.repeats,
    }
    with tempfile.TemporaryDirectory(prefix="reelforge-bench-") as tmp:
        folder = Path(tmp) / "wan2.2-ti2v"
        started = time.perf_counter()
        if args.tiny:
            build_tiny("wan2.2-ti2v", folder)
        else:
            build_full_ti2v(folder, device)
        print(
            f"built {'tiny' if args.tiny else 'full-size'} Wan2.2-TI2V-5B in "
            f"{time.perf_counter() - started:.1f} s; {settings['width']}x{settings['height']}, "
            f"{settings['frames']} frames, {settings['steps']} steps, guidance "
            f"{settings['guidance']}, {device}, median of {settings['repeats']}"
        )
        sides: dict[str, Callable[[], Timing]] = {
            "diffusers": plain_runner(folder, device, settings)
        }
        for name, options in _variants(args.each_option):
            sides[name] = reelforge_runner(folder, device, settings, options)
        for once in sides.values():
            once()  # warm-up, untimed
        runs: dict[str, list[Timing]] = {name: [] for name in sides}
        names = list(sides)
        for repeat in range(settings["repeats"]):
            shift = repeat % len(names)
            for name in names[shift:] + names[:shift]:
                runs[name].append(sides[name]())
        medians = {name: _median(timings) for name, timings in runs.items()}

    plain = medians["diffusers"]
    print(f"{'':<34}{'s/step':>10}{'decode s':>10}{'total s':>10}{'peak GB':>10}{'ratio':>8}")
    for name, run in medians.items():
        per_step = statistics.median(run.step_s[1:] or run.step_s)
        peak = f"{run.peak_gb:.1f}" if run.peak_gb is not None else "n/a"
        ratio = plain.total_s / run.total_s
        print(
            f"{name:<34}{per_step:>10.3f}{run.decode_s:>10.2f}{run.total_s:>10.2f}{peak:>10}"
            f"{ratio:>7.2f}x"
        )
    print("ratio: diffusers' end-to-end time / the row's (above 1: the row is faster)")
    status = 0
    for name, run in medians.items():
        if name == "diffusers":
            continue
        if plain.frames.shape != run.frames.shape:
            print(f"{name}: frame shapes differ, {plain.frames.shape} vs {run.frames.shape}")
            status = 1
            continue
        difference = int(np.abs(plain.frames.astype(int) - run.frames.astype(int)).max())
        print(
            f"{name}: frames identical to diffusers': {'yes' if difference == 0 else 'no'}"
            + (f" (largest difference {difference}/255)" if difference else "")
        )
        # The speed options change the numerics (the cache skips work, fp8 rounds weights),
        # so only the rows without them must match: exactly on the CPU, and within 2/255 with
        # CUDA, where batched guidance (on by default there) runs other kernels.
        if name in _EXACT and difference > (0 if device == "cpu" else 2):
            status = 1
    return status


_EXACT = ("reelforge", "reelforge, batch_guidance off")


def _variants(each_option: bool) -> list[tuple[str, dict[str, Any]]]:
    """The reelforge rows: its defaults, batched guidance off, and with `each_option` every
    speed option alone and all of them together."""
    rows: list[tuple[str, dict[str, Any]]] = [
        ("reelforge", {}),
        ("reelforge, batch_guidance off", {"batch_guidance": False}),
    ]
    if each_option:
        alone = {
            "first-block cache (0.05)": {"cache_threshold": 0.05},
            "regional compile": {"compile": True},
            "fp8 weights": {"fp8": True},
            "batched guidance": {"batch_guidance": True},
        }
        base = {"batch_guidance": False}
        rows += [(f"reelforge + {name} only", {**base, **opts}) for name, opts in alone.items()]
        combined: dict[str, Any] = {}
        for opts in alone.values():
            combined.update(opts)
        rows.append(("reelforge, all speed options", combined))
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
