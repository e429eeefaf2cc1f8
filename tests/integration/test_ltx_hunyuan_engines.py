"""The `ltx` and `hunyuan` engines on real diffusers pipelines with tiny random weights, on
the CPU: what each family does differently from Wan (the shared machinery is tested through
the `wan` engine in test_wan_engine.py).

No mocks: each checkpoint is built by `reelforge models make-tiny`'s builders, saved, and
loaded back through `from_pretrained` as a released one is. The frames are noise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reelforge.engines.diffusers.hunyuan import HunyuanEngine
from reelforge.engines.diffusers.ltx import LTXEngine
from reelforge.errors import GenerationError
from reelforge.testing.tiny import build_tiny, tiny_options
from reelforge.weights.catalog import CATALOG
from tests.conftest import TinyCheckpoints, make_spec
from tests.engine_helpers import Cancelled, ignore_steps, picture, plain_diffusers_frames

pytestmark = pytest.mark.slow

STEPS = 2
I2V = "klingai/v2-master-image-to-video"


@pytest.fixture(scope="module")
def checkpoints(tiny_checkpoints: TinyCheckpoints) -> dict[str, Path]:
    archs = ("ltx-video", "hunyuanvideo-1.5-t2v", "hunyuanvideo-1.5-i2v")
    return {arch: tiny_checkpoints[arch] for arch in archs}


@pytest.fixture(scope="module")
def ltx(checkpoints: dict[str, Path]) -> LTXEngine:
    engine = LTXEngine(
        str(checkpoints["ltx-video"]), "cpu", {**tiny_options("ltx-video"), "steps": STEPS}
    )
    engine.load()
    return engine


@pytest.fixture(scope="module")
def hunyuan_t2v(checkpoints: dict[str, Path]) -> HunyuanEngine:
    engine = HunyuanEngine(
        str(checkpoints["hunyuanvideo-1.5-t2v"]),
        "cpu",
        {**tiny_options("hunyuanvideo-1.5-t2v"), "steps": STEPS},
    )
    engine.load()
    return engine


@pytest.fixture(scope="module")
def hunyuan_i2v(checkpoints: dict[str, Path]) -> HunyuanEngine:
    engine = HunyuanEngine(
        str(checkpoints["hunyuanvideo-1.5-i2v"]),
        "cpu",
        {**tiny_options("hunyuanvideo-1.5-i2v"), "steps": STEPS},
    )
    engine.load()
    return engine


# ---- LTX-Video ------------------------------------------------------------------------------


def test_ltx_checkpoint_serves_text_and_image_at_multiples_of_32_and_8k_plus_1_frames(
    ltx: LTXEngine,
) -> None:
    assert (ltx.supports_text_to_video, ltx.supports_image_to_video) == (True, True)
    spec = make_spec(width=1280, height=720, num_frames=24)  # 1 s at 30 fps: 30 -> 33 frames
    from_text = ltx.generate(spec, None, ignore_steps)
    red = ltx.generate(spec, picture((255, 0, 0)), ignore_steps)
    blue = ltx.generate(spec, picture((0, 0, 255)), ignore_steps)
    for clip in (from_text, red, blue):
        assert clip.frames.shape == (33, 64, 96, 3)
        assert clip.fps == 30
    assert not np.array_equal(red.frames, blue.frames)
    assert not np.array_equal(from_text.frames, red.frames)


def test_ltx_runs_the_cards_distilled_schedule(checkpoints: dict[str, Path]) -> None:
    """The catalog's 0.9.7-distilled entry sets the card's eight timesteps: eight steps run
    (progress counts them), at exactly those timesteps."""
    model = CATALOG["ltx-video-0.9.7-distilled"]
    options = model.engine_options()
    assert len(options["timesteps"]) == 8 and options["guidance_max"] == 1.0
    engine = LTXEngine(
        str(checkpoints["ltx-video"]),
        "cpu",
        {**tiny_options("ltx-video"), "timesteps": options["timesteps"], "guidance_max": 1.0},
    )
    engine.load()
    seen: list[float] = []
    engine._text_pipeline.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(float(kwargs["timestep"].flatten()[0])),
        with_kwargs=True,
    )
    calls: list[tuple[int, int]] = []
    clip = engine.generate(make_spec(), None, lambda done, total: calls.append((done, total)))
    # One pass per step (guidance 1: no unconditional pass), at the card's timesteps.
    np.testing.assert_allclose(seen, options["timesteps"], atol=1e-3)
    assert calls == [(unit, 10) for unit in range(1, 11)]  # prompt, 8 steps, decode
    assert clip.meta["steps"] == 8 and clip.meta["guidance_scale"] == 1.0


def test_ltx_engine_frames_equal_plain_diffusers_for_the_same_seed(
    ltx: LTXEngine, checkpoints: dict[str, Path]
) -> None:
    from diffusers import LTXConditionPipeline

    spec = make_spec(width=96, height=64, num_frames=24, seed=5, prompt="a red kite")
    clip = ltx.generate(spec, None, ignore_steps)
    pipeline = LTXConditionPipeline.from_pretrained(checkpoints["ltx-video"])
    plain = plain_diffusers_frames(
        pipeline,
        5,
        width=96,
        height=64,
        num_frames=33,
        frame_rate=30,
        num_inference_steps=STEPS,
        guidance_scale=5.0,  # cfg_scale 0.5 on the default 1..9 range
        decode_timestep=0.05,
        decode_noise_scale=0.025,
    )
    np.testing.assert_array_equal(clip.frames, plain)


def test_ltx_long_clip_is_chained_through_its_image_path(checkpoints: dict[str, Path]) -> None:
    engine = LTXEngine(
        str(checkpoints["ltx-video"]),
        "cpu",
        {**tiny_options("ltx-video"), "steps": STEPS, "max_native_frames": 41},
    )
    engine.load()
    clip = engine.generate(make_spec(num_frames=48), None, ignore_steps)  # 2 s: 60 -> 57
    assert clip.frames.shape[0] == 57
    assert (clip.meta["segments"], clip.meta["frames_capped"]) == (2, False)


# ---- HunyuanVideo-1.5 -----------------------------------------------------------------------


def test_hunyuan_checkpoints_serve_one_task_each(
    hunyuan_t2v: HunyuanEngine, hunyuan_i2v: HunyuanEngine
) -> None:
    assert (hunyuan_t2v.supports_text_to_video, hunyuan_t2v.supports_image_to_video) == (
        True,
        False,
    )
    assert (hunyuan_i2v.supports_text_to_video, hunyuan_i2v.supports_image_to_video) == (
        False,
        True,
    )
    with pytest.raises(GenerationError, match="send an input image"):
        hunyuan_i2v.generate(make_spec(), None, ignore_steps)


@pytest.mark.parametrize(
    ("size", "native"),
    [((1280, 720), (80, 48)), ((720, 1280), (48, 80)), ((960, 960), (64, 64))],
)
def test_hunyuan_image_to_video_renders_exactly_the_native_size_for_the_ratio(
    hunyuan_i2v: HunyuanEngine, size: tuple[int, int], native: tuple[int, int]
) -> None:
    """The pipeline would pick its own size bucket from the picture; the engine pins it."""
    spec = make_spec(model=I2V, width=size[0], height=size[1], num_frames=8)
    clip = hunyuan_i2v.generate(spec, picture((255, 0, 0), (100, 100)), ignore_steps)
    assert clip.frames.shape[1:3] == (native[1], native[0])
    assert clip.frames.shape[0] == 9  # 1/3 s at 24 fps: 8 frames -> 4k+1


def test_hunyuan_guidance_is_per_call_and_leaves_the_loaded_guider_alone(
    hunyuan_t2v: HunyuanEngine,
) -> None:
    pipeline = hunyuan_t2v._text_pipeline
    calls = [0]
    hook = pipeline.transformer.register_forward_pre_hook(
        lambda *_: calls.__setitem__(0, calls[0] + 1)
    )
    try:
        unguided = hunyuan_t2v.generate(make_spec(cfg_scale=0.0), None, ignore_steps)
        unguided_passes = calls[0]
        calls[0] = 0
        guided = hunyuan_t2v.generate(make_spec(cfg_scale=0.5), None, ignore_steps)
    finally:
        hook.remove()
    # Guidance 1.0 runs one pass per step, guidance 5.0 two (with and without the prompt).
    assert (unguided_passes, calls[0]) == (STEPS, 2 * STEPS)
    assert (unguided.meta["guidance_scale"], guided.meta["guidance_scale"]) == (1.0, 5.0)
    assert hunyuan_t2v._loaded_guider.guidance_scale == 6.0  # as the checkpoint ships it
    assert not np.array_equal(unguided.frames, guided.frames)


def test_hunyuan_progress_counts_steps_and_cancel_stops_within_one(
    hunyuan_t2v: HunyuanEngine,
) -> None:
    calls: list[tuple[int, int]] = []
    hunyuan_t2v.generate(make_spec(), None, lambda done, total: calls.append((done, total)))
    assert calls == [(unit, STEPS + 2) for unit in range(1, STEPS + 3)]

    decoded = [0]
    hook = hunyuan_t2v._text_pipeline.vae.register_forward_pre_hook(
        lambda *_: decoded.__setitem__(0, decoded[0] + 1)
    )
    seen: list[int] = []

    def cancel_at_first_step(done: int, total: int) -> None:
        seen.append(done)
        if done == 2:  # the first denoising step (1 is the prompt)
            raise Cancelled

    try:
        with pytest.raises(Cancelled):
            hunyuan_t2v.generate(make_spec(), None, cancel_at_first_step)
    finally:
        hook.remove()
    assert seen == [1, 2]
    assert decoded == [0]


def test_hunyuan_engine_frames_equal_plain_diffusers_for_the_same_seed(
    hunyuan_t2v: HunyuanEngine, checkpoints: dict[str, Path]
) -> None:
    from diffusers import HunyuanVideo15Pipeline

    spec = make_spec(width=80, height=48, num_frames=8, seed=6, prompt="a red kite")
    clip = hunyuan_t2v.generate(spec, None, ignore_steps)
    pipeline = HunyuanVideo15Pipeline.from_pretrained(checkpoints["hunyuanvideo-1.5-t2v"])
    pipeline.guider = pipeline.guider.new(guidance_scale=5.0)
    plain = plain_diffusers_frames(
        pipeline,
        6,
        width=80,
        height=48,
        num_frames=9,
        num_inference_steps=STEPS,
    )
    np.testing.assert_array_equal(clip.frames, plain)


@pytest.mark.parametrize("arch", ["ltx-video", "hunyuanvideo-1.5-t2v", "hunyuanvideo-1.5-i2v"])
def test_tiny_builders_are_deterministic_per_seed(arch: str, tmp_path: Path) -> None:
    def weights(folder: Path) -> bytes:
        return (folder / "transformer" / "diffusion_pytorch_model.safetensors").read_bytes()

    first = build_tiny(arch, tmp_path / "a", seed=0)
    again = build_tiny(arch, tmp_path / "b", seed=0)
    other = build_tiny(arch, tmp_path / "c", seed=1)
    assert weights(first) == weights(again)
    assert weights(first) != weights(other)


def test_hunyuan_tokenizer_survives_the_save_and_load_round_trip(
    hunyuan_t2v: HunyuanEngine,
) -> None:
    """A Qwen tokenizer that loads back near-empty is the known trap of offline builds."""
    from reelforge.testing.tiny_hunyuan import _qwen_tokenizer

    loaded = hunyuan_t2v._text_pipeline.tokenizer
    built = _qwen_tokenizer()
    text = "a red kite over the sea, 'HELLO'"
    assert len(loaded) == len(built) == 259
    assert loaded(text).input_ids == built(text).input_ids
    assert len(loaded(text).input_ids) == len(text.encode())  # one token per byte


@pytest.fixture(scope="module")
def plain_ltx_checkpoint(
    checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The tiny LTX weights saved as an `LTXPipeline`, the layout of the releases before 0.9.7."""
    from diffusers import LTXConditionPipeline, LTXPipeline

    components = LTXConditionPipeline.from_pretrained(checkpoints["ltx-video"]).components
    folder = tmp_path_factory.mktemp("tiny-ltx-plain")
    LTXPipeline(**components).save_pretrained(folder)
    return folder


def test_older_ltx_layout_serves_both_tasks_through_a_sibling_pipeline(
    plain_ltx_checkpoint: Path,
) -> None:
    options = {**tiny_options("ltx-video"), "steps": STEPS, "max_native_frames": 41}
    engine = LTXEngine(str(plain_ltx_checkpoint), "cpu", options)
    engine.load()
    assert type(engine._text_pipeline).__name__ == "LTXPipeline"
    assert type(engine._image_pipeline).__name__ == "LTXImageToVideoPipeline"
    assert engine._image_pipeline.transformer is engine._text_pipeline.transformer  # no copy
    spec = make_spec(num_frames=48)  # 2 s at 30 fps: two segments of at most 41 frames
    from_text = engine.generate(spec, None, ignore_steps)
    from_image = engine.generate(spec, picture((255, 0, 0)), ignore_steps)
    for clip in (from_text, from_image):
        assert clip.frames.shape == (57, 64, 96, 3)
        assert clip.meta["segments"] == 2
    assert not np.array_equal(from_text.frames, from_image.frames)


@pytest.mark.parametrize(
    ("engine_class", "arch"),
    [
        (LTXEngine, "plain-ltx"),
        (HunyuanEngine, "hunyuanvideo-1.5-t2v"),
    ],
)
def test_an_explicit_schedule_is_refused_where_the_pipeline_cannot_take_one(
    engine_class: type[LTXEngine | HunyuanEngine],
    arch: str,
    checkpoints: dict[str, Path],
    plain_ltx_checkpoint: Path,
) -> None:
    folder = plain_ltx_checkpoint if arch == "plain-ltx" else checkpoints[arch]
    engine = engine_class(str(folder), "cpu", {"timesteps": [1000, 500]})
    with pytest.raises(ValueError, match=r"option timesteps: .* takes no explicit schedule"):
        engine.load()


def test_hunyuan_refuses_a_lora_before_loading_weights(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    lora = tmp_path / "fast.safetensors"
    lora.write_bytes(b"not read")
    engine = HunyuanEngine(
        str(checkpoints["hunyuanvideo-1.5-t2v"]),
        "cpu",
        {**tiny_options("hunyuanvideo-1.5-t2v"), "lora": str(lora)},
    )
    with pytest.raises(ValueError, match=r"hunyuan option lora: .* cannot load LoRAs"):
        engine.load()
    assert engine._text_pipeline is None


@pytest.mark.parametrize(
    ("engine_class", "arch", "frames"),
    [(LTXEngine, "ltx-video", 9), (HunyuanEngine, "hunyuanvideo-1.5-t2v", 5)],
)
def test_compiled_engine_warms_up_at_load_and_matches_eager(
    engine_class: type[LTXEngine | HunyuanEngine],
    arch: str,
    frames: int,
    checkpoints: dict[str, Path],
) -> None:
    # The longest clip is the request's length, so the request reuses the warm-up's graphs.
    options = {
        **tiny_options(arch),
        "steps": STEPS,
        "max_native_frames": frames,
        "chain_overlap": 1,
    }
    eager = engine_class(str(checkpoints[arch]), "cpu", options)
    compiled = engine_class(str(checkpoints[arch]), "cpu", {**options, "compile": True})
    for engine in (eager, compiled):
        engine.load()
    spec = make_spec(seed=21, num_frames=4)
    clip = compiled.generate(spec, None, ignore_steps)
    reference = eager.generate(spec, None, ignore_steps)
    assert clip.meta["compiled"] is True
    assert clip.frames.shape == reference.frames.shape
    assert clip.frames.shape[0] == frames
    difference = np.abs(clip.frames.astype(int) - reference.frames.astype(int))
    assert difference.max() <= 3
