"""`reelforge models pull NAME`: the one place reelforge downloads weights, on request.

The catalog model's repository is listed at one exact commit through the Hugging Face hub's
API (`huggingface_hub`: endpoint, token and offline settings as the user configured them),
then its files are fetched over HTTP, a few at a time, into `catalog.pull_folder(model, models_dir)`
(under `REELFORGE_MODELS_DIR`) under one progress bar for the whole pull. A file arrives as
`NAME.part` and takes its name only when complete, so an interrupted pull (a dropped
connection, Ctrl-C, a killed machine) resumes where it stopped: within a run by retrying with
a Range request, and in the next run from the `.part` file left on disk; files already
complete are not fetched again. Then every file is checked against the listing (size, then
SHA-256 for the LFS files and the git blob id for the others, with `huggingface_hub`'s own
hash functions); a file that fails is deleted, so pulling again fetches it anew, and only a
folder where every file passed gets the marker that makes it count as present
(`catalog.local_checkpoint`). A half-finished pull is therefore never served.

Why not `huggingface_hub.snapshot_download(local_dir=...)`, which also fetches in parallel
under one bar: its `hf_hub_download` writes each file to a temporary name unique to the
process and deletes it when the transfer fails, so nothing survives a restart to resume
from; it fetches Xet-stored files through `hf_xet`, whose partial downloads do not survive
either; and its thread pool is joined on Ctrl-C, which then waits on every transfer in
flight. Here downloads go through the hub's `resolve` URLs, which serve every file over
plain HTTPS with Range support (Xet-stored ones included), on daemon threads that Ctrl-C
leaves behind at once.

Errors, all with a one-line message for the CLI:

    PullError            the listing, a download or the verification failed
    └── HubUnreachable   no answer from the hub, or HF_HUB_OFFLINE (what arrived is kept)
"""

from __future__ import annotations

import io
import json
import queue
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reelforge.weights.catalog import PULLED_MARKER, CatalogModel, pull_folder, size_on_disk

__all__ = [
    "ExpectedFile",
    "HubUnreachable",
    "PullError",
    "Removal",
    "hub_download_bytes",
    "pull",
    "remove_pulled",
    "verify_folder",
]

PARTIAL_SUFFIX = ".part"
PULLING_MARKER = "reelforge-pull.incomplete.json"
"""Written into the folder before the first byte arrives, naming the files the pull will
write (as the pulled marker does once it is complete), so that `remove_pulled` can delete a
half-finished pull too, and nothing else."""
WORKERS = 4
"""Files downloaded (and verified) at once: enough to fill a link that one connection to the
hub's CDN does not, few enough to leave a shared link usable."""
# A dropped connection is retried (from where it stopped) this many times per file.
_ATTEMPTS = 5
_CHUNK_BYTES = 1 << 20
_BAR_FORMAT = (
    "{desc} {percentage:3.0f}% |{bar:24}| {n_fmt}B/{total_fmt}B{postfix} | {rate_fmt} "
    "| ETA {remaining}"
)

Report = Callable[[int], None]
"""What a task calls with each count of bytes it has done (negative: bytes it threw away)."""


class PullError(RuntimeError):
    """The download or its verification failed; the folder is not marked present."""

    def __init__(self, message: str, bad_files: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.bad_files = list(bad_files)
        """Repository paths that failed verification."""


class HubUnreachable(PullError):
    """No connection to the hub, or offline mode is on; files that arrived stay for a resume."""

    def __init__(self, endpoint: str, reason: str) -> None:
        super().__init__(f"cannot reach the Hugging Face hub at {endpoint} ({reason})")
        self.endpoint = endpoint


@dataclass(frozen=True)
class ExpectedFile:
    """One file of a repository revision, as the hub lists it."""

    path: str
    size: int | None
    sha256: str | None
    """Known for LFS files (the weights); None for small files stored in git."""
    git_oid: str | None = None
    """The git blob id, checked for files stored in git (for LFS files it is the pointer's)."""


def verify_folder(folder: Path, expected: Iterable[ExpectedFile]) -> int:
    """Check every expected file under `folder` by size and, where known, its hash; returns
    the bytes checked. Raises PullError naming every mismatch."""
    expected = list(expected)
    problems = [_check(folder, item, lambda done: None) for item in expected]
    return _verdict(folder, expected, problems)


def pull(
    model: CatalogModel, models_dir: Path, *, revision: str = "main", progress: bool = True
) -> Path:
    """Download (or resume) `model`'s repository at `revision` into its folder under
    `models_dir`, verify it, mark it present."""
    import httpx
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers

    folder = pull_folder(model, models_dir)
    started = time.monotonic()
    commit, expected = _listing(model, revision)
    for item in expected:
        _inside(folder, item.path)
    # Every file this folder's pulls have written, for `remove_pulled`; on disk before them.
    paths = sorted({item.path for item in expected} | (_recorded_paths(folder) or set()))
    folder.mkdir(parents=True, exist_ok=True)
    pulling = {"repo": model.repo, "revision": commit, "paths": paths}
    (folder / PULLING_MARKER).write_text(json.dumps(pulling, indent=2) + "\n")
    # A new pull over an old one: the folder counts as present again only once verified.
    (folder / PULLED_MARKER).unlink(missing_ok=True)
    total_bytes = sum(item.size or 0 for item in expected)
    if progress:
        print(
            f"pulling {model.repo} at {commit[:12]}: {len(expected)} files, "
            f"{_format_bytes(total_bytes)}",
            file=sys.stderr,
        )
    missing = [item for item in expected if not _complete(folder, item)]
    timeout = httpx.Timeout(60.0, connect=20.0)
    # One client for every thread: httpx's connection pool is thread-safe.
    client = httpx.Client(headers=build_hf_headers(), follow_redirects=True, timeout=timeout)
    downloads = [
        _download_task(client, hf_hub_url(model.repo, item.path, revision=commit), folder, item)
        for item in missing
    ]
    with _Progress(
        "downloading",
        total_bytes,
        len(expected),
        done_bytes=sum(_bytes_here(folder, item) for item in expected),
        done_files=len(expected) - len(missing),
        enabled=progress,
    ) as bar:
        _run_in_parallel(downloads, bar)
    client.close()  # not on the way out of an error: a stalled daemon thread may still use it
    problems: list[str | None] = [None] * len(expected)
    checks = [_check_task(folder, item, problems, index) for index, item in enumerate(expected)]
    with _Progress("verifying", total_bytes, len(expected), enabled=progress) as bar:
        _run_in_parallel(checks, bar)
    try:
        checked = _verdict(folder, expected, problems)
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
        "paths": paths,
    }
    (folder / PULLED_MARKER).write_text(json.dumps(record, indent=2) + "\n")
    (folder / PULLING_MARKER).unlink()
    return folder


@dataclass(frozen=True)
class Removal:
    """What `remove_pulled` did."""

    folder: Path
    freed_bytes: int
    kept: list[str]
    """Files in the folder that no pull wrote (the user's own), left in place."""


def remove_pulled(model: CatalogModel, models_dir: Path) -> Removal | None:
    """Delete what `pull` wrote for `model` (complete or not) under `models_dir`.

    Only the files the pull markers name, their `.part` files, the markers and the folders
    left empty go; None when the model's folder holds no pull (absent, or a folder of the
    user's without a marker). The Hugging Face cache is never touched.
    """
    folder = pull_folder(model, models_dir)
    markers = [folder / PULLED_MARKER, folder / PULLING_MARKER]
    if not any(marker.is_file() for marker in markers):
        return None
    paths = _recorded_paths(folder)
    if paths is None:  # a marker from before pulls named their files: the folder is the pull's
        freed = size_on_disk(folder)
        shutil.rmtree(folder)
        return Removal(folder, freed, [])
    freed = 0
    for name in paths:
        target = _inside(folder, name)
        for path in (target, target.with_name(target.name + PARTIAL_SUFFIX)):
            if path.is_file():
                freed += path.stat().st_size
                path.unlink()
    for marker in markers:
        marker.unlink(missing_ok=True)
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        if not any(sub.iterdir()):
            sub.rmdir()
    kept = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    if not any(folder.iterdir()):
        folder.rmdir()
    return Removal(folder, freed, kept)


def _recorded_paths(folder: Path) -> set[str] | None:
    """The files the folder's pull markers name; None if a marker names none (or is unreadable)."""
    paths: set[str] = set()
    for marker in (folder / PULLED_MARKER, folder / PULLING_MARKER):
        if not marker.is_file():
            continue
        try:
            named = json.loads(marker.read_text()).get("paths")
        except (ValueError, AttributeError):
            return None
        if not isinstance(named, list):
            return None
        paths.update(str(name) for name in named)
    return paths


def _inside(folder: Path, name: str) -> Path:
    """`folder / name`, refused when `name` (from a listing or a marker) would leave it."""
    path = folder / name
    if ".." in Path(name).parts or Path(name).is_absolute():
        raise PullError(f"refusing a repository path outside {folder}: {name!r}")
    return path


def hub_download_bytes(repos: Iterable[str], *, timeout_s: float = 3.0) -> dict[str, int]:
    """Repository -> the bytes of its files at `main`, as the hub lists them, for every
    repository the hub answers for within `timeout_s`; none in offline mode (HF_HUB_OFFLINE).

    The repositories are asked at once, on daemon threads: one that has not answered by the
    deadline is left out (and its thread left behind) rather than holding up `models list`.
    """
    from huggingface_hub import HfApi, constants

    if constants.HF_HUB_OFFLINE:
        return {}
    sizes: dict[str, int] = {}

    def ask(repo: str) -> None:
        try:
            info = HfApi().model_info(repo, revision="main", files_metadata=True, timeout=timeout_s)
        except Exception:  # unreachable, unknown, gated: the catalog's estimate stands
            return
        listed = [sibling.size for sibling in info.siblings or []]
        if listed and None not in listed:
            sizes[repo] = sum(size for size in listed if size is not None)

    threads = [threading.Thread(target=ask, args=(repo,), daemon=True) for repo in repos]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout_s
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return dict(sizes)


def _listing(model: CatalogModel, revision: str) -> tuple[str, list[ExpectedFile]]:
    """The commit `revision` names on the hub, and the files of `model`'s repository there."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    try:
        info = HfApi().model_info(model.repo, revision=revision, files_metadata=True)
    except OfflineModeIsEnabled as exc:
        raise HubUnreachable(constants.ENDPOINT, "HF_HUB_OFFLINE is set") from exc
    except HfHubHTTPError as exc:  # the hub answered: auth, unknown repo or revision, 5xx
        raise PullError(f"listing {model.repo} at {revision} failed: {_one_line(exc)}") from exc
    except Exception as exc:  # no answer: DNS, refused, timeout, proxy, TLS (httpx2's errors)
        raise HubUnreachable(constants.ENDPOINT, _one_line(exc)) from exc
    expected = [
        ExpectedFile(
            sibling.rfilename,
            sibling.size,
            sibling.lfs.sha256 if sibling.lfs is not None else None,
            sibling.blob_id if sibling.lfs is None else None,
        )
        for sibling in info.siblings or []
    ]
    return info.sha or revision, expected


def _complete(folder: Path, item: ExpectedFile) -> bool:
    path = folder / item.path
    return item.size is not None and path.is_file() and path.stat().st_size == item.size


def _bytes_here(folder: Path, item: ExpectedFile) -> int:
    """Bytes of `item` already on disk, complete or in its `.part` file."""
    if _complete(folder, item):
        return item.size or 0
    partial = folder / (item.path + PARTIAL_SUFFIX)
    have = partial.stat().st_size if partial.is_file() else 0
    return min(have, item.size) if item.size is not None else have


def _download_task(
    client: Any, url: str, folder: Path, item: ExpectedFile
) -> Callable[[Report], None]:
    return lambda report: _fetch(client, url, folder / item.path, item.size, report)


def _fetch(client: Any, url: str, target: Path, size: int | None, report: Report) -> None:
    """Download `url` to `target` by way of `target.part`, resuming what is already there."""
    import httpx

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
                    report(-have)  # the server ignored the Range request: start over
                    have = 0
                # Opened with the umask's mode (not mkstemp's 0600), like any file the user makes.
                with partial.open("ab" if have else "wb") as out:
                    for chunk in response.iter_bytes(_CHUNK_BYTES):
                        out.write(chunk)
                        out.flush()  # what arrived is on disk for the next run to resume
                        report(len(chunk))
            break
        except httpx.TransportError as exc:
            if attempt == _ATTEMPTS and isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
                from huggingface_hub import constants

                raise HubUnreachable(constants.ENDPOINT, _one_line(exc)) from exc
            if attempt == _ATTEMPTS:
                raise PullError(
                    f"downloading {url} failed after {attempt} tries: {_one_line(exc)}"
                ) from exc
    partial.replace(target)


def _check_task(
    folder: Path, item: ExpectedFile, problems: list[str | None], index: int
) -> Callable[[Report], None]:
    def check(report: Report) -> None:
        problems[index] = _check(folder, item, report)

    return check


def _check(folder: Path, item: ExpectedFile, report: Report) -> str | None:
    """What is wrong with `item`'s file under `folder`, or None when it matches the listing."""
    # The hub's own hash functions, as `hf cache verify` uses them; the loop around them stays
    # here because `HfApi.verify_repo_checksums` lists the repository again and reports no
    # progress, and a 60 GB repository takes minutes to hash.
    from huggingface_hub.utils.sha import git_hash, sha_fileobj

    path = folder / item.path
    if not path.is_file():
        return "missing"
    size = path.stat().st_size
    if item.size is not None and size != item.size:
        return f"{size} bytes, expected {item.size}"
    if item.sha256 is not None:
        with _ReportingFile(path, report) as handle:
            if sha_fileobj(handle).hex() != item.sha256:
                return "SHA-256 differs from the hub's"
    elif item.git_oid is not None:
        if git_hash(path.read_bytes()) != item.git_oid:  # git files: 10 MB at most on the hub
            return "git blob id differs from the hub's"
        report(size)
    else:
        report(size)
    return None


def _verdict(folder: Path, expected: list[ExpectedFile], problems: list[str | None]) -> int:
    """The bytes checked, or PullError naming every problem (`bad_files`: those on disk)."""
    named = [(item, problem) for item, problem in zip(expected, problems, strict=True) if problem]
    if named:
        raise PullError(
            "verification failed: " + "; ".join(f"{item.path}: {p}" for item, p in named),
            [item.path for item, problem in named if problem != "missing"],
        )
    return sum((folder / item.path).stat().st_size for item in expected)


class _ReportingFile(io.FileIO):
    """A file opened for reading that reports the bytes read (the hashing progress)."""

    def __init__(self, path: Path, report: Report) -> None:
        super().__init__(path, "rb")
        self._report = report

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(-1 if size is None else size)
        self._report(len(chunk))
        return chunk


class _Progress:
    """The one bar of a pull phase: bytes done/total, files done/total, speed, ETA.

    Only the thread that runs the pull draws it; workers send their counts through
    `_run_in_parallel`'s queue.
    """

    def __init__(
        self,
        label: str,
        total_bytes: int,
        total_files: int,
        *,
        done_bytes: int = 0,
        done_files: int = 0,
        enabled: bool = True,
    ) -> None:
        from tqdm import tqdm

        self._files = (done_files, total_files)
        self._bar = tqdm(
            desc=label,
            total=total_bytes,
            initial=done_bytes,
            unit="B",
            unit_scale=True,
            bar_format=_BAR_FORMAT,
            postfix=self._files_done(),
            disable=not enabled,
            mininterval=0.2,
        )

    def add_bytes(self, count: int) -> None:
        self._bar.update(count)

    def add_file(self) -> None:
        self._files = (self._files[0] + 1, self._files[1])
        self._bar.set_postfix_str(self._files_done(), refresh=True)

    def refresh(self) -> None:
        self._bar.refresh()

    def _files_done(self) -> str:
        return f"{self._files[0]}/{self._files[1]} files"

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.close()


class _Stopped(Exception):
    """Raised inside a task's `report` once the pull is stopping (a failure or Ctrl-C)."""


def _run_in_parallel(tasks: Sequence[Callable[[Report], None]], progress: _Progress) -> None:
    """Run `tasks` on `WORKERS` daemon threads while this thread draws `progress`.

    The first task to fail stops the others at their next chunk (their `.part` files stay for
    the next run) and its error is raised here; a KeyboardInterrupt stops them the same way.
    Daemon threads rather than a ThreadPoolExecutor, which is joined on the way out: Ctrl-C
    would wait for a transfer stalled in a read (up to its 60 s timeout), and a thread left
    behind costs nothing here, since every byte it wrote went to an append-only `.part` file.
    """
    events: queue.Queue[tuple[str, int, BaseException | None]] = queue.Queue()
    todo: queue.Queue[Callable[[Report], None]] = queue.Queue()
    for task in tasks:
        todo.put(task)
    stop = threading.Event()

    def report(count: int) -> None:
        if stop.is_set():
            raise _Stopped
        events.put(("bytes", count, None))

    def work() -> None:
        while not stop.is_set():
            try:
                task = todo.get_nowait()
            except queue.Empty:
                return
            try:
                task(report)
            except _Stopped:
                return
            except BaseException as exc:  # handed to the pulling thread, which raises it
                events.put(("failed", 0, exc))
                return
            events.put(("done", 0, None))

    threads = [
        threading.Thread(target=work, name=f"reelforge-pull-{n}", daemon=True)
        for n in range(min(WORKERS, len(tasks)))
    ]
    for thread in threads:
        thread.start()
    remaining = len(tasks)
    try:
        while remaining:
            try:
                kind, count, error = events.get(timeout=0.5)
            except queue.Empty:
                progress.refresh()  # the speed and ETA move on while a transfer stalls
                continue
            if kind == "bytes":
                progress.add_bytes(count)
            elif kind == "done":
                remaining -= 1
                progress.add_file()
            else:
                assert error is not None
                raise error
    except BaseException:
        stop.set()
        deadline = time.monotonic() + 2.0  # time for a chunk in progress to reach the disk
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        raise


def _format_bytes(count: int) -> str:
    return f"{count / 1e9:.1f} GB" if count >= 1e9 else f"{count / 1e6:.1f} MB"


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line (the hub's errors span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__
