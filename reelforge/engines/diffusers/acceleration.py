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

Speed settings, all off by default except batched guidance on CUDA:

- `batch_guidance` runs classifier-free guidance's two transformer passes per step as one
  batch where a pipeline runs them apart (Wan's; `BatchedGuidance`). On by default on CUDA;
  off on the CPU, where it gains nothing and its batched kernels round differently;
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
    "BatchedGuidance",
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


class BatchedGuidance:
    """Runs a transformer's two classifier-free-guidance passes as one batch of two.

    diffusers' Wan pipelines call the transformer twice per step on the same latents: with the
    prompt, then with the negative prompt. Installed over the transformer's `forward`, this
    answers the first call by running both prompts in one batch (a GPU is better used by one
    large batch than by two half-size ones) and answers the second from that batch, without
    running the model again. It batches only calls it recognises, by identity: the prompt
    embeddings `pair` set for the current request, and the very latents and timestep of the
    call before; any other call runs as it was.
    """

    def __init__(self, transformer: Any) -> None:
        self._forward = transformer.forward  # as installed (offload hooks included)
        self.pair: tuple[Any, Any] | None = None
        """(prompt embeddings, negative prompt embeddings) of the request being rendered."""
        self._held: tuple[Any, Any, Any] | None = None
        self.batched_calls = 0
        transformer.forward = self._call

    def _call(self, *args: Any, **kwargs: Any) -> Any:
        held, self._held = self._held, None
        hidden: Any = kwargs.get("hidden_states")
        timestep: Any = kwargs.get("timestep")
        text: Any = kwargs.get("encoder_hidden_states")
        if args or self.pair is None or kwargs.get("return_dict", True):
            return self._forward(*args, **kwargs)
        positive, negative = self.pair
        if held is not None and text is negative and held[0] is hidden and held[1] is timestep:
            return (held[2],)
        if text is not positive or positive.shape != negative.shape:
            return self._forward(**kwargs)
        import torch

        batch = hidden.shape[0]

        def doubled(value: Any) -> Any:
            is_batched = isinstance(value, torch.Tensor) and value.ndim and value.shape[0] == batch
            return torch.cat([value, value]) if is_batched else value

        call = {name: doubled(value) for name, value in kwargs.items()}
        call["encoder_hidden_states"] = torch.cat([positive, negative])
        conditional, unconditional = self._forward(**call)[0].chunk(2)
        self._held = (hidden, timestep, unconditional)
        self.batched_calls += 1
        return (conditional,)
