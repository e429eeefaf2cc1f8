"""`reelforge models pull NAME`: the one place reelforge downloads weights, on request.

The catalog model's repository is fetched from the Hugging Face hub into
`catalog.pull_folder(model)` (under `REELFORGE_MODELS_DIR`) with `huggingface_hub`, which shows
a progress bar per file and resumes an interrupted download where it stopped. Then every file
is checked against the hub's listing of that exact revision (size, and SHA-256 for the large
LFS files), and only then is the marker written that makes the folder count as present
(`catalog.local_checkpoint`), so a half-finished pull is never served.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from reelforge.engines.catalog import PULLED_MARKER, CatalogModel, pull_folder

__all__ = ["ExpectedFile", "PullError", "pull", "verify_folder"]


class PullError(RuntimeError):
    """The download or its verification failed; the folder is not marked present."""


@dataclass(frozen=True)
class ExpectedFile:
    """One file of a repository revision, as the hub lists it."""

    path: str
    size: int | None
    sha256: str | None
    """Known for LFS files (the weights); None for small files stored in git."""


def verify_folder(folder: Path, expected: Iterable[ExpectedFile]) -> int:
    """Check every expected file under `folder` by size and, where known, SHA-256; returns
    the bytes checked. Raises PullError naming every mismatch."""
    problems, total = [], 0
    for item in expected:
        path = folder / item.path
        if not path.is_file():
            problems.append(f"{item.path}: missing")
            continue
        size = path.stat().st_size
        total += size
        if item.size is not None and size != item.size:
            problems.append(f"{item.path}: {size} bytes, expected {item.size}")
        elif item.sha256 is not None and _sha256(path) != item.sha256:
            problems.append(f"{item.path}: SHA-256 differs from the hub's")
    if problems:
        raise PullError("verification failed: " + "; ".join(problems))
    return total


def pull(model: CatalogModel, *, revision: str = "main") -> Path:
    """Download (or resume) `model`'s repository at `revision`, verify it, mark it present."""
    from huggingface_hub import HfApi, snapshot_download

    folder = pull_folder(model)
    # A new pull over an old one: the folder counts as present again only once verified.
    (folder / PULLED_MARKER).unlink(missing_ok=True)
    started = time.monotonic()
    try:
        info = HfApi().model_info(model.repo, revision=revision, files_metadata=True)
        commit = info.sha or revision
        snapshot_download(model.repo, revision=commit, local_dir=folder)
    except Exception as exc:  # network, auth, disk: all end the pull with a plain message
        raise PullError(f"downloading {model.repo} failed: {exc}") from exc
    expected = [
        ExpectedFile(
            sibling.rfilename,
            sibling.size,
            sibling.lfs.sha256 if sibling.lfs is not None else None,
        )
        for sibling in info.siblings or []
    ]
    checked = verify_folder(folder, expected)
    record = {
        "repo": model.repo,
        "revision": commit,
        "files": len(expected),
        "bytes": checked,
        "seconds": round(time.monotonic() - started, 1),
    }
    (folder / PULLED_MARKER).write_text(json.dumps(record, indent=2) + "\n")
    return folder


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
