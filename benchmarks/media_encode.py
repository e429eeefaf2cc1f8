"""Benchmark: conform + mp4 + GIF + thumbnail for a 5 s 1280x720 clip, against a plain baseline.

The baseline is what one writes first with the same libraries: Pillow LANCZOS resize per
frame, libx264 at its default preset on one thread, and a GIF with a palette per frame.
Both run in this process on the same frames; the script prints seconds and the ratio.
Target (DESIGN.md): reelforge's path under 2 s on 2 cores.

    python benchmarks/media_encode.py [--frames 120] [--repeat 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
from PIL import Image

from reelforge.engines.testsrc import TestSourceEngine
from reelforge.media import conform_frames, encode_outputs, probe_video
from reelforge.spec import GenerationSpec

WIDTH, HEIGHT, FPS = 1280, 720, 24


def native_clip(frames: int) -> np.ndarray:
    """A test-pattern clip at the size an engine renders (320x180), moving and with text."""
    spec = GenerationSpec(
        model="bench",
        prompt="a benchmark clip",
        width=WIDTH,
        height=HEIGHT,
        num_frames=frames,
        seed=1,
    )
    engine = TestSourceEngine(None)
    clip = engine.generate(spec, None, lambda done, total: None)
    # Add mild noise so the encoder has real texture to code, as generated video has.
    noise = np.random.default_rng(0).integers(-6, 7, size=clip.frames.shape, dtype=np.int16)
    return np.clip(clip.frames.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def reelforge_path(native: np.ndarray, frames: int, out: Path) -> None:
    encode_outputs(conform_frames(native, WIDTH, HEIGHT, frames), FPS, out)


def baseline_path(native: np.ndarray, frames: int, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    sources = np.arange(frames) * len(native) // frames
    pictures = [
        Image.fromarray(native[index]).resize((WIDTH, HEIGHT), Image.Resampling.LANCZOS)
        for index in sources
    ]
    with av.open(str(out / "video.mp4"), "w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.thread_count = 1
        for picture in pictures:
            container.mux(stream.encode(av.VideoFrame.from_image(picture)))
        container.mux(stream.encode(None))
    small = [picture.resize((480, 270)) for picture in pictures[::2]]
    gif = [picture.quantize(256) for picture in small]
    gif[0].save(out / "preview.gif", save_all=True, append_images=gif[1:], duration=83, loop=0)
    pictures[len(pictures) // 2].save(out / "thumbnail.webp", quality=80)


def best_of(repeat: int, run: Callable[[Path], None]) -> float:
    times = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            run(Path(tmp))
            times.append(time.perf_counter() - start)
            if run.__name__ == "ours":
                info = probe_video(Path(tmp) / "video.mp4")
                assert (info.width, info.height) == (WIDTH, HEIGHT), info
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    native = native_clip(max(2, args.frames * 16 // FPS))  # a 16 fps engine's clip

    def ours(out: Path) -> None:
        reelforge_path(native, args.frames, out)

    def baseline(out: Path) -> None:
        baseline_path(native, args.frames, out)

    ours_s = best_of(args.repeat, ours)
    baseline_s = best_of(args.repeat, baseline)
    print(f"frames: {args.frames} at {WIDTH}x{HEIGHT}, {FPS} fps (native {len(native)} frames)")
    print(f"reelforge conform+mp4+gif+thumbnail: {ours_s:.3f} s (target < 2 s)")
    print(f"baseline  resize+mp4+gif+thumbnail:  {baseline_s:.3f} s")
    print(f"speed-up: {baseline_s / ours_s:.2f}x")


if __name__ == "__main__":
    main()
