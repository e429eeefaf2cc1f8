"""The micro engine as a worker serves it: warnings for prompts outside its world, one torch
thread, a quiet server log (no progress bars, no torch warnings)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reelforge.engines.micro import MicroEngine
from reelforge.engines.registry import ModelEntry, Registry
from reelforge.jobs import JobStatus, JobStore
from reelforge.micro.familiarity import FAMILIAR_SIMILARITY
from reelforge.micro.world import all_scenes, canonical_prompt, paraphrases
from reelforge.storage import open_storage
from reelforge.worker.heartbeat import Heartbeat
from reelforge.worker.runner import JobRunner
from tests.conftest import make_spec

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL = "reelforge/micro"

FOREIGN_PROMPTS = [
    "A cheerful white raccoon in a library",
    "A red fox in the snow",
    "a city skyline at night",
    "a dog running on the beach",
    "hello",
]
# In the world but worded as no world prompt is (not in the check's reference).
NEW_IN_WORLD_PROMPTS = [
    "a red ball going right",
    "a square",
    "blue box sliding down on black",
    "a lime circle floating up against black",
    "a violet triangle going down on grey",
]


@pytest.fixture(scope="module")
def engine() -> MicroEngine:
    engine = MicroEngine(None, options={"steps": 1})
    engine.load()
    return engine


def test_every_world_prompt_is_familiar_and_foreign_ones_are_not(engine: MicroEngine) -> None:
    scenes = all_scenes()
    world_prompts = [canonical_prompt(s) for s in scenes]
    world_prompts += [p for s in scenes for p in paraphrases(s, held_out=True)]
    prompts = world_prompts + NEW_IN_WORLD_PROMPTS + FOREIGN_PROMPTS
    pooled = engine._generator.text_encoder.encode(prompts).pooled
    found = {p: engine._world.similarity(v) for p, v in zip(prompts, pooled, strict=True)}
    familiar = {prompt for prompt, value in found.items() if value >= FAMILIAR_SIMILARITY}
    assert familiar >= set(world_prompts + NEW_IN_WORLD_PROMPTS)
    assert not familiar & set(FOREIGN_PROMPTS), {p: found[p] for p in FOREIGN_PROMPTS}


def test_a_foreign_prompt_gets_a_warning_naming_the_world(engine: MicroEngine) -> None:
    spec = make_spec(MODEL, prompt="A cheerful white raccoon in a library")
    clip = engine.generate(spec, None, lambda *_: None)
    [warning] = clip.meta["warnings"]
    assert "'A cheerful white raccoon in a library' is far from that (similarity 0." in warning
    assert "circle, square or triangle" in warning and "reelforge models pull" in warning
    assert clip.meta["prompt_similarity"] < FAMILIAR_SIMILARITY


def test_a_world_prompt_gets_no_warning(engine: MicroEngine) -> None:
    spec = make_spec(MODEL, prompt="a purple square moving down on a gray background")
    clip = engine.generate(spec, None, lambda *_: None)
    assert "warnings" not in clip.meta
    assert clip.meta["prompt_similarity"] == pytest.approx(1.0, abs=1e-3)


@pytest.fixture
def runner(store: JobStore, engine: MicroEngine, tmp_path: Path) -> Iterator[JobRunner]:
    heartbeat = Heartbeat(store, "w1", lease_seconds=60, interval_s=30)  # never beats here
    registry = Registry([ModelEntry(MODEL, "micro")])
    storage = open_storage(str(tmp_path / "files"))
    yield JobRunner(store, storage, registry, {MODEL: engine}, heartbeat)


def test_the_worker_logs_the_warning_with_the_job_id_and_stores_it(
    store: JobStore, runner: JobRunner, caplog: pytest.LogCaptureFixture
) -> None:
    job = store.create_job(make_spec(MODEL, prompt="a city skyline at night"))
    lease = store.claim_next_job("w1", [MODEL], lease_seconds=60)
    assert lease is not None
    with caplog.at_level(logging.INFO, logger="reelforge.worker.runner"):
        runner.run(lease)
    done = store.get_job(job.id)
    assert done is not None and done.status is JobStatus.SUCCEEDED and done.result is not None
    [warning] = done.result.meta["warnings"]
    assert f"job {job.id}: {warning}" in caplog.messages


# A worker's start, as `worker_loop` does it: logging to stderr, then every engine loaded.
_LOAD_LIKE_A_WORKER = """
import json, sys, torch
from reelforge.engines.registry import ModelEntry, Registry
from reelforge.logs import configure_logging
from reelforge.worker.runner import load_engines
torch.set_num_threads(3)  # whatever torch chose for this machine, the engine decides
configure_logging()
entry = ModelEntry("reelforge/micro", "micro", options=json.loads(sys.argv[1]))
load_engines(Registry([entry]), "cpu")
print(json.dumps({"threads": torch.get_num_threads()}))
"""


def load_like_a_worker(options: dict[str, object]) -> tuple[dict[str, object], str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)  # what a user's shell has: bars on
    done = subprocess.run(
        [sys.executable, "-c", _LOAD_LIKE_A_WORKER, json.dumps(options)],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return json.loads(done.stdout.splitlines()[-1]), done.stderr


@pytest.fixture(scope="module")
def worker_start() -> tuple[dict[str, object], str]:
    return load_like_a_worker({})


def test_a_worker_runs_the_micro_engine_on_one_torch_thread(
    worker_start: tuple[dict[str, object], str],
) -> None:
    found, _ = worker_start
    assert found["threads"] == 1


def test_loading_the_micro_engine_draws_no_progress_bar(
    worker_start: tuple[dict[str, object], str],
) -> None:
    _, stderr = worker_start
    assert "loading engine micro for reelforge/micro" in stderr  # the log is captured
    assert "Loading weights" not in stderr and "it/s]" not in stderr, stderr


def test_the_threads_option_is_checked() -> None:
    with pytest.raises(ValueError, match="threads"):
        MicroEngine(None, options={"threads": 0}).load()


# An input image arrives as a read-only array (`np.asarray` of a PIL image). torch warns
# about that once per process, so this runs in a process of its own, with a tiny network.
_FIRST_FRAME_FROM_AN_IMAGE = """
import json, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import numpy as np
    from PIL import Image
    from reelforge.micro.generator import MicroGenerator
    from reelforge.micro.network import MicroNet, MicroNetConfig
    from reelforge.micro.text import TextFeatures

    class NoText:
        def encode(self, prompts):
            return TextFeatures.empty(len(prompts))

    net = MicroNet(MicroNetConfig(channels=(16, 32), cond_dim=32, groups=8)).eval()
    frame = np.asarray(Image.new("RGB", (32, 32), (200, 30, 30)))
    assert not frame.flags.writeable
    [clip] = MicroGenerator(net, {}, NoText()).generate(["x"], [1], steps=1, first_frame=frame)
ours = [f"{w.filename}:{w.lineno}: {w.message}" for w in caught if "reelforge" in w.filename]
print(json.dumps({"pixel": clip[0, 16, 16].tolist(), "warnings": ours}))
"""


def test_an_input_image_draws_no_warning() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _FIRST_FRAME_FROM_AN_IMAGE],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["warnings"] == []
    assert found["pixel"] == [200, 30, 30]  # the image is the first frame
