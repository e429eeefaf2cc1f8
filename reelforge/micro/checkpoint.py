"""Saving and loading micro model checkpoints: one safetensors file, weights in fp16.

The architecture config and the training record travel in the file's metadata, so a
checkpoint is self-describing; the shipped one lives in the package (`SHIPPED_CHECKPOINT`).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from reelforge.micro.network import MicroNet, MicroNetConfig

__all__ = ["SHIPPED_CHECKPOINT", "load_checkpoint", "save_checkpoint"]

SHIPPED_CHECKPOINT = Path(str(resources.files("reelforge.micro") / "weights" / "micro.safetensors"))


def save_checkpoint(net: MicroNet, path: Path, record: dict[str, Any]) -> None:
    """Write `net`'s weights (fp16) with its config and `record` (how it was trained)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {
        name: tensor.detach().to(torch.float16).contiguous()
        for name, tensor in net.state_dict().items()
    }
    metadata = {"config": json.dumps(net.config.to_dict()), "record": json.dumps(record)}
    partial = path.with_suffix(".partial")
    save_file(tensors, str(partial), metadata=metadata)
    partial.replace(path)


def load_checkpoint(path: Path, device: str = "cpu") -> tuple[MicroNet, dict[str, Any]]:
    """The network (fp32, eval mode) and its training record."""
    if not path.is_file():
        raise FileNotFoundError(
            f"no micro model checkpoint at {path}; train one with `reelforge micro train`"
        )
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    config = MicroNetConfig.from_dict(json.loads(metadata["config"]))
    net = MicroNet(config)
    state = {name: tensor.float() for name, tensor in load_file(str(path)).items()}
    net.load_state_dict(state)
    return net.to(device).eval(), json.loads(metadata.get("record", "{}"))
