"""Memory modes and speed settings for a loaded diffusers video pipeline.

Memory modes, from fastest to leanest:

- `device`: every component on the device (what a big GPU or the CPU runs);
- `model_offload`: components wait in CPU memory and move to the GPU one at a time, as the
  pipeline reaches them (the text encoder, then the transformer, then the VAE);
- `group_offload`: the large components (transformers, text encoder) stream their layers to
  the GPU as they run, overlapping the copies with compute on a side stream;
- `sequential_offload`: every sub-module moves on use (slowest, smallest footprint).

`auto` picks the fastest that fits the device's free memory (`choose_memory_mode`). Offloaded
modes tile the VAE decode as well, since a 121-frame 720p decode alone takes several GB.

Speed settings, all off by default:

- `fp8` stores the transformer's weights in float8 and computes in the load dtype (diffusers'
  layerwise casting: about half the memory of bfloat16);
- `attention` picks diffusers' attention backend (`flash`, `_flash_3` for FlashAttention 3
  on Hopper, `sage`, ...; the default is PyTorch's fused SDPA);
- `cache_threshold` turns on diffusers' first-block cache (a step whose first transformer
  block changes its output by less than the threshold, relative, reuses the previous step's
  residual for the remaining blocks: faster, slightly different frames);
- `compile` compiles the transformer's repeated block with `torch.compile` (regional
  compilation: one block compiled, reused by every layer, so it compiles in seconds), and
  the engine warms it up at load.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "MEMORY_MODES",
    "apply_memory_mode",
    "apply_speed_settings",
    "choose_memory_mode",
    "component_bytes",
]

MEMORY_MODES = ("auto", "device", "model_offload", "group_offload", "sequential_offload")

_GB = 1024**3


def component_bytes(pipeline: Any) -> dict[str, int]:
    """Bytes of parameters and buffers per torch component of `pipeline`."""
    sizes = {}
    for name, component in pipeline.components.items():
        if hasattr(component, "parameters"):
            tensors = [*component.parameters(), *component.buffers()]
            sizes[name] = sum(t.numel() * t.element_size() for t in tensors)
    return sizes


def choose_memory_mode(
    free_bytes: int | None, sizes: dict[str, int], headroom_bytes: int = 8 * _GB
) -> str:
    """The fastest memory mode whose resident weights leave `headroom_bytes` free for
    activations; `free_bytes` None (a CPU) means there is nothing to offload to."""
    if free_bytes is None or not sizes:
        return "device"
    if sum(sizes.values()) + headroom_bytes <= free_bytes:
        return "device"
    if max(sizes.values()) + headroom_bytes <= free_bytes:
        return "model_offload"
    return "group_offload"


def free_device_memory(device: str) -> int | None:
    """Free bytes on a CUDA device; None for the CPU."""
    if not device.startswith("cuda"):
        return None
    import torch

    free, _total = torch.cuda.mem_get_info(torch.device(device))
    return int(free)


def apply_memory_mode(pipeline: Any, mode: str, device: str) -> str:
    """Place `pipeline` (loaded on the CPU) by `mode`, resolving `auto`; returns the mode used."""
    if mode == "auto":
        mode = choose_memory_mode(free_device_memory(device), component_bytes(pipeline))
    if mode != "device" and not device.startswith("cuda"):
        raise ValueError(f"memory mode {mode!r} offloads to the CPU and needs a CUDA device")
    if mode == "device":
        pipeline.to(device)
    elif mode == "model_offload":
        pipeline.enable_model_cpu_offload(device=device)
    elif mode == "sequential_offload":
        pipeline.enable_sequential_cpu_offload(device=device)
    elif mode == "group_offload":
        import torch

        for name in ("transformer", "transformer_2", "text_encoder"):
            component = getattr(pipeline, name, None)
            if component is not None:
                component.enable_group_offload(
                    onload_device=torch.device(device),
                    offload_device=torch.device("cpu"),
                    offload_type="leaf_level",
                    use_stream=True,
                )
        for name, component in pipeline.components.items():
            if name not in ("transformer", "transformer_2", "text_encoder") and hasattr(
                component, "to"
            ):
                component.to(device)
    else:
        raise ValueError(f"unknown memory mode {mode!r}; known: {', '.join(MEMORY_MODES)}")
    if mode != "device":
        pipeline.vae.enable_tiling()
    return mode


def apply_speed_settings(
    pipeline: Any,
    *,
    cache_threshold: float = 0.0,
    compile_blocks: bool = False,
    attention: str = "native",
    fp8: bool = False,
) -> None:
    """Turn on the speed settings on every transformer of `pipeline` (Wan2.2-A14B has two):
    fp8 weight storage, the attention backend, first-block caching, regional compilation."""
    transformers = [
        component
        for component in (pipeline.transformer, getattr(pipeline, "transformer_2", None))
        if component is not None
    ]
    if fp8:
        import torch

        for transformer in transformers:
            # Weights stored in float8 (half of bfloat16's memory), each layer cast back to
            # the compute dtype as it runs; norms and embeddings stay as they are.
            transformer.enable_layerwise_casting(
                storage_dtype=torch.float8_e4m3fn, compute_dtype=transformer.dtype
            )
    if attention != "native":
        if attention.endswith("_hub"):
            raise ValueError(
                f"attention backend {attention!r} downloads its kernel from the hub at run "
                f"time; install the kernel package and use its local backend instead"
            )
        for transformer in transformers:
            try:
                transformer.set_attention_backend(attention)
            except (ValueError, RuntimeError, ImportError) as exc:
                raise ValueError(f"attention backend {attention!r} cannot run here: {exc}") from exc
    if cache_threshold > 0:
        from diffusers import FirstBlockCacheConfig

        for transformer in transformers:
            transformer.enable_cache(FirstBlockCacheConfig(threshold=cache_threshold))
    if compile_blocks:
        for transformer in transformers:
            transformer.compile_repeated_blocks(fullgraph=True)
