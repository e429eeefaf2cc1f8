"""Configuration mistakes fail fast: `serve` (and a lone `worker`) exits with one line naming
the fix before it binds a port, and a worker that cannot load its model says why in
`/healthz`, is not restarted in a loop, and creates for that model answer 503 instead of
queueing forever."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import REPO_ROOT, TESTSRC_REGISTRY, LiveServer, free_port, wait_for

pytestmark = pytest.mark.slow

T2V = "klingai/v2-master-text-to-video"


def run_serve(tmp_path: Path, *args: str, **settings: str) -> tuple[int, str, float]:
    return run_command(tmp_path, "serve", *args, **settings)


def run_command(
    tmp_path: Path, command: str, *args: str, **settings: str
) -> tuple[int, str, float]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "REELFORGE_DATA_DIR": str(tmp_path / "data"),
        "REELFORGE_PORT": str(free_port()),
        "REELFORGE_MODELS_FILE": str(TESTSRC_REGISTRY),
        **{f"REELFORGE_{k.upper()}": v for k, v in settings.items()},
    }
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "reelforge", command, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stderr, time.monotonic() - started


@pytest.mark.parametrize(
    ("args", "settings", "expected"),
    [
        (["--model", f"{T2V}=nosuchengine"], {}, "unknown engine or catalog model 'nosuchengine'"),
        # A misspelt catalog name: the near one, and where the catalog is listed.
        (
            ["--model", f"{T2V}=wan2.2-ti2v-5bb"],
            {},
            "did you mean 'wan2.2-ti2v-5b'? (engines: hunyuan, ltx, micro, testsrc, wan; "
            "catalog models: `reelforge models list`)",
        ),
        (["--model", f"{T2V}=wan2.2-ti2v-5b"], {}, "reelforge models pull wan2.2-ti2v-5b"),
        (["--models-file", "/nonexistent/models.toml"], {}, "/nonexistent/models.toml"),
        ([], {"storage_url": "gopher://videos"}, "unsupported storage URL"),
        ([], {"public_links": "presigned"}, "PUBLIC_LINKS=presigned needs an S3 store"),
        (
            [],
            {"storage_url": "s3://videos", "s3_endpoint_url": "http://127.0.0.1:1"},
            "REELFORGE_S3_ALLOW_HTTP=true",
        ),
        (["--model", f"{T2V}=wan:/nonexistent/wan"], {}, "/nonexistent/wan does not exist"),
    ],
)
def test_configuration_error_is_one_line_before_binding(
    tmp_path: Path, args: list[str], settings: dict[str, str], expected: str
) -> None:
    code, stderr, elapsed = run_serve(tmp_path, *args, **settings)
    assert code == 1, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("reelforge: error:")]
    assert len(errors) == 1 and expected in errors[0], stderr
    assert "Traceback" not in stderr
    assert "Uvicorn running" not in stderr and elapsed < 30


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (f"{T2V}=nosuchengine", "unknown engine or catalog model 'nosuchengine'"),
        (f"{T2V}=wan2.2-ti2v-5b", "run: reelforge models pull wan2.2-ti2v-5b"),
    ],
)
def test_a_lone_worker_fails_in_one_line_on_a_model_it_cannot_serve(
    tmp_path: Path, model: str, expected: str
) -> None:
    code, stderr, _ = run_command(tmp_path, "worker", "--model", model)
    assert code == 1, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("reelforge: error:")]
    assert len(errors) == 1 and expected in errors[0], stderr
    assert "Traceback" not in stderr


def test_a_worker_that_cannot_load_says_why_and_is_not_restarted(
    server_factory: Callable[..., LiveServer], tmp_path: Path
) -> None:
    registry = tmp_path / "models.toml"
    registry.write_text(f'[models."{T2V}"]\nengine = "micro"\noptions = {{ nosuch = 1 }}\n')
    server = server_factory(wait_ready=False, models_file=str(registry))

    def health() -> dict[str, object]:
        body: dict[str, object] = httpx.get(server.base_url + "/healthz", timeout=5).json()
        return body

    failed = wait_for(lambda: (h := health())["status"] == "failed" and h, 120, "a failed worker")
    problems = failed["problems"]
    assert isinstance(problems, list) and "unknown option" in problems[0], failed
    wait_for(lambda: "not restarting" in server.log(), 30, "the supervisor to give up")
    assert server.log_path is not None
    whole_log = server.log_path.read_text(errors="replace")  # log() is only its tail
    assert whole_log.count("started worker process") == 1, whole_log[-3000:]
    assert "Traceback" not in whole_log

    answer = httpx.post(
        server.base_url + "/v2/video/generations",
        json={"model": T2V, "prompt": "a red circle moving left"},
        timeout=10,
    )
    assert answer.status_code == 503, answer.text
    assert "unknown option" in answer.json()["message"]
    assert int(answer.headers["retry-after"]) > 0
