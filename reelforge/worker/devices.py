"""Which device each worker process runs on: `REELFORGE_WORKERS=auto` is one per visible CUDA
device, and `--device cuda:N` pins a worker to one.

A worker is pinned by `CUDA_VISIBLE_DEVICES` (set in the worker before CUDA starts), not only
by a torch device name: with one device visible, everything that allocates on "the current
device" (torch.compile, cache frees, libraries that assume cuda:0) lands on the right GPU.

The GPUs are counted with `nvidia-smi -L`, never through torch: `serve` counts them in the
API process, which must not import torch (seconds, hundreds of MiB) nor start CUDA (a
spawned child must not inherit it).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from reelforge.errors import ConfigurationError

__all__ = [
    "CPU",
    "WorkerDevice",
    "auto_devices",
    "list_cuda_devices",
    "parse_nvidia_smi",
    "parse_visible",
    "pin_device",
    "pin_process",
    "worker_devices",
]

log = logging.getLogger(__name__)

_NVIDIA_SMI_TIMEOUT_S = 10.0
# `nvidia-smi -L`: "GPU 0: NVIDIA H200 (UUID: GPU-…)", and under a GPU in MIG mode one
# indented "MIG 1g.18gb Device 0: (UUID: MIG-…)" line per instance.
_GPU_LINE = re.compile(r"^GPU (\d+):")
_MIG_LINE = re.compile(r"^\s+MIG .*\(UUID: (MIG-[^)\s]+)\)")


@dataclass(frozen=True)
class WorkerDevice:
    """The device one worker process runs its engines on."""

    label: str
    """What `/healthz` shows: `cpu`, `cuda:3` (the machine's GPU 3), `cuda:MIG-…`, `auto`."""
    torch_device: str
    """What the engines are given: `cpu`, `cuda`, `auto`, ..."""
    cuda_visible_devices: str | None = None
    """The worker's `CUDA_VISIBLE_DEVICES` (its one GPU); None leaves the variable as it is."""


CPU = WorkerDevice("cpu", "cpu")


def parse_visible(value: str) -> list[str]:
    """The entries of a `CUDA_VISIBLE_DEVICES` value, as CUDA reads them: comma-separated
    indexes or UUIDs, and none after the first invalid one (`-1` or empty hides them all)."""
    entries = []
    for entry in (part.strip() for part in value.split(",")):
        if not entry or entry.startswith("-"):
            break
        entries.append(entry)
    return entries


def list_cuda_devices(
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
) -> list[str]:
    """The machine's CUDA devices as `CUDA_VISIBLE_DEVICES` entries (GPU indexes, or the MIG
    instances' UUIDs for a GPU in MIG mode); empty without a driver or a GPU."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        listed = run(
            ["nvidia-smi", "-L"],
            capture_output=True,
            text=True,
            timeout=_NVIDIA_SMI_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("nvidia-smi -L failed (%s); counting no GPU", exc)
        return []
    if listed.returncode != 0:
        # No driver loaded, or no device: nvidia-smi says so and exits non-zero.
        log.info("nvidia-smi -L: %s", (listed.stdout + listed.stderr).strip()[:200])
        return []
    return parse_nvidia_smi(listed.stdout)


def parse_nvidia_smi(output: str) -> list[str]:
    """`list_cuda_devices` from the text of `nvidia-smi -L`."""
    devices: list[str] = []
    gpu: str | None = None
    migs: list[str] = []

    def flush() -> None:
        if gpu is not None:
            devices.extend(migs or [gpu])

    for line in output.splitlines():
        if match := _GPU_LINE.match(line):
            flush()
            gpu, migs = match.group(1), []
        elif (match := _MIG_LINE.match(line)) and gpu is not None:
            migs.append(match.group(1))
    flush()
    return devices


def auto_devices(visible: str | None, machine_devices: list[str]) -> list[WorkerDevice]:
    """One `WorkerDevice` per CUDA device a worker may use (those `CUDA_VISIBLE_DEVICES`
    names, if it is set), or one CPU worker when there is none."""
    if not machine_devices:
        return [CPU]
    ids = parse_visible(visible) if visible is not None else machine_devices
    return [WorkerDevice(f"cuda:{id_}", "cuda", id_) for id_ in ids] or [CPU]


def pin_device(device: str, visible: str | None) -> WorkerDevice:
    """The `WorkerDevice` of `--device` (`cuda:N` is the N-th device CUDA would show this
    process, so `CUDA_VISIBLE_DEVICES=2,3 --device cuda:1` is the machine's GPU 3)."""
    kind, sep, index = device.partition(":")
    if kind != "cuda" or not sep:
        return WorkerDevice(device, device)  # cpu, auto, cuda (the first), mps, ...
    if not index.isdecimal():
        raise ConfigurationError(
            f"REELFORGE_DEVICE: expected cuda:N with N a device number, got {device!r}",
            field="device",
        )
    if visible is None:
        return WorkerDevice(f"cuda:{int(index)}", "cuda", str(int(index)))
    ids = parse_visible(visible)
    if int(index) >= len(ids):
        raise ConfigurationError(
            f"REELFORGE_DEVICE: {device} is not visible: CUDA_VISIBLE_DEVICES={visible!r} "
            f"shows {len(ids)} device(s)",
            field="device",
        )
    return WorkerDevice(f"cuda:{ids[int(index)]}", "cuda", ids[int(index)])


def worker_devices(
    workers: int | str,
    device: str,
    visible: str | None,
    machine_devices: Callable[[], list[str]] = list_cuda_devices,
) -> list[WorkerDevice]:
    """The device of each worker `serve` starts: `workers="auto"` gives one per CUDA device
    (else one on the CPU); a number gives that many, all on `device`."""
    if workers == "auto":
        return auto_devices(visible, machine_devices())
    return [pin_device(device, visible)] * int(workers)


def pin_process(device: WorkerDevice) -> None:
    """Make the device's GPU the only one this process sees. CUDA reads the variable when it
    starts, so this must run before anything in the process uses CUDA."""
    if device.cuda_visible_devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = device.cuda_visible_devices


def gpu_memory_probe(torch_device: str) -> Callable[[], int | None]:
    """What the worker's heartbeat reports as its GPU memory: the bytes torch's caching
    allocator holds on `torch_device` (what `nvidia-smi` shows for the process, less CUDA's
    own context); None on a CPU, or before CUDA started."""
    if not torch_device.startswith("cuda"):
        return lambda: None
    import torch

    def probe() -> int | None:
        if not torch.cuda.is_initialized():
            return None
        return int(torch.cuda.memory_reserved(torch_device))

    return probe
