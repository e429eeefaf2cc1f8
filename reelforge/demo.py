"""`make demo`: start a server, generate one sample video through the client, save it, stop.

Runs on the embedded defaults (SQLite, a local folder in a temporary data dir, and the built-in
micro model), so it needs nothing but this package. The server it starts is its own whatever
the shell exports: its own data, port, workers and key (see `server_env`); only the choice of
models and device (REELFORGE_MODELS_FILE, REELFORGE_MODELS, REELFORGE_DEVICE, ...) carries
over, so a configured real model renders the demo.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from reelforge.client import ReelforgeClient

# Within the embedded micro model's world (see reelforge/micro/world.py); with a real model
# configured, any prompt works.
DEMO_PROMPT = "a red triangle moving up on a gray background"
DEMO_SEED = 4
"""Fixed, so every fresh clone's `make demo` renders the same clip."""
_START_TIMEOUT_S = 180.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(
    environ: Mapping[str, str], *, data_dir: str, port: int, api_key: str
) -> dict[str, str]:
    """The demo server's environment: the caller's, with every setting that would point the
    demo at someone else's server, data or keys replaced.

    An exported REELFORGE_API_KEYS used to make the server demand a key the demo's client
    did not send (401, a traceback); REELFORGE_WORKERS=0 left nothing to render; a database,
    storage or public URL sent the demo's job, or its links, elsewhere.
    """
    env = {key: value for key, value in environ.items() if key != "REELFORGE_BASE_URL"}
    env.update(
        REELFORGE_DATA_DIR=data_dir,
        REELFORGE_PORT=str(port),
        REELFORGE_HOST="127.0.0.1",
        REELFORGE_API_KEYS=api_key,
        REELFORGE_WORKERS="1",
        REELFORGE_DATABASE_URL="",
        REELFORGE_STORAGE_URL="",
        REELFORGE_PUBLIC_BASE_URL="",
    )
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("out"), help="where to save the files")
    parser.add_argument("--prompt", default=DEMO_PROMPT)
    parser.add_argument("--seed", type=int, default=DEMO_SEED)
    args = parser.parse_args(argv)

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="reelforge-demo-") as data_dir:
        api_key = secrets.token_urlsafe(16)  # this server's only key, known to this client
        env = server_env(os.environ, data_dir=data_dir, port=port, api_key=api_key)
        server = subprocess.Popen([sys.executable, "-m", "reelforge", "serve"], env=env)
        try:
            with ReelforgeClient(base_url, api_key=api_key) as client:
                _wait_until_ready(client, server)
                print(f"server ready at {base_url}; generating: {args.prompt!r}", flush=True)
                started = time.monotonic()
                generation = client.generate(
                    args.prompt, seed=args.seed, poll_interval_s=0.5, timeout_s=600
                )
                assert generation.video is not None and generation.preview is not None
                args.out.mkdir(parents=True, exist_ok=True)
                video = client.download(generation.video.url, args.out / "demo.mp4")
                preview = client.download(generation.preview.url, args.out / "demo.gif")
            print(
                f"done in {time.monotonic() - started:.1f} s (engine {generation.engine}): "
                f"{video} ({generation.video.width}x{generation.video.height}, "
                f"{generation.video.frames} frames at {generation.video.fps} fps), {preview}"
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
    return 0


def _wait_until_ready(client: ReelforgeClient, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with code {server.returncode}")
        try:
            if client.health():
                return
        except Exception:
            pass  # not listening yet
        time.sleep(0.25)
    raise SystemExit(f"the server was not ready within {_START_TIMEOUT_S:.0f} s")


if __name__ == "__main__":
    raise SystemExit(main())
