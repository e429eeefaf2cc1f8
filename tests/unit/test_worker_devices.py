"""Which device each worker gets (`REELFORGE_WORKERS=auto`, `--device cuda:N`), with the
machine's device list injected: no GPU is needed, and none is touched."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from reelforge.errors import ConfigurationError
from reelforge.settings import Settings
from reelforge.worker.devices import (
    CPU,
    WorkerDevice,
    auto_devices,
    list_cuda_devices,
    parse_nvidia_smi,
    parse_visible,
    pin_device,
    pin_process,
    worker_devices,
)

TWO_GPUS = """\
GPU 0: NVIDIA H200 (UUID: GPU-5d1c8d6a-1111-2222-3333-444455556666)
GPU 1: NVIDIA H200 (UUID: GPU-7e2f9a7b-1111-2222-3333-444455556666)
"""

# GPU 0 in MIG mode with two instances; GPU 1 whole.
MIG = """\
GPU 0: NVIDIA H200 (UUID: GPU-5d1c8d6a-1111-2222-3333-444455556666)
  MIG 3g.71gb     Device  0: (UUID: MIG-aaaaaaaa-1111-2222-3333-444455556666)
  MIG 3g.71gb     Device  1: (UUID: MIG-bbbbbbbb-1111-2222-3333-444455556666)
GPU 1: NVIDIA H200 (UUID: GPU-7e2f9a7b-1111-2222-3333-444455556666)
"""


def test_nvidia_smi_listing_gives_one_entry_per_gpu_or_mig_instance() -> None:
    assert parse_nvidia_smi(TWO_GPUS) == ["0", "1"]
    assert parse_nvidia_smi(MIG) == [
        "MIG-aaaaaaaa-1111-2222-3333-444455556666",
        "MIG-bbbbbbbb-1111-2222-3333-444455556666",
        "1",
    ]
    assert parse_nvidia_smi("") == []


def test_auto_is_one_pinned_worker_per_gpu() -> None:
    assert auto_devices(None, ["0", "1", "2"]) == [
        WorkerDevice("cuda:0", "cuda", "0"),
        WorkerDevice("cuda:1", "cuda", "1"),
        WorkerDevice("cuda:2", "cuda", "2"),
    ]


def test_auto_without_a_gpu_is_one_cpu_worker() -> None:
    assert auto_devices(None, []) == [CPU]
    # A CUDA_VISIBLE_DEVICES left over on a machine with no GPU names nothing that exists.
    assert auto_devices("0,1", []) == [CPU]


def test_auto_respects_cuda_visible_devices() -> None:
    machine = ["0", "1", "2", "3"]
    assert [d.cuda_visible_devices for d in auto_devices("2,3", machine)] == ["2", "3"]
    assert [d.label for d in auto_devices("3", machine)] == ["cuda:3"]
    uuid = "GPU-7e2f9a7b-1111-2222-3333-444455556666"
    assert auto_devices(uuid, machine) == [WorkerDevice(f"cuda:{uuid}", "cuda", uuid)]
    # Hidden GPUs (CUDA's "-1" or an empty value): the CPU.
    assert auto_devices("-1", machine) == [CPU]
    assert auto_devices("", machine) == [CPU]


def test_visible_devices_stop_at_the_first_invalid_entry_as_cuda_does() -> None:
    assert parse_visible(" 1, 3 ") == ["1", "3"]
    assert parse_visible("1,-1,3") == ["1"]
    assert parse_visible("1,,3") == ["1"]


def test_cuda_n_pins_the_nth_visible_gpu() -> None:
    assert pin_device("cuda:1", None) == WorkerDevice("cuda:1", "cuda", "1")
    assert pin_device("cuda:1", "2,3") == WorkerDevice("cuda:3", "cuda", "3")
    assert pin_device("cpu", "2,3") == WorkerDevice("cpu", "cpu")
    assert pin_device("auto", None) == WorkerDevice("auto", "auto")
    assert pin_device("cuda", None) == WorkerDevice("cuda", "cuda")


def test_cuda_n_that_is_not_visible_or_not_a_number_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="cuda:2 is not visible") as hidden:
        pin_device("cuda:2", "0,1")
    assert hidden.value.field == "device"
    with pytest.raises(ConfigurationError, match="expected cuda:N"):
        pin_device("cuda:first", None)


def test_pinning_a_process_shows_it_its_one_gpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    pin_process(WorkerDevice("cuda:2", "cuda", "2"))
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "2"
    mig = "MIG-aaaaaaaa-1111-2222-3333-444455556666"
    pin_process(auto_devices(None, [mig])[0])
    assert os.environ["CUDA_VISIBLE_DEVICES"] == mig


def test_pinning_a_cpu_or_unpinned_device_leaves_the_variable_as_it_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,3")
    for device in (CPU, pin_device("cuda", "1,3"), pin_device("auto", "1,3")):
        pin_process(device)
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "1,3"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    pin_process(CPU)
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


def test_a_child_started_after_pinning_sees_only_its_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """The variable is the process's environment, which the processes it starts inherit (a
    library's helper process, or CUDA's own tools)."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    pin_process(pin_device("cuda:1", "2,3"))
    seen = subprocess.run(
        [sys.executable, "-c", "import os; print(os.environ['CUDA_VISIBLE_DEVICES'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert seen.stdout.strip() == "3"


def test_a_number_of_workers_shares_the_configured_device() -> None:
    def no_listing() -> list[str]:
        raise AssertionError("a fixed count must not list the GPUs")

    assert worker_devices(2, "cpu", None, no_listing) == [CPU, CPU]
    assert worker_devices(0, "auto", None, no_listing) == []
    assert worker_devices("auto", "cpu", None, lambda: ["0", "1"]) == [
        WorkerDevice("cuda:0", "cuda", "0"),
        WorkerDevice("cuda:1", "cuda", "1"),
    ]


def test_listing_without_a_working_driver_counts_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/nvidia-smi")

    def driver_missing(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(args, 9, "", "NVIDIA-SMI has failed because ...")

    def hangs(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        raise subprocess.TimeoutExpired("nvidia-smi", 10)

    def lists(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(args, 0, TWO_GPUS, "")

    assert list_cuda_devices(driver_missing) == []
    assert list_cuda_devices(hangs) == []
    assert list_cuda_devices(lists) == ["0", "1"]


def test_this_machine_lists_what_nvidia_smi_says() -> None:
    """The real listing on this machine: without nvidia-smi (CI, this box) it is empty, and
    `auto` is then one CPU worker."""
    import shutil

    listed = list_cuda_devices()
    if shutil.which("nvidia-smi") is None:
        assert listed == []
        assert worker_devices("auto", "auto", None) == [CPU]
    else:
        assert all(entry.isdecimal() or entry.startswith("MIG-") for entry in listed)


def test_workers_setting_takes_a_count_or_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REELFORGE_WORKERS", "auto")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,2")
    settings = Settings()
    assert settings.workers == "auto"
    assert settings.cuda_visible_devices == "1,2"
    monkeypatch.setenv("REELFORGE_WORKERS", "3")
    assert Settings().workers == 3
    monkeypatch.setenv("REELFORGE_WORKERS", "many")
    with pytest.raises(ValueError, match="workers"):
        Settings()
    monkeypatch.setenv("REELFORGE_WORKERS", "-1")
    with pytest.raises(ValueError, match="workers"):
        Settings()


def test_serve_workers_flag_takes_auto(capsys: pytest.CaptureFixture[str]) -> None:
    from reelforge.cli.main import build_parser, main
    from reelforge.cli.serve import settings_from_args

    args = build_parser().parse_args(["serve", "--workers", "auto"])
    assert settings_from_args(args).workers == "auto"
    args = build_parser().parse_args(["worker", "--device", "cuda:1"])
    assert settings_from_args(args).device == "cuda:1"
    assert main(["serve", "--workers", "some"]) == 2
    assert "must be a whole number, got 'some' (or auto: one per GPU)" in capsys.readouterr().err
