"""The catalog: open-weight video models reelforge knows how to serve, with their native format.

A registry entry may name a catalog model instead of spelling out a checkpoint and options:

    [models."klingai/v2-master-text-to-video"]
    catalog = "wan2.2-ti2v-5b"

The entry then serves the catalog's Hugging Face checkpoint (from the local cache, or a folder
under `REELFORGE_MODELS_DIR`; `reelforge models pull` downloads it, nothing else does) with
the model's native size, rate, frame limit, steps, guidance and scheduler shift, any of which
the entry's own `options` may still override.

The figures come from the model cards and the diffusers examples of each release.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CATALOG",
    "DEFAULT_MODEL",
    "PULLED_MARKER",
    "CatalogModel",
    "catalog_model",
    "local_checkpoint",
    "pull_folder",
    "size_on_disk",
]


@dataclass(frozen=True)
class CatalogModel:
    """One open-weight model: where its weights live and how it renders natively."""

    name: str
    repo: str
    """Hugging Face repository in the diffusers layout."""
    engine: str
    tiny_arch: str
    """The `reelforge models make-tiny` architecture with this model's layout."""
    text_to_video: bool
    image_to_video: bool
    width: int
    """Native landscape size; portrait requests swap it."""
    height: int
    fps: float
    max_frames: int
    """Longest clip in one pass; longer requests are chained in segments."""
    frame_multiple: int
    """Frame counts are `frame_multiple * k + 1` (the VAE's temporal compression)."""
    steps: int
    guidance: float
    """The model card's guidance scale: what the API's default cfg_scale of 0.5 maps to."""
    flow_shift: float | None
    """The scheduler's shift, where the card sets one other than the checkpoint's."""
    timesteps: tuple[float, ...] | None = None
    """The card's denoising schedule for a step-distilled model (replaces `steps`)."""
    download_gb: float | None = None
    """About how many GB (10^9 bytes) `reelforge models pull` fetches: an estimate from the
    parameter count and stored precision of each component (transformer, text encoder, VAE),
    not a measurement; `models list` shows the hub's exact sum whenever the hub answers."""

    def engine_options(self) -> dict[str, Any]:
        """The registry options that make the engine render this model natively."""
        options: dict[str, Any] = {
            "native_width": self.width,
            "native_height": self.height,
            "native_fps": self.fps,
            "max_native_frames": self.max_frames,
            "steps": self.steps,
            # cfg_scale 0 -> 1.0 (no guidance), 0.5 -> the card's value, 1 -> twice as far.
            "guidance_min": 1.0,
            "guidance_max": 2.0 * self.guidance - 1.0,
        }
        if self.flow_shift is not None:
            options["flow_shift"] = self.flow_shift
        if self.timesteps is not None:
            options["timesteps"] = list(self.timesteps)
        return options

    @property
    def tasks(self) -> str:
        return "+".join(
            task
            for task, served in (("t2v", self.text_to_video), ("i2v", self.image_to_video))
            if served
        )


# Each checkpoint layout: its engine and whether it serves text / image to video. Named as
# `reelforge models make-tiny` names the same layouts (`reelforge.testing.tiny.TINY_ARCHS`,
# which the tests check against this table).
_LAYOUTS: dict[str, tuple[str, bool, bool]] = {
    "wan2.1-t2v": ("wan", True, False),
    "wan2.1-i2v": ("wan", False, True),
    "wan2.2-ti2v": ("wan", True, True),
    "wan2.2-a14b-t2v": ("wan", True, False),
    "wan2.2-a14b-i2v": ("wan", False, True),
    "ltx-video": ("ltx", True, True),
    "hunyuanvideo-1.5-t2v": ("hunyuan", True, False),
    "hunyuanvideo-1.5-i2v": ("hunyuan", False, True),
}


def _model(
    name: str,
    repo: str,
    tiny_arch: str,
    size: tuple[int, int],
    *,
    fps: float,
    max_frames: int,
    frame_multiple: int,
    steps: int,
    guidance: float,
    flow_shift: float | None = None,
    timesteps: tuple[float, ...] | None = None,
    download_gb: float | None = None,
) -> CatalogModel:
    """A model whose engine and tasks are those of its layout (`_LAYOUTS[tiny_arch]`)."""
    engine, text_to_video, image_to_video = _LAYOUTS[tiny_arch]
    return CatalogModel(
        name=name,
        repo=repo,
        engine=engine,
        tiny_arch=tiny_arch,
        text_to_video=text_to_video,
        image_to_video=image_to_video,
        width=size[0],
        height=size[1],
        fps=fps,
        max_frames=max_frames,
        frame_multiple=frame_multiple,
        steps=steps,
        guidance=guidance,
        flow_shift=flow_shift,
        timesteps=timesteps,
        download_gb=download_gb,
    )


def _wan(
    name: str,
    repo: str,
    tiny_arch: str,
    size: tuple[int, int],
    *,
    flow_shift: float,
    fps: float = 16,
    max_frames: int = 81,
    steps: int = 50,
    guidance: float = 5.0,
    download_gb: float | None = None,
) -> CatalogModel:
    """A Wan model: frames 4k+1; the rate, length, steps and guidance default to Wan2.1's."""
    return _model(
        name,
        repo,
        tiny_arch,
        size,
        fps=fps,
        max_frames=max_frames,
        frame_multiple=4,
        steps=steps,
        guidance=guidance,
        flow_shift=flow_shift,
        download_gb=download_gb,
    )


_720P = (1280, 720)

CATALOG: dict[str, CatalogModel] = {
    model.name: model
    for model in (
        # Wan2.1: 16 fps, 81 frames; shift 3.0 at 480p and 5.0 at 720p, as the cards advise.
        # Sizes: the Diffusers conversions keep transformer and UMT5-XXL text encoder (22.7 GB)
        # in float32; the I2V model adds its CLIP image encoder.
        _wan("wan2.1-t2v-1.3b", "Wan-AI/Wan2.1-T2V-1.3B-Diffusers", "wan2.1-t2v", (832, 480),
             flow_shift=3.0, download_gb=29),
        _wan("wan2.1-t2v-14b", "Wan-AI/Wan2.1-T2V-14B-Diffusers", "wan2.1-t2v", _720P,
             flow_shift=5.0, download_gb=80),
        _wan("wan2.1-i2v-14b-720p", "Wan-AI/Wan2.1-I2V-14B-720P-Diffusers", "wan2.1-i2v", _720P,
             flow_shift=5.0, download_gb=91),
        # Wan2.2-TI2V-5B: one set of weights for both tasks, 24 fps, 121 frames at 1280x704.
        _wan("wan2.2-ti2v-5b", "Wan-AI/Wan2.2-TI2V-5B-Diffusers", "wan2.2-ti2v", (1280, 704),
             fps=24, max_frames=121, flow_shift=5.0, download_gb=46),
        # Wan2.2-A14B: two experts; 40 steps; the T2V card's guidance is 4.0 (high-noise
        # expert; 3.0 on the low-noise one) with shift 12, the I2V card's 3.5 with shift 5.
        # Two float32 14B transformers make most of their size.
        _wan("wan2.2-t2v-a14b", "Wan-AI/Wan2.2-T2V-A14B-Diffusers", "wan2.2-a14b-t2v", _720P,
             steps=40, guidance=4.0, flow_shift=12.0, download_gb=137),
        _wan("wan2.2-i2v-a14b", "Wan-AI/Wan2.2-I2V-A14B-Diffusers", "wan2.2-a14b-i2v", _720P,
             steps=40, guidance=3.5, flow_shift=5.0, download_gb=137),
        # LTX-Video 0.9.7-distilled (13B): 1216x704 at 30 fps, clips up to 257 frames (8k+1),
        # guidance-distilled (1.0: no CFG pass) with the card's eight-step schedule.
        _model("ltx-video-0.9.7-distilled", "Lightricks/LTX-Video-0.9.7-distilled", "ltx-video",
               (1216, 704), fps=30, max_frames=257, frame_multiple=8, steps=8, guidance=1.0,
               timesteps=(1000, 993, 987, 981, 975, 909, 725, 0.03), download_gb=47),
        # HunyuanVideo-1.5 (8.3B), 480p releases: 848x480 at 24 fps, 121 frames, 50 steps,
        # guidance 6 and shift 5 as their scheduler and guider configs ship them.
        _model("hunyuanvideo-1.5-480p-t2v", "hunyuanvideo-community/HunyuanVideo-1.5-480p_t2v",
               "hunyuanvideo-1.5-t2v", (848, 480), fps=24, max_frames=121, frame_multiple=4,
               steps=50, guidance=6.0, download_gb=36),
        _model("hunyuanvideo-1.5-480p-i2v", "hunyuanvideo-community/HunyuanVideo-1.5-480p_i2v",
               "hunyuanvideo-1.5-i2v", (848, 480), fps=24, max_frames=121, frame_multiple=4,
               steps=50, guidance=6.0, download_gb=37),
    )
}  # fmt: skip
"""Catalog name -> model, in the order `reelforge models list` shows them."""

DEFAULT_MODEL = "wan2.2-ti2v-5b"
"""Serves both Kling ids in the embedded defaults once its weights are present."""


def catalog_model(name: str) -> CatalogModel:
    try:
        return CATALOG[name]
    except KeyError:
        raise KeyError(f"unknown catalog model {name!r}; known: {', '.join(CATALOG)}") from None


PULLED_MARKER = "reelforge-pull.json"
"""Written into a pulled folder once every file is downloaded and verified."""


def pull_folder(model: CatalogModel, models_dir: Path) -> Path:
    """Where `reelforge models pull` puts `model` under `models_dir` (the setting
    `REELFORGE_MODELS_DIR`, passed down by the caller)."""
    return models_dir.expanduser() / model.repo.split("/")[-1]


def local_checkpoint(model: CatalogModel, models_dir: Path | None) -> Path | None:
    """The folder holding `model`'s complete weights on this machine, or None; never downloads.

    A folder `reelforge models pull` finished under `models_dir` (it has the pull marker;
    None: look at no pulled folder), else the model's snapshot in the Hugging Face cache
    (e.g. from `hf download`), if it has its `model_index.json`.
    """
    if models_dir is not None:
        folder = pull_folder(model, models_dir)
        if (folder / PULLED_MARKER).is_file():
            return folder
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(model.repo, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None
    return folder if (folder / "model_index.json").is_file() else None


def size_on_disk(folder: Path) -> int:
    """Bytes of every file under `folder`, following the HF cache's links to blobs once."""
    seen: set[Path] = set()
    total = 0
    for path in folder.rglob("*"):
        if path.is_file():
            real = path.resolve()
            if real not in seen:
                seen.add(real)
                total += real.stat().st_size
    return total
