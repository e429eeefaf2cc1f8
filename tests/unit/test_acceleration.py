"""Choosing a memory mode from free device memory."""

from __future__ import annotations

from reelforge.engines.diffusers.acceleration import choose_memory_mode

GB = 1024**3
# Wan2.2-TI2V-5B in bf16: a 10 GB transformer, an 11 GB text encoder, a 1.4 GB VAE (fp32: 2.8).
TI2V = {"transformer": 10 * GB, "text_encoder": 11 * GB, "vae": 3 * GB}


def test_cpu_keeps_everything_in_place() -> None:
    assert choose_memory_mode(None, TI2V) == "device"


def test_a_large_gpu_holds_every_component() -> None:
    assert choose_memory_mode(70 * GB, TI2V) == "device"


def test_a_mid_gpu_holds_one_component_at_a_time() -> None:
    assert choose_memory_mode(22 * GB, TI2V) == "model_offload"


def test_a_small_gpu_streams_layers() -> None:
    assert choose_memory_mode(12 * GB, TI2V) == "group_offload"


def test_headroom_is_left_for_activations() -> None:
    just_fits = sum(TI2V.values())
    assert choose_memory_mode(just_fits, TI2V) == "model_offload"
    assert choose_memory_mode(just_fits + 8 * GB, TI2V) == "device"
