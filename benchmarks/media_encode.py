"""Benchmark: the media stage (mp4 + GIF + thumbnail from native frames) for a 5 s 1280x720
clip, against the previous pipeline (conform in RGB, then encode) measured in the same run.

Both run in this process on the same frames, interleaved, `--repeat` times each; the script
prints the median wall and CPU seconds (user + system, all threads: steadier than wall time
on shared cores) and the ratios. Target: the media stage at most 0.8 s on 2 quiet cores.
`--plain` adds the first-draft baseline (Pillow LANCZOS per frame, libx264 at its default
preset on one thread, a palette per GIF frame); `--sizes` prints GIF and mp4 sizes of 10 s
clips of the test pattern and of the shipped micro model's frames; `--presets` times the
media stage with each of REELFORGE_VIDEO_PRESET's x264 presets, with the mp4's size and its
PSNR against the conformed frames, on the grainy clip and on the clean one.

    python benchmarks/media_encode.py [--frames 120] [--repeat 5] [--plain] [--sizes]
        [--presets]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.media_previous import previous_media_stage
from reelforge.engines.testsrc import TestSourceEngine
from reelforge.media import VIDEO_PRESETS, conform_frames, encode_outputs, probe_video
from reelforge.spec import GenerationSpec

WIDTH, HEIGHT, FPS = 1280, 720, 24

Stage = Callable[[Path], None]


def testsrc_clip(
    frames: int, width: int = WIDTH, height: int = HEIGHT, noise: bool = True
) -> np.ndarray:
    """A test-pattern clip at the size the engine renders (320 on the long side)."""
    spec = GenerationSpec(
        model="bench",
        prompt="a benchmark clip",
        width=width,
        height=height,
        num_frames=frames,
        seed=1,
    )
    clip = TestSourceEngine(None).generate(spec, None, lambda done, total: None).frames
    if not noise:
        return clip
    # Add mild noise so the encoder has real texture to code, as generated video has.
    grain = np.random.default_rng(0).integers(-6, 7, size=clip.shape, dtype=np.int16)
    return np.clip(clip.astype(np.int16) + grain, 0, 255).astype(np.uint8)


def native_clip(frames: int) -> np.ndarray:
    """The benchmark's native clip: a 16 fps engine's frames for `frames` output frames."""
    return testsrc_clip(max(2, frames * 16 // FPS))


def plain_baseline(native: np.ndarray, frames: int, out: Path) -> None:
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


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def interleaved(stages: dict[str, Stage], repeat: int) -> dict[str, tuple[float, float]]:
    """Median (wall s, CPU s) per stage, runs interleaved (the order turns each round)."""
    walls: dict[str, list[float]] = {name: [] for name in stages}
    cpus: dict[str, list[float]] = {name: [] for name in stages}
    names = list(stages)
    for round_index in range(repeat):
        for name in names[round_index % len(names) :] + names[: round_index % len(names)]:
            with tempfile.TemporaryDirectory() as tmp:
                wall, cpu = time.perf_counter(), _cpu_s()
                stages[name](Path(tmp))
                walls[name].append(time.perf_counter() - wall)
                cpus[name].append(_cpu_s() - cpu)
                info = probe_video(Path(tmp) / "video.mp4")
                assert (info.width, info.height) == (WIDTH, HEIGHT), info
    return {name: (statistics.median(walls[name]), statistics.median(cpus[name])) for name in names}


def artifact_sizes(stage: Stage) -> tuple[int, int]:
    """(mp4 bytes, GIF bytes) that `stage` writes."""
    with tempfile.TemporaryDirectory() as tmp:
        stage(Path(tmp))
        return (Path(tmp) / "video.mp4").stat().st_size, (Path(tmp) / "preview.gif").stat().st_size


def print_sizes() -> None:
    """GIF against mp4 for 10 s clips (240 frames at 24 fps) of typical content, both paths."""
    from reelforge.micro.generator import MicroGenerator  # imports torch: only when asked

    micro = MicroGenerator.from_checkpoint().generate(["a red ball bouncing on grass"], [3])[0]
    for label, (width, height) in {"16:9": (1280, 720), "9:16": (720, 1280)}.items():
        contents = {"testsrc": testsrc_clip(240, width, height, noise=False), "micro": micro}
        for name, native in contents.items():
            for path_name, encode in (("new", encode_outputs), ("previous", previous_media_stage)):
                mp4, gif = artifact_sizes(
                    lambda out, e=encode, n=native, w=width, h=height: e(n, w, h, 240, FPS, out)
                )
                print(
                    f"10 s {label} {name:8s} {path_name:9s} native {native.shape[1:3]}: "
                    f"mp4 {mp4 / 1e3:6.0f} kB, GIF {gif / 1e3:6.0f} kB ({gif / mp4:.2f}x the mp4)"
                )


def psnr_db(video: Path, reference: np.ndarray) -> float:
    """The mp4's PSNR against `reference` (its frames as RGB), over the whole clip."""
    with av.open(str(video)) as container:
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    error = decoded.astype(np.float32) - reference.astype(np.float32)
    return float(10 * np.log10(255**2 / np.mean(error * error)))


def print_presets(frames: int, repeat: int) -> None:
    """The media stage per x264 preset: wall and CPU (interleaved medians), mp4 size, PSNR."""
    for label, noise in (("grainy", True), ("clean", False)):
        native = testsrc_clip(max(2, frames * 16 // FPS), noise=noise)
        reference = conform_frames(native, WIDTH, HEIGHT, frames)
        stages: dict[str, Stage] = {
            preset: lambda out, p=preset, n=native: encode_outputs(
                n, WIDTH, HEIGHT, frames, FPS, out, preset=p
            )
            for preset in VIDEO_PRESETS
        }
        results = interleaved(stages, repeat)
        print(f"x264 presets, {label} clip, medians of {repeat} interleaved runs:")
        for preset, (wall, cpu) in results.items():
            with tempfile.TemporaryDirectory() as tmp:
                stages[preset](Path(tmp))
                video = Path(tmp) / "video.mp4"
                size, quality = video.stat().st_size, psnr_db(video, reference)
            print(
                f"  {preset:10s} wall {wall:.3f} s, CPU {cpu:.3f} s, mp4 {size / 1e3:6.0f} kB, "
                f"PSNR {quality:.2f} dB"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--plain", action="store_true", help="also time the plain baseline")
    parser.add_argument("--sizes", action="store_true", help="GIF and mp4 sizes of 10 s clips")
    parser.add_argument("--presets", action="store_true", help="each x264 preset's figures")
    args = parser.parse_args()
    native = native_clip(args.frames)
    frames = args.frames

    def new(out: Path) -> None:
        encode_outputs(native, WIDTH, HEIGHT, frames, FPS, out)

    def previous(out: Path) -> None:
        previous_media_stage(native, WIDTH, HEIGHT, frames, FPS, out)

    stages: dict[str, Stage] = {"new": new, "previous": previous}
    if args.plain:
        stages["plain"] = lambda out: plain_baseline(native, frames, out)
    stages["new"](Path(tempfile.mkdtemp()))  # warm up: codec and library first-use costs
    results = interleaved(stages, args.repeat)
    print(
        f"frames: {frames} at {WIDTH}x{HEIGHT}, {FPS} fps (native {len(native)} frames "
        f"{native.shape[2]}x{native.shape[1]}); medians of {args.repeat} interleaved runs"
    )
    new_wall, new_cpu = results["new"]
    for name, (wall, cpu) in results.items():
        ratios = "" if name == "new" else f"  (new / {name}: {new_wall / wall:.2f}x wall, "
        ratios += "" if name == "new" else f"{new_cpu / cpu:.2f}x CPU)"
        print(f"  {name:9s} media stage: wall {wall:.3f} s, CPU {cpu:.3f} s{ratios}")
    for name in ("new", "previous"):
        mp4, gif = artifact_sizes(stages[name])
        print(f"  {name:9s} mp4 {mp4 / 1e3:.0f} kB, GIF {gif / 1e3:.0f} kB")
    print("target: new wall <= 0.8 s on 2 quiet cores")
    if args.sizes:
        print_sizes()
    if args.presets:
        print_presets(frames, args.repeat)


if __name__ == "__main__":
    main()
