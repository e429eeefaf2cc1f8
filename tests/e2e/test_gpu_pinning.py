"""`serve` with `REELFORGE_WORKERS=auto` on a machine whose `nvidia-smi` lists two GPUs: one
worker child per GPU, each pinned to its own by `CUDA_VISIBLE_DEVICES`, and `/healthz` says
which. The GPUs are a fake (`nvidia-smi` is a script on PATH, named as one in what it
prints), and the engine reports its environment and ignores its device, so this runs on a
CPU; what it tests is the counting, the pinning and the reporting, not CUDA."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import START_TIMEOUT_S, LiveServer, wait_for
from tests.e2e.test_service import T2V, create, wait_terminal, write_models_file

pytestmark = pytest.mark.slow  # a server with two worker processes

FAKE_NVIDIA_SMI = """\
#!/bin/sh
# A fake nvidia-smi for reelforge's tests: two GPUs that do not exist.
[ "$1" = "-L" ] || { echo "fake nvidia-smi: only -L" >&2; exit 9; }
echo "GPU 0: FAKE GPU for tests (UUID: GPU-00000000-0000-0000-0000-fake00000000)"
echo "GPU 1: FAKE GPU for tests (UUID: GPU-00000000-0000-0000-0000-fake00000001)"
"""


@pytest.fixture
def two_fake_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A `nvidia-smi` that lists two GPUs, first on the PATH the server inherits; nothing
    hides them (CUDA_VISIBLE_DEVICES unset)."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    script = bin_dir / "nvidia-smi"
    script.write_text(FAKE_NVIDIA_SMI)
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


@pytest.mark.usefixtures("two_fake_gpus")
def test_auto_starts_one_worker_per_gpu_each_pinned_to_its_own(
    server_factory: Callable[..., LiveServer], tmp_path: Path
) -> None:
    reports = tmp_path / "device-reports"
    reports.mkdir()
    models = write_models_file(
        tmp_path / "models.toml", "tests.fixtures.engines:DeviceReportingEngine", reports
    )
    server = server_factory(models_file=str(models), workers="auto")

    def two_workers() -> list[dict[str, object]] | None:
        workers: list[dict[str, object]] = httpx.get(server.base_url + "/healthz").json()[
            "live_workers"
        ]
        return workers if len(workers) == 2 else None

    workers = wait_for(two_workers, START_TIMEOUT_S, "both workers to register")
    assert sorted(str(w["device"]) for w in workers) == ["cuda:0", "cuda:1"], workers

    # What each child's engine saw as it loaded: the torch device `cuda`, and one GPU.
    seen = {
        int(path.stem.removeprefix("device-")): json.loads(path.read_text())
        for path in reports.glob("device-*.json")
    }
    assert sorted(seen) == sorted(int(str(w["pid"])) for w in workers), (seen, workers)
    for worker in workers:
        pinned = str(worker["device"]).removeprefix("cuda:")
        assert seen[int(str(worker["pid"]))] == {"device": "cuda", "cuda_visible_devices": pinned}

    # The pinned workers serve (the engine runs on the CPU whatever its device).
    final = wait_terminal(server, create(server, {"model": T2V, "prompt": "on a fake GPU"})["id"])
    assert final["status"] == "completed", final
