"""`reelforge models pull` against a fake Hugging Face hub on loopback: the real CLI process and
the real HTTP client, only the hub replaced (no hub is reachable from the tests)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from reelforge.weights.catalog import CATALOG, PULLED_MARKER, local_checkpoint, pull_folder
from reelforge.weights.pull import PARTIAL_SUFFIX

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL = CATALOG["wan2.1-t2v-1.3b"]
COMMIT = "0123456789abcdef0123456789abcdef01234567"
WEIGHTS = "transformer/diffusion_pytorch_model.safetensors"
CHUNK_BYTES = 1 << 20
"""`pull` writes a download to disk in chunks of this size; bytes of an unfinished chunk are
lost when a transfer breaks, so a cut must come past the first chunk to leave something."""


@dataclass(frozen=True)
class HubFile:
    """One file of the fake repository; `lfs` files are listed with their SHA-256, like weights."""

    path: str
    content: bytes
    lfs: bool = False

    @property
    def git_oid(self) -> str:
        return hashlib.sha1(b"blob %d\0" % len(self.content) + self.content).hexdigest()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    range: str | None


@dataclass
class FakeHub:
    """A fake of the Hugging Face hub's download API, serving one repository at one commit on
    127.0.0.1, with the two endpoints `pull` uses:

        GET  /api/models/{repo}/revision/{rev}?blobs=True   info with siblings (size, LFS sha256)
        GET  /{repo}/resolve/{rev}/{path}                   the bytes; `Range: bytes=N-` gives 206

    `rev` is "main" or the commit; the resolve responses carry the hub's headers
    (X-Repo-Commit, ETag / X-Linked-Etag, X-Linked-Size). Every request is recorded in
    `requests`. Faults: `tamper` serves a file with one byte changed (its listing unchanged);
    `drop_after` sends the first full GET of a file only up to a byte count and then closes the
    connection, or, with `hang=True`, stalls there until `release` is set.
    """

    repo: str
    files: list[HubFile]
    commit: str = COMMIT
    requests: list[Request] = field(default_factory=list)
    tampered: set[str] = field(default_factory=set)
    drops: dict[str, tuple[int, bool]] = field(default_factory=dict)
    stalled: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def tamper(self, path: str) -> None:
        self.tampered.add(path)

    def drop_after(self, path: str, sent_bytes: int, *, hang: bool = False) -> None:
        self.drops[path] = (sent_bytes, hang)

    def gets_of(self, path: str) -> list[Request]:
        """The GET requests for the bytes of `path`, in order."""
        url_path = f"/{self.repo}/resolve/{self.commit}/{path}"
        return [r for r in self.requests if (r.method, r.path) == ("GET", url_path)]

    def __enter__(self) -> FakeHub:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        # shutdown() waits for the loop's next poll: 0.5 s by default, at every exit.
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    def _info(self) -> dict[str, object]:
        siblings = [
            {
                "rfilename": f.path,
                "size": len(f.content),
                "blobId": f.git_oid,
                **(
                    {"lfs": {"size": len(f.content), "sha256": f.sha256, "pointerSize": 134}}
                    if f.lfs
                    else {}
                ),
            }
            for f in self.files
        ]
        return {"id": self.repo, "sha": self.commit, "private": False, "siblings": siblings}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self
        by_path = {f.path: f for f in self.files}
        revisions = f"(?:main|{self.commit})"
        info = re.compile(rf"/api/models/{re.escape(self.repo)}/revision/{revisions}")
        resolve = re.compile(rf"/{re.escape(self.repo)}/resolve/{revisions}/(?P<path>.+)")

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                self._serve(body=False)

            def do_GET(self) -> None:
                self._serve(body=True)

            def _serve(self, *, body: bool) -> None:
                path = unquote(urlsplit(self.path).path)
                hub.requests.append(Request(self.command, path, self.headers.get("Range")))
                if body and info.fullmatch(path):
                    self._json(hub._info())
                elif (match := resolve.fullmatch(path)) and match["path"] in by_path:
                    self._resolve(by_path[match["path"]], body=body)
                else:
                    self.send_error(404)

            def _resolve(self, file: HubFile, *, body: bool) -> None:
                content = file.content
                if file.path in hub.tampered:
                    content = bytes([content[0] ^ 0xFF]) + content[1:]
                ranged = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                start = int(ranged[1]) if ranged else 0
                self.send_response(206 if start else 200)
                self.send_header("X-Repo-Commit", hub.commit)
                self.send_header("ETag", f'"{file.git_oid}"')
                if file.lfs:
                    self.send_header("X-Linked-Etag", f'"{file.sha256}"')
                    self.send_header("X-Linked-Size", str(len(content)))
                if start:
                    total = len(content)
                    self.send_header("Content-Range", f"bytes {start}-{total - 1}/{total}")
                self.send_header("Content-Length", str(len(content) - start))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                drop = hub.drops.pop(file.path, None) if body and not start else None
                if drop is None:
                    if body:
                        self.wfile.write(content[start:])
                    return
                sent_bytes, hang = drop
                self.wfile.write(content[:sent_bytes])
                self.wfile.flush()
                if hang:
                    hub.stalled.set()
                    hub.release.wait(timeout=60)
                self.close_connection = True  # the rest never comes: the client sees a cut body

            def _json(self, value: object) -> None:
                data = json.dumps(value).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass  # the request log is `hub.requests`

        return Handler


def _repository(weights_bytes: int) -> list[HubFile]:
    """A tiny diffusers-layout repository: two small git files and one LFS weight file of
    deterministic random bytes."""
    weights = random.Random(0).randbytes(weights_bytes)
    return [
        HubFile("model_index.json", json.dumps({"_class_name": "WanPipeline"}).encode()),
        HubFile("transformer/config.json", json.dumps({"num_layers": 1}).encode()),
        HubFile(WEIGHTS, weights, lfs=True),
    ]


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    """The fake hub serving MODEL's repository with a 300 kB weight file."""
    with FakeHub(MODEL.repo, _repository(300_000)) as fake:
        yield fake


@pytest.fixture
def hub_with_large_weights() -> Iterator[FakeHub]:
    """The fake hub with a weight file past one download chunk, so a transfer cut after the
    first chunk leaves bytes on disk that a resume can build on."""
    with FakeHub(MODEL.repo, _repository(CHUNK_BYTES + 256_000)) as fake:
        yield fake


@pytest.fixture
def models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "pulled"
    monkeypatch.setenv("REELFORGE_MODELS_DIR", str(root))
    return root


def _env(hub: FakeHub | str, models_dir: Path) -> dict[str, str]:
    """The environment of a pull against `hub` (a fake, or the URL of some other endpoint)."""
    return {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "REELFORGE_MODELS_DIR": str(models_dir),
        "HF_ENDPOINT": hub if isinstance(hub, str) else hub.url,
        "HF_HUB_OFFLINE": "0",
        "HF_HOME": str(models_dir.parent / "hf-home"),
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",  # no stored token is ever sent, not even to the fake
        "NO_PROXY": "127.0.0.1",
    }


def _reelforge(
    hub: FakeHub | str, models_dir: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reelforge", *args],
        env={**_env(hub, models_dir), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _assert_pulled_intact(hub: FakeHub, models_dir: Path) -> Path:
    folder = pull_folder(MODEL, models_dir)
    assert folder == models_dir / "Wan2.1-T2V-1.3B-Diffusers"
    for file in hub.files:
        assert (folder / file.path).read_bytes() == file.content, file.path
    marker = json.loads((folder / PULLED_MARKER).read_text())
    assert (marker["repo"], marker["revision"]) == (MODEL.repo, COMMIT)
    assert marker["files"] == len(hub.files)
    assert marker["bytes"] == sum(len(f.content) for f in hub.files)
    return folder


def test_pull_downloads_every_file_verifies_it_and_lists_the_model_present(
    hub: FakeHub, models_dir: Path
) -> None:
    pulled = _reelforge(hub, models_dir, "models", "pull", MODEL.name)
    assert pulled.returncode == 0, pulled.stderr
    folder = _assert_pulled_intact(hub, models_dir)
    assert f"pulled {MODEL.repo} into {folder}" in pulled.stdout
    assert local_checkpoint(MODEL, models_dir) == folder
    assert len(hub.gets_of(WEIGHTS)) == 1

    listed = _reelforge(hub, models_dir, "models", "list")
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith(MODEL.name + " "))
    assert re.split(r" {3,}", row)[4:6] == ["yes", "0.3 MB"]


def test_models_rm_deletes_what_the_pull_wrote_and_the_model_is_absent_again(
    hub: FakeHub, models_dir: Path
) -> None:
    assert _reelforge(hub, models_dir, "models", "pull", MODEL.name).returncode == 0
    folder = pull_folder(MODEL, models_dir)
    removed = _reelforge(hub, models_dir, "models", "rm", MODEL.name)
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout == f"removed {MODEL.name} from {folder} (0.3 MB)\n"
    assert not folder.exists()
    assert local_checkpoint(MODEL, models_dir) is None


def test_models_list_shows_the_hubs_download_size_else_the_catalogs_estimate(
    hub: FakeHub, models_dir: Path
) -> None:
    listed = _reelforge(hub, models_dir, "models", "list")
    assert listed.returncode == 0, listed.stderr
    rows = {
        row[0]: row for row in (re.split(r" {3,}", line) for line in listed.stdout.splitlines())
    }
    assert rows["MODEL"][6] == "DOWNLOAD"
    # The fake hub lists this repository (300 kB), before any pull; the others are unknown
    # to it (404), so they show the catalog's estimate.
    assert rows[MODEL.name][4:7] == ["no", "-", "0.3 MB"]
    assert rows["wan2.1-t2v-14b"][6] == "~80 GB"
    assert any(r.path == f"/api/models/{MODEL.repo}/revision/main" for r in hub.requests)


def test_a_transfer_cut_mid_file_resumes_with_a_range_request(
    hub_with_large_weights: FakeHub, models_dir: Path
) -> None:
    hub = hub_with_large_weights
    cut_at = CHUNK_BYTES + 100_000
    hub.drop_after(WEIGHTS, cut_at)
    pulled = _reelforge(hub, models_dir, "models", "pull", MODEL.name)
    assert pulled.returncode == 0, pulled.stderr
    _assert_pulled_intact(hub, models_dir)
    first, resumed = hub.gets_of(WEIGHTS)
    assert first.range is None
    # The client asks for the rest from what it had written: whole chunks, at most the cut.
    assert resumed.range is not None
    start = int(resumed.range.removeprefix("bytes=").removesuffix("-"))
    assert 0 < start <= cut_at


def test_a_pull_killed_mid_file_resumes_it_on_the_next_run(
    hub_with_large_weights: FakeHub, models_dir: Path
) -> None:
    hub = hub_with_large_weights
    hub.drop_after(WEIGHTS, CHUNK_BYTES + 100_000, hang=True)
    first = subprocess.Popen(
        [sys.executable, "-m", "reelforge", "models", "pull", MODEL.name],
        env=_env(hub, models_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert hub.stalled.wait(timeout=60), "the first pull never reached the weight file"
        _wait_for_partial_download(pull_folder(MODEL, models_dir), CHUNK_BYTES)
    finally:
        first.kill()  # a crash or a lost machine: nothing gets to clean up
        first.wait()
        hub.release.set()
    assert not (pull_folder(MODEL, models_dir) / PULLED_MARKER).exists()
    partial = (pull_folder(MODEL, models_dir) / (WEIGHTS + PARTIAL_SUFFIX)).stat().st_size

    pulled = _reelforge(hub, models_dir, "models", "pull", MODEL.name)
    assert pulled.returncode == 0, pulled.stderr
    _assert_pulled_intact(hub, models_dir)
    assert hub.gets_of(WEIGHTS)[-1].range == f"bytes={partial}-"


# A shell without job control starts background commands with SIGINT ignored, and Python then
# installs no handler for it; restoring it lets the signal reach the CLI as a terminal's Ctrl-C.
_WITH_CTRL_C = (
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('reelforge', run_name='__main__')"
)


def test_ctrl_c_keeps_the_partial_download_and_the_same_command_resumes_it(
    hub_with_large_weights: FakeHub, models_dir: Path
) -> None:
    hub = hub_with_large_weights
    hub.drop_after(WEIGHTS, CHUNK_BYTES + 100_000, hang=True)
    first = subprocess.Popen(
        [sys.executable, "-c", _WITH_CTRL_C, "models", "pull", MODEL.name],
        env=_env(hub, models_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert hub.stalled.wait(timeout=60), "the first pull never reached the weight file"
        _wait_for_partial_download(pull_folder(MODEL, models_dir), CHUNK_BYTES)
        first.send_signal(signal.SIGINT)
        # Well before the hub gives up its stall (60 s): Ctrl-C waits on no transfer.
        _, stderr = first.communicate(timeout=20)
    finally:
        first.kill()
        hub.release.set()
    assert first.returncode == 130, stderr
    assert stderr.splitlines()[-1] == "reelforge: interrupted; run the same command to resume"
    assert "Traceback" not in stderr
    assert not (pull_folder(MODEL, models_dir) / PULLED_MARKER).exists()
    partial = (pull_folder(MODEL, models_dir) / (WEIGHTS + PARTIAL_SUFFIX)).stat().st_size
    assert partial >= CHUNK_BYTES

    pulled = _reelforge(hub, models_dir, "models", "pull", MODEL.name)
    assert pulled.returncode == 0, pulled.stderr
    _assert_pulled_intact(hub, models_dir)
    assert hub.gets_of(WEIGHTS)[-1].range == f"bytes={partial}-"


def _wait_for_partial_download(folder: Path, at_least: int) -> int:
    """The size of the `.part` file the pull is writing, once it holds `at_least` bytes."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        sizes = [p.stat().st_size for p in folder.glob(f"**/*{PARTIAL_SUFFIX}") if p.is_file()]
        if sizes and max(sizes) >= at_least:
            return max(sizes)
        time.sleep(0.05)
    pytest.fail(f"no partial download of {at_least} bytes appeared under {folder}")


def test_bytes_that_differ_from_the_listing_fail_the_pull_without_a_marker(
    hub: FakeHub, models_dir: Path
) -> None:
    hub.tamper(WEIGHTS)  # same size, one byte changed: only the SHA-256 can tell
    pulled = _reelforge(hub, models_dir, "models", "pull", MODEL.name)
    assert pulled.returncode == 3, pulled.stdout
    # Progress bars name every file; the error names only the one that failed.
    (error,) = [line for line in pulled.stderr.splitlines() if "verification failed" in line]
    assert f"{WEIGHTS}: SHA-256 differs from the hub's" in error
    assert "model_index.json" not in error
    assert not (pull_folder(MODEL, models_dir) / PULLED_MARKER).exists()
    assert local_checkpoint(MODEL, models_dir) is None


def test_a_pull_after_a_failed_verification_downloads_the_bad_file_again(
    hub: FakeHub, models_dir: Path
) -> None:
    hub.tamper(WEIGHTS)
    assert _reelforge(hub, models_dir, "models", "pull", MODEL.name).returncode == 3
    hub.tampered.clear()  # the hub (or the network path to it) is fixed
    pulled = _reelforge(hub, models_dir, "models", "pull", MODEL.name)
    assert pulled.returncode == 0, pulled.stderr
    _assert_pulled_intact(hub, models_dir)


def test_an_empty_file_in_the_repository_is_pulled_too(models_dir: Path) -> None:
    files = [*_repository(1000), HubFile("transformer/.keep", b"")]
    with FakeHub(MODEL.repo, files) as hub:
        pulled = _reelforge(hub, models_dir, "models", "pull", MODEL.name)
    assert pulled.returncode == 0, pulled.stderr
    folder = pull_folder(MODEL, models_dir)
    assert (folder / "transformer" / ".keep").read_bytes() == b""
    assert json.loads((folder / PULLED_MARKER).read_text())["files"] == 4


def _bar_lines(stderr: str) -> list[str]:
    """Every state a progress bar was drawn in (tqdm redraws a line after a carriage return)."""
    return [line.strip() for line in re.split(r"[\r\n]+", stderr) if line.strip()]


def test_files_download_several_at_once_under_one_bar_for_the_whole_pull(
    models_dir: Path,
) -> None:
    # The weights listed first and stalled: the other files still arrive meanwhile.
    weights, *small = _repository(300_000)[::-1]
    small += [HubFile(f"tokenizer/part-{n}.json", b"{}" * (n + 1)) for n in range(3)]
    with FakeHub(MODEL.repo, [weights, *small]) as hub:
        hub.drop_after(WEIGHTS, 1000, hang=True)
        first = subprocess.Popen(
            [sys.executable, "-m", "reelforge", "models", "pull", MODEL.name],
            env=_env(hub, models_dir),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert hub.stalled.wait(timeout=60), "the pull never reached the weight file"
            deadline = time.monotonic() + 30
            while not all(hub.gets_of(f.path) for f in small) and time.monotonic() < deadline:
                time.sleep(0.05)
            fetched_meanwhile = [f.path for f in small if hub.gets_of(f.path)]
        finally:
            hub.release.set()  # the stalled transfer is cut; the pull resumes it
        _, stderr = first.communicate(timeout=60)
        assert first.returncode == 0, stderr
        assert fetched_meanwhile == [f.path for f in small]
        _assert_pulled_intact(hub, models_dir)

    bars = _bar_lines(stderr)
    downloading = [line for line in bars if line.startswith("downloading")]
    verifying = [line for line in bars if line.startswith("verifying")]
    # One bar per phase, not one per file: bytes done/total, files done/total, speed, ETA.
    assert not [line for line in bars if line.startswith(("model_index", "diffusion_pytorch"))]
    assert re.search(
        r"100% .*\| 300kB/300kB, 6/6 files \| [\d.]+[kMG]?B/s \| ETA 00:00$", downloading[-1]
    ), downloading[-1]
    assert re.search(r"100% .*6/6 files", verifying[-1]), verifying[-1]
    assert any(re.search(r"[0-5]/6 files", line) for line in verifying)  # drawn while hashing


@pytest.fixture
def unreachable_hub() -> str:
    """The URL of a loopback port where nothing listens (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_an_unreachable_hub_fails_in_one_line_naming_a_mirror_and_the_hf_cache(
    unreachable_hub: str, models_dir: Path
) -> None:
    pulled = _reelforge(unreachable_hub, models_dir, "models", "pull", MODEL.name)
    assert pulled.returncode == 3
    (line,) = pulled.stderr.splitlines()
    assert line.startswith(f"reelforge: cannot reach the Hugging Face hub at {unreachable_hub} (")
    assert "set HF_ENDPOINT" in line
    assert f"`hf download {MODEL.repo}` in the Hugging Face cache counts as present" in line


def test_with_the_hub_unreachable_a_snapshot_in_the_hf_cache_counts_as_present(
    unreachable_hub: str, models_dir: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "hf-cache"
    repo = cache / ("models--" + MODEL.repo.replace("/", "--"))
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (snapshot / "model_index.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    pulled = _reelforge(
        unreachable_hub, models_dir, "models", "pull", MODEL.name, HF_HUB_CACHE=str(cache)
    )
    assert pulled.returncode == 0, pulled.stderr
    (line,) = pulled.stderr.splitlines()
    assert line.endswith(f"; {MODEL.name} is present in {snapshot}")
    assert not pull_folder(MODEL, models_dir).exists()


def test_pulling_again_with_the_hub_unreachable_keeps_the_model_present(
    hub: FakeHub, unreachable_hub: str, models_dir: Path
) -> None:
    assert _reelforge(hub, models_dir, "models", "pull", MODEL.name).returncode == 0
    again = _reelforge(unreachable_hub, models_dir, "models", "pull", MODEL.name)
    assert again.returncode == 0, again.stderr
    assert f"{MODEL.name} is present in {pull_folder(MODEL, models_dir)}" in again.stderr
    _assert_pulled_intact(hub, models_dir)  # the marker too: still served


@pytest.mark.parametrize(
    ("umask", "file_mode", "folder_mode"), [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)]
)
def test_pulled_files_and_folders_follow_the_umask(
    hub: FakeHub, models_dir: Path, umask: int, file_mode: int, folder_mode: int
) -> None:
    pulled = subprocess.run(
        [sys.executable, "-m", "reelforge", "models", "pull", MODEL.name],
        env=_env(hub, models_dir),
        capture_output=True,
        text=True,
        timeout=120,
        umask=umask,
    )
    assert pulled.returncode == 0, pulled.stderr
    folder = _assert_pulled_intact(hub, models_dir)
    modes = {
        path.relative_to(folder).as_posix(): stat.S_IMODE(path.stat().st_mode)
        for path in [folder, *folder.rglob("*")]
    }
    expected = {name: folder_mode if (folder / name).is_dir() else file_mode for name in modes}
    assert modes == expected
