"""Benchmark: peak memory of the media stage (mp4 + GIF + thumbnail), new against previous.

Each case runs in a fresh subprocess: it builds the native frames, returns freed heap to the
kernel (`malloc_trim`), resets the kernel's high-water mark (`/proc/self/clear_refs`), runs the
media stage, and reports the peak resident memory above what it held before (`VmHWM` -
`VmRSS`): C allocations (swscale, libx264, Pillow) included, which tracemalloc would not see.
The native frames are the engine's and are not counted. Target: the 10 s clip's growth at most
1.2x the 5 s clip's.

    python benchmarks/media_memory.py
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.media_encode import FPS, native_clip
from benchmarks.media_previous import previous_media_stage
from reelforge.media import encode_outputs

CASES = {
    # name: (native frames, native width, native height, output frames); output 1280x720
    "5 s": (80, 320, 180, 120),
    "10 s": (160, 320, 180, 240),
    "121x1280x704": (121, 1280, 704, 121),  # Wan2.2-TI2V-5B's native clip, 5 s at 24 fps
}
WIDTH, HEIGHT = 1280, 720


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _native(case: str) -> np.ndarray:
    count, width, height, _ = CASES[case]
    clip = native_clip(count * FPS // 16)  # the test pattern with grain, 320x180
    clip = clip[np.arange(count) * len(clip) // count]
    if (width, height) == (clip.shape[2], clip.shape[1]):
        return np.ascontiguousarray(clip)
    return np.stack(
        [
            np.asarray(Image.fromarray(f).resize((width, height), Image.Resampling.BICUBIC))
            for f in clip
        ]
    )


def measure(case: str, pipeline: str) -> dict[str, float]:
    """Run one case in this process; return its peak growth (MiB) and wall time (s)."""
    native = _native(case)
    frames = CASES[case][3]
    with tempfile.TemporaryDirectory() as tmp:
        gc.collect()
        # Hand freed heap back to the kernel first: pages the frames' builders freed but kept
        # would absorb the stage's allocations without counting, more in some cases than others.
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
        before = _status_kib("VmRSS")
        start = time.perf_counter()
        if pipeline == "new":
            encode_outputs(native, WIDTH, HEIGHT, frames, FPS, Path(tmp))
        else:
            previous_media_stage(native, WIDTH, HEIGHT, frames, FPS, Path(tmp))
        wall = time.perf_counter() - start
        peak = _status_kib("VmHWM")
    return {
        "growth_mib": (peak - before) / 1024,
        "native_mib": native.nbytes / 2**20,
        "wall_s": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--case", choices=list(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--pipeline", choices=["new", "previous"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:  # the child
        print(json.dumps(measure(args.case, args.pipeline)))
        return
    results: dict[tuple[str, str], dict[str, float]] = {}
    for case in CASES:
        for pipeline in ("new", "previous"):
            child = subprocess.run(
                [sys.executable, __file__, "--case", case, "--pipeline", pipeline],
                check=True,
                capture_output=True,
                text=True,
            )
            results[case, pipeline] = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"peak RSS growth of the media stage, output {WIDTH}x{HEIGHT} at {FPS} fps")
    for case, (count, width, height, frames) in CASES.items():
        new, old = results[case, "new"], results[case, "previous"]
        ratio = new["growth_mib"] / old["growth_mib"]
        print(
            f"  {case:13s} native {count}x{width}x{height} ({new['native_mib']:.0f} MiB) -> "
            f"{frames} frames: new {new['growth_mib']:6.1f} MiB, previous "
            f"{old['growth_mib']:6.1f} MiB (new/previous {ratio:.2f}x; "
            f"wall {new['wall_s']:.2f} s vs {old['wall_s']:.2f} s)"
        )
    for pipeline in ("new", "previous"):
        ratio = results["10 s", pipeline]["growth_mib"] / results["5 s", pipeline]["growth_mib"]
        print(f"  {pipeline:8s} 10 s / 5 s: {ratio:.2f}x (target for new: <= 1.2x)")


if __name__ == "__main__":
    main()
