"""`reelforge models pull NAME`: the one place reelforge downloads weights, on request.

The catalog model's repository is listed at one exact commit through the Hugging Face hub's
API (`huggingface_hub`: endpoint, token and offline settings as the user configured them),
then each file is fetched over HTTP into `catalog.pull_folder(model)` (under
`REELFORGE_MODELS_DIR`) with a progress bar. A file arrives as `NAME.part` and takes its name
only when complete, so an interrupted pull (a dropped connection, Ctrl-C, a killed machine)
resumes where it stopped: within a run by retrying with a Range request, and in the next run
from the `.part` file left on disk; files already complete are not fetched again. Then every
file is checked against the listing (size, and SHA-256 for the large LFS files); a file that
fails is deleted, so pulling again fetches it anew, and only a folder where every file passed
gets the marker that makes it count as present (`catalog.local_checkpoint`). A half-finished
pull is therefore never served.

Downloads go through the hub's `resolve` URLs, which serve every file over plain HTTPS with
Range support (Xet-stored ones included), not through `hf_xet`'s faster chunk transfer: its
partial downloads do not survive a restarted process, and resuming them does here.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reelforge.engines.catalog import PULLED_MARKER, CatalogModel, pull_folder

__all__ = ["ExpectedFile", "PullError", "pull", "verify_folder"]

PARTIAL_SUFFIX = ".part"
# A dropped connection is retried (from where it stopped) this many times per file.
_ATTEMPTS = 5
_CHUNK_BYTES = 1 << 20


class PullError(RuntimeError):
    """The download or its verification failed; the folder is not marked present."""

    def __init__(self, message: str, bad_files: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.bad_files = list(bad_files)
        """Repository paths that failed verification."""


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
    problems, bad, total = [], [], 0
    for item in expected:
        path = folder / item.path
        if not path.is_file():
            problems.append(f"{item.path}: missing")
            continue
        size = path.stat().st_size
        total += size
        if item.size is not None and size != item.size:
            problems.append(f"{item.path}: {size} bytes, expected {item.size}")
            bad.append(item.path)
        elif item.sha256 is not None and _sha256(path) != item.sha256:
            problems.append(f"{item.path}: SHA-256 differs from the hub's")
            bad.append(item.path)
    if problems:
        raise PullError("verification failed: " + "; ".join(problems), bad)
    return total


def pull(model: CatalogModel, *, revision: str = "main", progress: bool = True) -> Path:
    """Download (or resume) `model`'s repository at `revision`, verify it, mark it present."""
    import httpx
    from huggingface_hub import HfApi, hf_hub_url
    from huggingface_hub.utils import build_hf_headers

    folder = pull_folder(model)
    # A new pull over an old one: the folder counts as present again only once verified.
    (folder / PULLED_MARKER).unlink(missing_ok=True)
    started = time.monotonic()
    try:
        info = HfApi().model_info(model.repo, revision=revision, files_metadata=True)
    except Exception as exc:  # network, auth, unknown repo: a plain message, no traceback
        raise PullError(f"listing {model.repo} at {revision} failed: {exc}") from exc
    commit = info.sha or revision
    expected = [
        ExpectedFile(
            sibling.rfilename,
            sibling.size,
            sibling.lfs.sha256 if sibling.lfs is not None else None,
        )
        for sibling in info.siblings or []
    ]
    timeout = httpx.Timeout(60.0, connect=20.0)
    with httpx.Client(headers=build_hf_headers(), follow_redirects=True, timeout=timeout) as client:
        for item in expected:
            url = hf_hub_url(model.repo, item.path, revision=commit)
            _fetch(client, url, folder / item.path, item.size, progress=progress)
    try:
        checked = verify_folder(folder, expected)
    except PullError as error:
        # Gone, so that pulling again fetches them anew instead of keeping what failed.
        for path in error.bad_files:
            (folder / path).unlink(missing_ok=True)
        raise PullError(f"{error}; removed the failed files, pull again to refetch them") from None
    record = {
        "repo": model.repo,
        "revision": commit,
        "files": len(expected),
        "bytes": checked,
        "seconds": round(time.monotonic() - started, 1),
    }
    (folder / PULLED_MARKER).write_text(json.dumps(record, indent=2) + "\n")
    return folder


def _fetch(client: Any, url: str, target: Path, size: int | None, *, progress: bool) -> None:
    """Download `url` to `target` by way of `target.part`, resuming what is already there."""
    import httpx
    from tqdm import tqdm

    if size is not None and target.is_file() and target.stat().st_size == size:
        return  # complete from an earlier run; verified with the rest
    partial = target.with_name(target.name + PARTIAL_SUFFIX)
    partial.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, _ATTEMPTS + 1):
        have = partial.stat().st_size if partial.is_file() else 0
        if size is not None and partial.is_file() and have >= size:
            break  # complete, or longer than listed: verification decides
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            with client.stream("GET", url, headers=headers) as response:
                if response.status_code == 416:  # nothing left past `have`: the file is whole
                    break
                if response.status_code >= 400:
                    raise PullError(f"downloading {url} failed: HTTP {response.status_code}")
                if have and response.status_code != 206:
                    have = 0  # the server ignored the Range request: start over
                with (
                    partial.open("ab" if have else "wb") as out,
                    tqdm(
                        total=size,
                        initial=have,
                        unit="B",
                        unit_scale=True,
                        desc=target.name,
                        disable=not progress,
                    ) as bar,
                ):
                    for chunk in response.iter_bytes(_CHUNK_BYTES):
                        out.write(chunk)
                        out.flush()  # what arrived is on disk for the next run to resume
                        bar.update(len(chunk))
            break
        except httpx.TransportError as exc:
            if attempt == _ATTEMPTS:
                raise PullError(f"downloading {url} failed after {attempt} tries: {exc}") from exc
    partial.replace(target)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
