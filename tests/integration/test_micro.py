"""The micro model: its world, its evaluator, sampling, the shipped checkpoint, training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reelforge.cli.main import main
from reelforge.engines.micro import MicroEngine
from reelforge.errors import GenerationError
from reelforge.micro import evaluate
from reelforge.micro.canonical import PromptCanonicaliser
from reelforge.micro.checkpoint import SHIPPED_CHECKPOINT, load_checkpoint, save_checkpoint
from reelforge.micro.diffusion import sample
from reelforge.micro.evaluate import read_clip
from reelforge.micro.generator import MicroGenerator
from reelforge.micro.network import MicroNet, MicroNetConfig
from reelforge.micro.text import MAX_TOKENS, TEXT_DIM, TextEncoder, TextFeatures
from reelforge.micro.train import PromptBank, fit_attribute_projection
from reelforge.micro.world import (
    BACKGROUNDS,
    CLIP_FRAMES,
    CLIP_SIZE,
    COLOURS,
    DIRECTIONS,
    SHAPES,
    Scene,
    all_scenes,
    canonical_prompt,
    clip_frames_for,
    paraphrases,
    render_clip,
)
from reelforge.spec import GenerationSpec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shipped() -> MicroGenerator:
    return MicroGenerator.from_checkpoint(SHIPPED_CHECKPOINT)


def test_world_has_every_combination_and_distinct_prompts() -> None:
    scenes = all_scenes()
    assert len(scenes) == 6 * 3 * 4 * 2
    prompts = {canonical_prompt(scene) for scene in scenes}
    assert len(prompts) == len(scenes)
    assert "a red circle moving left on a black background" in prompts
    scene = Scene("red", "circle", "left", "black")
    held_out = paraphrases(scene, held_out=True)
    assert any("crimson ball drifting to the left" in p for p in held_out)
    # Held-out words never appear in training paraphrases.
    assert not set(held_out) & set(paraphrases(scene, held_out=False))


def test_render_clip_is_seeded_and_moves_the_right_way() -> None:
    scene = Scene("yellow", "square", "up", "gray")
    a, coverage = render_clip(scene, np.random.default_rng(7))
    b, _ = render_clip(scene, np.random.default_rng(7))
    assert a.shape == (CLIP_FRAMES, CLIP_SIZE, CLIP_SIZE, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    rows = [np.nonzero(frame)[0].mean() for frame in coverage]
    assert rows[-1] < rows[0] - 10  # "up" is towards row 0


def test_a_10_s_clip_moves_at_the_same_speed_twice_as_far() -> None:
    assert [clip_frames_for(s) for s in (1, 5, 6, 10, 12)] == [16, 16, 20, 32, 32]
    scene = Scene("red", "circle", "right", "black")
    _, short_cover = render_clip(scene, np.random.default_rng(3))
    long, long_cover = render_clip(scene, np.random.default_rng(3), frames=32)
    assert long.shape == (32, CLIP_SIZE, CLIP_SIZE, 3)

    def centres(coverage: np.ndarray) -> np.ndarray:
        columns = np.arange(CLIP_SIZE)
        return (coverage.sum(axis=1) * columns).sum(axis=1) / coverage.sum(axis=(1, 2))

    # The middle frames of the long clip are the short clip's path, frame for frame.
    np.testing.assert_allclose(np.diff(centres(long_cover))[12:18].mean(), 16 / 15, rtol=0.02)
    np.testing.assert_allclose(np.diff(centres(short_cover)).mean(), 16 / 15, rtol=0.02)
    assert centres(long_cover)[-1] - centres(long_cover)[0] > 1.6 * 16


def test_evaluator_reads_10_s_clips_and_tells_a_slowed_5_s_clip_apart() -> None:
    rng = np.random.default_rng(2)
    for scene in all_scenes()[::5]:
        long, _ = render_clip(scene, rng, frames=32)
        assert all(read_clip(long).matches_long(scene).values()), scene
        short, _ = render_clip(scene, rng)
        slowed = read_clip(short.repeat(2, axis=0))  # each frame shown twice as long
        assert slowed.matches(scene)["direction"] and not slowed.matches_long(scene)["direction"]


def test_evaluator_reads_every_rendered_scene_correctly() -> None:
    """The evaluator must be right about ground truth before it can judge the model. Three
    clips per scene, on the seed where reading at the model's 32 pixels without scaling up
    was seen to fail (3 of these 432)."""
    rng = np.random.default_rng(1)
    wrong = []
    for scene in [scene for scene in all_scenes() for _ in range(3)]:
        frames, _ = render_clip(scene, rng)
        reading = read_clip(frames)
        if not all(reading.matches(scene).values()) or reading.background != scene.background:
            wrong.append((scene, reading))
    assert wrong == []


def test_evaluator_scales_small_clips_up_by_a_whole_factor() -> None:
    wide = np.random.default_rng(0).uniform(0, 255, (2, 18, 32, 3)).astype(np.float32)
    scaled = evaluate._scaled_up(wide, 64)
    assert scaled.shape == (2, 72, 128, 3) and scaled.dtype == np.float32  # 18 -> 72 (x4)
    assert scaled.min() >= 0 and scaled.max() <= 255
    big = wide.repeat(4, axis=1).repeat(4, axis=2)
    assert evaluate._scaled_up(big, 64) is big  # 72 pixels already: read as it is


def test_evaluator_reports_unknowns_for_an_empty_clip() -> None:
    blank = np.full((CLIP_FRAMES, CLIP_SIZE, CLIP_SIZE, 3), 128, dtype=np.uint8)
    reading = read_clip(blank)
    assert (reading.colour, reading.shape, reading.direction) == (None, None, None)
    assert reading.background == "gray"


def test_sampling_pins_the_first_frame_and_is_seeded() -> None:
    torch.manual_seed(0)
    net = MicroNet(MicroNetConfig(channels=(16, 32), cond_dim=32, groups=8)).eval()
    image = torch.rand(1, 3, CLIP_SIZE, CLIP_SIZE) * 2 - 1
    noise = torch.randn(1, 3, CLIP_FRAMES, CLIP_SIZE, CLIP_SIZE)
    steps_seen: list[int] = []
    text = TextFeatures(
        torch.randn(1, TEXT_DIM),
        torch.randn(1, MAX_TOKENS, TEXT_DIM),
        torch.ones(1, MAX_TOKENS) > 0,
    )
    clip = sample(
        net,
        text,
        TextFeatures.empty(1),
        noise=noise,
        steps=3,
        guidance=2.0,
        first_frame=image,
        on_step=lambda done, total: steps_seen.append(done),
    )
    assert steps_seen == [1, 2, 3]
    torch.testing.assert_close(clip[:, :, 0], image)
    again = sample(net, text, TextFeatures.empty(1), noise=noise, steps=3, guidance=2.0)
    free = sample(net, text, TextFeatures.empty(1), noise=noise, steps=3, guidance=2.0)
    torch.testing.assert_close(again, free)  # no first frame: still a function of the noise
    assert not torch.allclose(again[:, :, 0], image)


def test_the_network_draws_clips_of_any_even_length() -> None:
    """A 10 s clip (32 frames) goes through the network trained at 16; the trained length's
    coordinate features are the stored ones, a longer clip's reach further out in time."""
    torch.manual_seed(0)
    net = MicroNet(MicroNetConfig(channels=(16, 32), cond_dim=32, groups=8)).eval()
    text = TextFeatures.empty(1)
    with torch.no_grad():
        out = net(torch.randn(1, 3, 32, CLIP_SIZE, CLIP_SIZE), torch.tensor([0.5]), text)
    assert out.shape == (1, 3, 32, CLIP_SIZE, CLIP_SIZE)
    assert net._coordinates(CLIP_FRAMES) is net.coordinates
    times = net._coordinates(32)[0, 0, :, 0, 0]
    torch.testing.assert_close(times[4:12], net.coordinates[0, 0, :, 0, 0])  # the same times
    assert float(times.max()) == pytest.approx(15 / 7)


def test_shipped_checkpoint_is_small_and_self_describing() -> None:
    assert SHIPPED_CHECKPOINT.stat().st_size <= 20 * 1024 * 1024
    net, record = load_checkpoint(SHIPPED_CHECKPOINT)
    assert record["steps_done"] == record["train"]["steps"]
    assert sum(p.numel() for p in net.parameters()) > 1_000_000


def test_shipped_model_draws_the_prompted_scene(shipped: MicroGenerator) -> None:
    """A sample of the world (the full measure is `reelforge micro eval`, where the shipped
    checkpoint gets colour, shape and direction right in 100 % of 432 canonical clips); one
    miss in twelve is allowed, so the test is not a copy of that figure."""
    scenes = all_scenes()[::13]  # 12 scenes: every colour, shape x direction, background
    clips = shipped.generate(
        [canonical_prompt(s) for s in scenes], [900_000 + i for i in range(len(scenes))]
    )
    readings = [read_clip(c).matches(s) for s, c in zip(scenes, clips, strict=True)]
    for attribute in ("colour", "shape", "direction"):
        hits = sum(r[attribute] for r in readings)
        assert hits >= 11, (attribute, hits, readings)


def test_engine_renders_a_seeded_clip_and_stops_when_asked() -> None:
    engine = MicroEngine(None)
    engine.load()
    spec = GenerationSpec(
        model="reelforge/micro",
        prompt="a green triangle moving down on a black background",
        width=1280,
        height=720,
        num_frames=120,
        seed=5,
    )
    steps: list[tuple[int, int]] = []
    clip = engine.generate(spec, None, lambda done, total: steps.append((done, total)))
    assert clip.frames.shape == (CLIP_FRAMES, CLIP_SIZE, CLIP_SIZE, 3)
    assert clip.fps == pytest.approx(CLIP_FRAMES / 5)
    assert steps[-1] == (20, 20)
    np.testing.assert_array_equal(engine.generate(spec, None, lambda *_: None).frames, clip.frames)
    ten = engine.generate(spec.model_copy(update={"num_frames": 240}), None, lambda *_: None)
    assert ten.frames.shape[0] == 32 and ten.meta["native_frames"] == 32
    assert ten.fps == pytest.approx(clip.fps)  # twice the frames, not the same ones slowed
    scene = Scene("green", "triangle", "down", "black")
    assert ten.meta.get("conditioned_prompt") is None
    assert read_clip(ten.frames).matches_long(scene)["direction"]

    calls = 0

    def cancel_at_third(done: int, total: int) -> None:
        nonlocal calls
        calls += 1
        if done == 3:
            raise GenerationError("canceled", name="canceled")

    with pytest.raises(GenerationError):
        engine.generate(spec, None, cancel_at_third)
    assert calls == 3  # stopped at the step that asked, nothing ran after it


def test_a_checkpoint_of_another_size_samples_at_its_own_size(tmp_path: Path) -> None:
    """Sizes come from the checkpoint, not the world's constants: a 64-pixel checkpoint (the
    layout of earlier releases) still loads, samples and serves."""
    config = MicroNetConfig(channels=(16, 32), cond_dim=32, groups=8, patch=8, clip_size=64)
    path = tmp_path / "micro-64.safetensors"
    save_checkpoint(MicroNet(config), path, {"steps_done": 0})
    engine = MicroEngine(str(path), options={"steps": 2})
    engine.load()
    spec = GenerationSpec(
        model="reelforge/micro", prompt="a red circle", width=64, height=64, num_frames=16, seed=1
    )
    clip = engine.generate(spec, Image.new("RGB", (80, 80), (200, 30, 30)), lambda *_: None)
    assert clip.frames.shape == (CLIP_FRAMES, 64, 64, 3)
    assert (clip.meta["native_width"], clip.meta["native_height"]) == (64, 64)
    np.testing.assert_allclose(clip.frames[0, 32, 32], (200, 30, 30), atol=2)  # the image


def test_training_smoke_run_writes_a_loadable_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "micro.safetensors"
    code = main(
        ["micro", "train", "--out", str(out), "--steps", "2", "--batch-size", "2", "--seed", "3"]
    )
    assert code == 0
    generator = MicroGenerator.from_checkpoint(out)
    assert generator.record["steps_done"] == 2
    [clip] = generator.generate(["a blue square moving left on a gray background"], [1], steps=2)
    assert clip.shape == (CLIP_FRAMES, CLIP_SIZE, CLIP_SIZE, 3)


def test_attribute_projection_tells_every_attribute_apart() -> None:
    """The fitted projection separates each attribute of every canonical prompt, "left" from
    "right" included, which the raw sentence embeddings barely do (0.98 cosine)."""
    bank = PromptBank(all_scenes(), TextEncoder())
    mean, projection = fit_attribute_projection(bank)
    assert projection.shape == (TEXT_DIM, 5 + 2 + 3 + 1)
    canonical = (bank.features.pooled[: len(bank.scenes)] - mean) @ projection
    start = 0
    for attribute, values in (
        ("colour", COLOURS),
        ("shape", SHAPES),
        ("direction", DIRECTIONS),
        ("background", BACKGROUNDS),
    ):
        names = list(values)
        block = canonical[:, start : start + len(names) - 1]
        start += len(names) - 1
        labels = torch.tensor([names.index(getattr(s, attribute)) for s in bank.scenes])
        centres = torch.stack([block[labels == k].mean(dim=0) for k in range(len(names))])
        nearest = torch.cdist(block, centres).argmin(dim=1)
        assert torch.equal(nearest, labels), attribute


def _held_out_words() -> set[str]:
    """Every word of world.py's held-out phrases that none of its other phrases use."""
    from reelforge.micro import world

    held, seen = set(), set()
    for table in (
        world._COLOUR_WORDS,
        world._SHAPE_WORDS,
        world._DIRECTION_WORDS,
        world._BACKGROUND_WORDS,
    ):
        for value, (training, held_out) in table.items():
            seen |= set(_split(value)) | {w for phrase in training for w in _split(phrase)}
            held |= {w for phrase in held_out for w in _split(phrase)}
    seen |= {w for scene in all_scenes() for w in _split(canonical_prompt(scene))}
    return held - seen


def _split(text: str) -> list[str]:
    return text.replace("-", " ").split()


def test_the_vocabulary_and_the_canonicaliser_never_see_a_held_out_word() -> None:
    from reelforge.micro.canonical import _FILLER
    from reelforge.micro.vocabulary import DEFINITION_SHAPE_WORDS, SYNONYMS

    held = _held_out_words()
    assert {"crimson", "lemon", "ball", "pyramid", "drifting", "sinking", "slate"} <= held
    for attribute, values in SYNONYMS.items():
        for value, words in values.items():
            assert words[0] == value, (attribute, value)
            for entry in words:
                assert not set(_split(entry)) & held, (attribute, value, entry)
                # No compounds either ("clover" holds the held-out phrases' "over", by chance).
                assert not any(h in entry.replace(" ", "") for h in held - {"over"}), entry
    assert not _FILLER & held
    definition_words = {w for words in DEFINITION_SHAPE_WORDS.values() for w in words}
    assert not any(h in word for h in held for word in definition_words)


@pytest.fixture(scope="module")
def canonicaliser() -> PromptCanonicaliser:
    return PromptCanonicaliser(TextEncoder())


def test_canonical_prompts_map_to_themselves(canonicaliser: PromptCanonicaliser) -> None:
    for scene in all_scenes():
        prompt = canonical_prompt(scene)
        assert canonicaliser.read(prompt).scene == scene
        assert canonicaliser.canonicalise(prompt) == prompt


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        # Free-form, in the held-out paraphrases' style, with words of no list of world.py.
        (
            "please make a video of a ruby orb gliding to the right over a jet-black backdrop",
            Scene("red", "circle", "right", "black"),
        ),
        (
            "an amber cube plunging downwards against a silver backdrop",
            Scene("yellow", "square", "down", "gray"),
        ),
        ("a dark blue disc going up on a grey background", Scene("blue", "circle", "up", "gray")),
        (
            "show me a mint-green wedge heading leftwards in front of an ashen wall",
            Scene("green", "triangle", "left", "gray"),
        ),
        # Unknown words read by the encoder's word embeddings.
        ("a pearly rhombus climbing on black", Scene("white", "square", "up", "black")),
    ],
)
def test_the_canonicaliser_reads_free_form_prompts(
    canonicaliser: PromptCanonicaliser, prompt: str, expected: Scene
) -> None:
    assert canonicaliser.read(prompt).scene == expected
    assert canonicaliser.canonicalise(prompt) == canonical_prompt(expected)


def test_the_canonicaliser_reads_colour_names_through_the_lexicon(
    canonicaliser: PromptCanonicaliser,
) -> None:
    reading = canonicaliser.read("a cobalt orb gliding to the right on black")
    assert reading.scene == Scene("blue", "circle", "right", "black")
    assert reading.sources["colour"] == "lexicon"
    # Unsaturated and light reads as white.
    assert canonicaliser.read("an eggshell orb going up on black").values["colour"] == "white"


def test_the_canonicaliser_reads_shape_words_by_their_definitions_before_embeddings(
    canonicaliser: PromptCanonicaliser,
) -> None:
    # "rectangular block of clay baked ...": a square, where the word's embedding is nearest
    # the triangles' (which a test of this module reading by embeddings alone would get).
    assert canonicaliser._nearest("shape", "brick") != "square"
    reading = canonicaliser.read("a golden brick sliding to the left on a black background")
    assert reading.scene == Scene("yellow", "square", "left", "black")
    assert reading.sources["shape"] == "dictionary"
    assert (
        canonicaliser.canonicalise("a purple coin going up against grey")
        == "a purple circle moving up on a gray background"
    )
    # A word no definition reads falls back on the embedding, as before.
    assert canonicaliser.read("a pearly rhombus climbing on black").sources["shape"] == "embedding"


def test_the_canonicaliser_reads_the_held_out_paraphrases_as_their_scenes(
    canonicaliser: PromptCanonicaliser,
) -> None:
    """What `micro eval` scores on held-out paraphrases is bounded by what the canonicaliser
    reads (a scene read is conditioned on its canonical prompt, which the model follows):
    at least 80 % of them read whole, and the shape, motion and background of every one."""
    read = 0
    for scene in all_scenes():
        [prompt] = paraphrases(scene, held_out=True)
        reading = canonicaliser.read(prompt)
        read += reading.scene == scene
        for attribute in ("shape", "direction", "background"):
            assert reading.values[attribute] == getattr(scene, attribute), prompt
    assert read / len(all_scenes()) >= 0.8


def test_every_vocabulary_paraphrase_is_read_exactly(canonicaliser: PromptCanonicaliser) -> None:
    """What the trainer shows the model in paraphrase (`vocabulary_paraphrase`) is what the
    canonicaliser reads word for word, and it holds no held-out word."""
    from reelforge.micro.vocabulary import vocabulary_paraphrase

    rng = np.random.default_rng(4)
    held = _held_out_words()
    for scene in all_scenes():
        for _ in range(4):
            prompt = vocabulary_paraphrase(scene, rng)
            assert not set(_split(prompt)) & held, prompt
            reading = canonicaliser.read(prompt)
            assert reading.scene == scene and set(reading.sources.values()) == {"word"}, prompt


def test_the_canonicaliser_keeps_words_it_cannot_read(canonicaliser: PromptCanonicaliser) -> None:
    # A colour it cannot place stays the prompt's own word, in the canonical sentence.
    assert (
        canonicaliser.canonicalise("a glossy box sliding to the left on a dark background")
        == "a glossy square moving left on a black background"
    )
    # Far from the world: passed on as written.
    for prompt in ("a cat sleeping on a sofa", "hello", "A cheerful white raccoon in a library"):
        assert canonicaliser.canonicalise(prompt) == prompt


def test_engine_conditions_on_the_canonical_prompt_and_still_warns_far_prompts() -> None:
    engine = MicroEngine(None, options={"steps": 2})
    engine.load()

    def meta(prompt: str) -> dict[str, object]:
        spec = GenerationSpec(
            model="reelforge/micro", prompt=prompt, width=32, height=32, num_frames=16, seed=1
        )
        return engine.generate(spec, None, lambda *_: None).meta

    free_form = meta("please make a video of an amber cube plunging downwards on an ashen wall")
    assert free_form["conditioned_prompt"] == "a yellow square moving down on a gray background"
    assert "warnings" not in free_form
    far = meta("a red car driving to the left on a black road")
    assert far["warnings"] and far["prompt_similarity"] < 0.57  # type: ignore[operator]
    assert "conditioned_prompt" not in meta("a red circle moving left on a black background")
