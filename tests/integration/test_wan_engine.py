"""The `wan` engine on real diffusers pipelines with tiny random weights, on the CPU.

No mocks: each checkpoint is built by `reelforge.testing.tiny`, saved, and loaded back through
`from_pretrained` exactly as a real one is. The frames are noise; the tests check the plumbing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from reelforge.engines.base import Clip
from reelforge.engines.diffusers.core import VideoOptions, native_frame_count
from reelforge.engines.diffusers.wan import WanEngine
from reelforge.errors import GenerationError
from reelforge.spec import CameraMove
from reelforge.testing.tiny import build_tiny_lora, build_tiny_wan, tiny_options, tiny_wan_options
from tests.conftest import make_spec
from tests.engine_helpers import Cancelled, ignore_steps, picture, plain_diffusers_frames

STEPS = 3
# The tiny checkpoints' native landscape sizes (see reelforge.testing.tiny).
WAN21_NATIVE = (64, 48)
WAN22_NATIVE = (96, 64)


def _load(checkpoint: Path, **options: object) -> WanEngine:
    # The session's tiny checkpoints are in folders named after their architecture.
    native = tiny_options(checkpoint.name)
    engine = WanEngine(str(checkpoint), "cpu", {"steps": STEPS, **native, **options})
    engine.load()
    return engine


@pytest.fixture(scope="module")
def t2v(tiny_wan_checkpoints: dict[str, Path]) -> WanEngine:
    return _load(tiny_wan_checkpoints["t2v"])


@pytest.fixture(scope="module")
def i2v(tiny_wan_checkpoints: dict[str, Path]) -> WanEngine:
    return _load(tiny_wan_checkpoints["i2v"])


@pytest.fixture(scope="module")
def ti2v(tiny_wan_checkpoints: dict[str, Path]) -> WanEngine:
    return _load(tiny_wan_checkpoints["ti2v"])


@pytest.mark.parametrize(
    ("output_size", "native"),
    [((1280, 720), (64, 48)), ((720, 1280), (48, 64)), ((960, 960), (48, 48))],
    ids=["16:9", "9:16", "1:1"],
)
@pytest.mark.slow
def test_text_to_video_renders_uint8_frames_at_native_size_per_aspect_ratio(
    t2v: WanEngine, output_size: tuple[int, int], native: tuple[int, int]
) -> None:
    width, height = output_size
    clip = t2v.generate(make_spec(width=width, height=height), None, ignore_steps)
    frames, native_width, native_height = clip.frames.shape[0], *native
    assert clip.frames.dtype == np.uint8
    assert clip.frames.shape == (frames, native_height, native_width, 3)
    assert frames % 4 == 1
    assert clip.fps == 16


@pytest.mark.slow
def test_native_frames_follow_duration_and_are_capped(tiny_wan_checkpoints: dict) -> None:
    engine = _load(tiny_wan_checkpoints["t2v"], max_native_frames=9)
    # 2 s at the native 16 fps would be 33 frames; this engine renders at most 9.
    clip = engine.generate(make_spec(num_frames=48, fps=24), None, ignore_steps)
    assert clip.frames.shape[0] == 9
    assert clip.meta["native_frames"] == 9
    assert clip.meta["frames_capped"] is True


class RecordingPipeline:
    """The engine's real pipeline, with every call's arguments recorded."""

    def __init__(self, pipeline: object) -> None:
        self.pipeline = pipeline
        self.calls: list[dict[str, object]] = []

    def __call__(self, **kwargs: object) -> object:
        self.calls.append(kwargs)
        return self.pipeline(**kwargs)  # type: ignore[operator]

    def __getattr__(self, name: str) -> object:
        return getattr(self.pipeline, name)


@pytest.mark.slow
def test_long_clip_is_chained_through_image_to_video(tiny_wan_checkpoints: dict) -> None:
    engine = _load(tiny_wan_checkpoints["ti2v"], max_native_frames=17, chain_overlap=5)
    recorder = RecordingPipeline(engine._image_pipeline)
    engine._image_pipeline = recorder
    progress: list[tuple[int, int]] = []
    # 2 s at the native 24 fps: 49 frames, as segments of 17 (0-16, 12-28, 24-40, 36-48).
    spec = make_spec(num_frames=48, fps=24, seed=5)
    clip = engine.generate(spec, None, lambda done, total: progress.append((done, total)))

    assert clip.frames.shape[0] == 49
    assert (clip.meta["segments"], clip.meta["frames_capped"]) == (4, False)
    assert [call["num_frames"] for call in recorder.calls] == [17, 17, 13]
    units = 1 + 4 * (STEPS + 1)  # the prompt once; per segment, each step and the decode
    assert progress == [(unit, units) for unit in range(1, units + 1)]
    # The first segment is the plain text-to-video render of its length; the second is
    # conditioned on its frame 12, and the frames before that are kept as rendered.
    first = engine.generate(make_spec(num_frames=17, fps=24, seed=5), None, ignore_steps)
    assert first.meta["segments"] == 1
    np.testing.assert_array_equal(clip.frames[:12], first.frames[:12])
    np.testing.assert_array_equal(np.asarray(recorder.calls[0]["image"]), first.frames[12])


def test_chain_overlap_must_fit_in_a_segment(tiny_wan_checkpoints: dict) -> None:
    with pytest.raises(ValueError, match="chain_overlap"):
        _load(tiny_wan_checkpoints["ti2v"], max_native_frames=9, chain_overlap=8)


@pytest.mark.parametrize(
    ("seconds", "fps", "limit", "expected"),
    [
        (5, 16, 81, (81, False)),
        (10, 16, 81, (81, True)),
        (1 / 3, 16, 81, (5, False)),
        (5, 24, 121, (121, False)),
        (0.01, 16, 81, (5, False)),
        (2, 16, 10, (9, True)),
    ],
)
def test_native_frame_count_is_four_k_plus_one(
    seconds: float, fps: int, limit: int, expected: tuple[int, bool]
) -> None:
    assert native_frame_count(seconds, fps, 4, limit) == expected


@pytest.mark.slow
def test_image_to_video_is_conditioned_on_the_input_image(i2v: WanEngine) -> None:
    spec = make_spec(model="klingai/v2-master-image-to-video", width=1280, height=720)
    red = i2v.generate(spec, picture((255, 0, 0)), ignore_steps)
    blue = i2v.generate(spec, picture((0, 0, 255)), ignore_steps)
    assert red.frames.shape[1:] == (WAN21_NATIVE[1], WAN21_NATIVE[0], 3)
    assert not np.array_equal(red.frames, blue.frames)


@pytest.mark.slow
def test_checkpoint_decides_which_tasks_an_engine_serves(t2v: WanEngine, i2v: WanEngine) -> None:
    assert (t2v.supports_text_to_video, t2v.supports_image_to_video) == (True, False)
    assert (i2v.supports_text_to_video, i2v.supports_image_to_video) == (False, True)
    with pytest.raises(GenerationError, match="send an input image"):
        i2v.generate(make_spec(), None, ignore_steps)
    with pytest.raises(GenerationError, match="cannot take an input image"):
        t2v.generate(make_spec(), picture((0, 255, 0)), ignore_steps)


@pytest.mark.slow
def test_wan22_ti2v_checkpoint_serves_text_and_image(ti2v: WanEngine) -> None:
    spec = make_spec(width=1280, height=720, num_frames=8)
    from_text = ti2v.generate(spec, None, ignore_steps)
    from_image = ti2v.generate(spec, picture((255, 0, 0)), ignore_steps)
    for clip in (from_text, from_image):
        assert clip.frames.shape[1:] == (WAN22_NATIVE[1], WAN22_NATIVE[0], 3)
        assert clip.fps == 24
    assert not np.array_equal(from_text.frames, from_image.frames)


@pytest.mark.slow
@pytest.mark.parametrize("task", ["a14b-t2v", "a14b-i2v"])
def test_wan22_a14b_runs_both_experts(tiny_wan_checkpoints: dict[str, Path], task: str) -> None:
    """The high-noise expert takes the first steps, the low-noise one the rest."""
    engine = _load(tiny_wan_checkpoints[task])
    pipeline = engine._text_pipeline or engine._image_pipeline
    calls: list[str] = []
    for name in ("transformer", "transformer_2"):
        module = getattr(pipeline, name)
        module.register_forward_pre_hook(lambda *_, name=name: calls.append(name))
    image = picture((0, 0, 255)) if task == "a14b-i2v" else None
    clip = engine.generate(make_spec(), image, ignore_steps)
    assert clip.frames.shape[1:] == (48, 64, 3)
    # Two passes (with and without the prompt) per step; at the tiny scheduler's shift the
    # boundary falls inside the run, so each expert has steps of its own, high noise first.
    assert calls[0] == "transformer" and calls[-1] == "transformer_2"
    assert calls == sorted(calls)
    assert engine.supports_text_to_video is (task == "a14b-t2v")


@pytest.mark.slow
def test_progress_covers_text_encoding_every_step_and_the_decode(t2v: WanEngine) -> None:
    calls: list[tuple[int, int]] = []
    t2v.generate(make_spec(), None, lambda done, total: calls.append((done, total)))
    # One unit for the prompt, one per denoising step, one for the decode.
    assert calls == [(unit, STEPS + 2) for unit in range(1, STEPS + 3)]


@pytest.mark.slow
def test_exception_from_on_step_stops_generation(t2v: WanEngine) -> None:
    calls: list[int] = []

    def cancel_at_first_step(done: int, total: int) -> None:
        calls.append(done)
        raise Cancelled

    with pytest.raises(Cancelled):
        t2v.generate(make_spec(), None, cancel_at_first_step)
    assert calls == [1]


@pytest.mark.slow
def test_engine_renders_normally_after_a_cancelled_job(t2v: WanEngine) -> None:
    spec = make_spec(seed=11)
    before = t2v.generate(spec, None, ignore_steps)

    def cancel(done: int, total: int) -> None:
        raise Cancelled

    with pytest.raises(Cancelled):
        t2v.generate(make_spec(seed=12), None, cancel)
    after = t2v.generate(spec, None, ignore_steps)
    np.testing.assert_array_equal(before.frames, after.frames)


@pytest.mark.slow
def test_same_seed_gives_identical_frames_and_another_seed_differs(t2v: WanEngine) -> None:
    first = t2v.generate(make_spec(seed=1), None, ignore_steps)
    again = t2v.generate(make_spec(seed=1), None, ignore_steps)
    other = t2v.generate(make_spec(seed=2), None, ignore_steps)
    np.testing.assert_array_equal(first.frames, again.frames)
    assert not np.array_equal(first.frames, other.frames)


@pytest.mark.slow
def test_camera_preset_is_appended_to_the_prompt(t2v: WanEngine) -> None:
    still = t2v.generate(make_spec(), None, ignore_steps)
    moving = t2v.generate(
        make_spec(camera=CameraMove(description="the camera descends and pulls back")),
        None,
        ignore_steps,
    )
    assert still.meta["camera"] == "none"
    assert moving.meta["camera"] == "prompt"
    # The phrase changes the text embedding, so it reaches the model.
    assert not np.array_equal(still.frames, moving.frames)


def test_cfg_scale_maps_linearly_with_half_at_wan_default() -> None:
    options = VideoOptions()
    assert [options.guidance_scale(cfg) for cfg in (0.0, 0.5, 1.0)] == [1.0, 5.0, 9.0]


@pytest.mark.slow
def test_clip_meta_is_json_ready(t2v: WanEngine) -> None:
    clip: Clip = t2v.generate(make_spec(cfg_scale=0.5), None, ignore_steps)
    assert json.loads(json.dumps(clip.meta))["guidance_scale"] == 5.0


@pytest.mark.slow
def test_folder_without_a_pipeline_is_refused_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no model_index\.json.*-Diffusers"):
        WanEngine(str(tmp_path)).load()


@pytest.mark.slow
def test_pipeline_of_another_kind_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    with pytest.raises(ValueError, match="StableDiffusionPipeline pipeline, not a Wan one"):
        WanEngine(str(tmp_path)).load()


@pytest.mark.slow
def test_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        WanEngine(str(tmp_path / "nowhere")).load()


@pytest.mark.slow
def test_misspelt_option_is_refused_at_start_up(tiny_wan_checkpoints: dict) -> None:
    with pytest.raises(ValueError, match=r"unknown option.*stepz"):
        WanEngine(str(tiny_wan_checkpoints["t2v"]), "cpu", {"stepz": 4})


@pytest.mark.slow
def test_hub_id_loads_from_the_local_cache_without_downloading(
    tiny_wan_checkpoints: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    # The layout `huggingface-cli download` leaves behind, holding the tiny checkpoint.
    revision = "0" * 40
    repo = tmp_path / "models--acme--tiny-wan"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    shutil.copytree(tiny_wan_checkpoints["t2v"], repo / "snapshots" / revision)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    engine = WanEngine("acme/tiny-wan", "cpu", {"steps": 1, **tiny_wan_options("t2v")})
    engine.load()
    assert engine.supports_text_to_video
    with pytest.raises(ValueError, match="neither a local folder nor in the Hugging Face cache"):
        WanEngine("acme/not-downloaded").load()


@pytest.mark.slow
def test_tiny_builder_is_deterministic_per_seed(tmp_path: Path) -> None:
    def weights(folder: Path) -> bytes:
        return (folder / "transformer" / "diffusion_pytorch_model.safetensors").read_bytes()

    first = build_tiny_wan(tmp_path / "a", "t2v", seed=0)
    again = build_tiny_wan(tmp_path / "b", "t2v", seed=0)
    other = build_tiny_wan(tmp_path / "c", "t2v", seed=1)
    assert weights(first) == weights(again)
    assert weights(first) != weights(other)


@pytest.mark.slow
def test_tiny_checkpoints_load_through_the_generic_diffusers_entry_point(
    tiny_wan_checkpoints: dict,
) -> None:
    from diffusers import DiffusionPipeline

    loaded = {
        task: DiffusionPipeline.from_pretrained(path) for task, path in tiny_wan_checkpoints.items()
    }
    assert {task: type(p).__name__ for task, p in loaded.items()} == {
        "t2v": "WanPipeline",
        "i2v": "WanImageToVideoPipeline",
        "ti2v": "WanPipeline",
        "a14b-t2v": "WanPipeline",
        "a14b-i2v": "WanImageToVideoPipeline",
    }
    assert loaded["i2v"].image_processor is not None
    assert loaded["a14b-t2v"].transformer_2 is not None
    assert loaded["a14b-t2v"].config.boundary_ratio == 0.875


@pytest.mark.slow
def test_engine_frames_equal_plain_diffusers_for_the_same_seed(tiny_wan_checkpoints: dict) -> None:
    """What benchmarks/engine_speed.py times must be the same computation: with no speed
    option on, the engine returns exactly the frames plain diffusers does."""
    from diffusers import WanPipeline

    folder = tiny_wan_checkpoints["ti2v"]
    engine = _load(folder, guidance_min=1.0, guidance_max=9.0)
    spec = make_spec(width=96, height=64, num_frames=16, fps=24, seed=3, prompt="a red kite")
    clip = engine.generate(spec, None, ignore_steps)

    pipeline = WanPipeline.from_pretrained(folder)
    plain = plain_diffusers_frames(
        pipeline,
        3,
        width=96,
        height=64,
        num_frames=17,
        num_inference_steps=STEPS,
        guidance_scale=5.0,  # cfg_scale 0.5 on the engine's 1..9 range
    )
    assert clip.frames.shape == (17, 64, 96, 3)
    np.testing.assert_array_equal(clip.frames, plain)


def _count_calls(module: torch.nn.Module) -> list[int]:
    calls = [0]

    def count(*_: object) -> None:
        calls[0] += 1

    module.register_forward_hook(count)
    return calls


@pytest.mark.slow
def test_first_block_cache_skips_the_later_blocks(tiny_wan_checkpoints: dict) -> None:
    plain = _load(tiny_wan_checkpoints["t2v"])
    cached = _load(tiny_wan_checkpoints["t2v"], cache_threshold=1e6)  # reuse whenever it can
    # The cache replaces a skipped block's forward, so count its feed-forward, which only a
    # block that really runs calls.
    plain_calls = _count_calls(plain._text_pipeline.transformer.blocks[-1].ffn)
    cached_calls = _count_calls(cached._text_pipeline.transformer.blocks[-1].ffn)
    plain.generate(make_spec(), None, ignore_steps)
    clip = cached.generate(make_spec(), None, ignore_steps)
    # Guidance runs the transformer twice a step; with the cache only the first step runs
    # the last block, the others reuse its residual.
    assert plain_calls[0] == 2 * STEPS
    assert cached_calls[0] == 2
    assert clip.meta["cache_threshold"] == 1e6


@pytest.mark.slow
def test_compiled_engine_warms_up_at_load_and_matches_eager(
    t2v: WanEngine, tiny_wan_checkpoints: dict
) -> None:
    # 5 native frames: the request below has the warm-up's shape, so nothing recompiles.
    compiled = _load(
        tiny_wan_checkpoints["t2v"], compile=True, max_native_frames=5, chain_overlap=1
    )
    spec = make_spec(seed=21)
    clip = compiled.generate(spec, None, ignore_steps)
    eager = t2v.generate(spec, None, ignore_steps)
    assert clip.meta["compiled"] is True
    assert clip.frames.shape == eager.frames.shape == (5, 48, 64, 3)
    # Fused kernels round differently; the frames agree to a couple of levels out of 255.
    difference = np.abs(clip.frames.astype(int) - eager.frames.astype(int))
    assert difference.max() <= 3


@pytest.mark.slow
def test_offload_modes_need_a_cuda_device(tiny_wan_checkpoints: dict) -> None:
    for mode in ("model_offload", "group_offload", "sequential_offload"):
        with pytest.raises(ValueError, match="needs a CUDA device"):
            _load(tiny_wan_checkpoints["t2v"], memory=mode)
    engine = _load(tiny_wan_checkpoints["t2v"], memory="auto", vae_tiling=True)
    assert engine.memory_mode == "device"  # auto on a CPU: nothing to offload to
    assert engine._text_pipeline.vae.use_tiling


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"memory": "fast"}, "memory must be one of auto, device"),
        ({"vae_tiling": "yes"}, "vae_tiling must be true or false"),
        ({"compile": 1}, "compile must be true or false"),
        ({"cache_threshold": -0.1}, "cache_threshold must be 0"),
    ],
)
def test_bad_speed_and_memory_options_are_refused(options: dict, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        VideoOptions.from_mapping(options, "wan")


@pytest.mark.slow
def test_lora_is_fused_at_load_and_scale_zero_leaves_the_model_as_it_was(
    t2v: WanEngine, tiny_wan_checkpoints: dict, tmp_path: Path
) -> None:
    lora = build_tiny_lora(tiny_wan_checkpoints["t2v"], tmp_path / "fast.safetensors")
    spec = make_spec(seed=4)
    base = t2v.generate(spec, None, ignore_steps)
    with_lora = _load(tiny_wan_checkpoints["t2v"], lora=str(lora)).generate(
        spec, None, ignore_steps
    )
    unscaled = _load(tiny_wan_checkpoints["t2v"], lora=str(lora), lora_scale=0.0)
    assert with_lora.meta["lora"] == str(lora)
    assert not np.array_equal(with_lora.frames, base.frames)
    np.testing.assert_array_equal(unscaled.generate(spec, None, ignore_steps).frames, base.frames)
    # Fused and unloaded: no adapter layers are left to cost time at every step.
    assert not unscaled._text_pipeline.get_list_adapters()


@pytest.mark.slow
def test_missing_lora_file_is_refused_at_load(tiny_wan_checkpoints: dict, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"lora: .* is not a file"):
        _load(tiny_wan_checkpoints["t2v"], lora=str(tmp_path / "absent.safetensors"))


@pytest.mark.slow
def test_fp8_storage_keeps_transformer_weights_in_float8(
    t2v: WanEngine, tiny_wan_checkpoints: dict
) -> None:
    engine = _load(tiny_wan_checkpoints["t2v"], fp8=True)
    transformer = engine._text_pipeline.transformer
    assert transformer.blocks[0].ffn.net[2].weight.dtype == torch.float8_e4m3fn
    clip = engine.generate(make_spec(seed=9), None, ignore_steps)
    eager = t2v.generate(make_spec(seed=9), None, ignore_steps)
    assert clip.meta["fp8"] is True
    assert clip.frames.shape == eager.frames.shape


@pytest.mark.slow
@pytest.mark.parametrize(
    ("backend", "problem"),
    [("flash_hub", "downloads its kernel"), ("flash", "cannot run here")],
)
def test_unavailable_attention_backends_are_refused_at_load(
    tiny_wan_checkpoints: dict, backend: str, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        _load(tiny_wan_checkpoints["t2v"], attention=backend)


@pytest.mark.slow
@pytest.mark.parametrize("task", ["t2v", "i2v", "a14b-t2v"])
def test_batched_guidance_runs_one_pass_per_step_with_the_same_frames(
    tiny_wan_checkpoints: dict, task: str
) -> None:
    """Wan's pipelines run the prompt and the negative prompt as two transformer calls per
    step; batched, one call does both, and the frames stay those of the two calls."""
    apart = _load(tiny_wan_checkpoints[task], batch_guidance=False)
    batched = _load(tiny_wan_checkpoints[task], batch_guidance=True)
    image = picture((0, 0, 255)) if task == "i2v" else None
    runs = {}
    for name, engine in (("apart", apart), ("batched", batched)):
        pipeline = engine._text_pipeline or engine._image_pipeline
        experts = [m for m in (pipeline.transformer, pipeline.transformer_2) if m is not None]
        batch_sizes: list[int] = []
        # The patch embedding runs once per real pass of the model (a call answered from the
        # batch does not reach it), on that pass's batch.
        hooks = [
            expert.patch_embedding.register_forward_pre_hook(
                lambda module, args, sizes=batch_sizes: sizes.append(args[0].shape[0])
            )
            for expert in experts
        ]
        try:
            runs[name] = (engine.generate(make_spec(seed=8), image, ignore_steps), batch_sizes)
        finally:
            for hook in hooks:
                hook.remove()
    (apart_clip, apart_sizes), (batched_clip, batched_sizes) = runs["apart"], runs["batched"]
    assert apart_sizes == [1] * (2 * STEPS)
    assert batched_sizes == [2] * STEPS
    assert (apart_clip.meta["batched_guidance"], batched_clip.meta["batched_guidance"]) == (
        False,
        True,
    )
    difference = np.abs(apart_clip.frames.astype(int) - batched_clip.frames.astype(int))
    assert difference.max() <= 1  # batched kernels may round differently


@pytest.mark.slow
def test_batched_guidance_stands_aside_without_guidance(tiny_wan_checkpoints: dict) -> None:
    engine = _load(tiny_wan_checkpoints["t2v"], batch_guidance=True, guidance_max=1.0)
    clip = engine.generate(make_spec(), None, ignore_steps)
    assert clip.meta["batched_guidance"] is False
    assert [b.batched_calls for b in engine._batchers] == [0]
