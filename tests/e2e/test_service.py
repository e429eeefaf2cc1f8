"""The whole service on loopback: a real `reelforge serve` process, real clients, real files."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from reelforge.media import probe_video
from tests.e2e.conftest import REPO_ROOT, LiveServer, wait_for

pytestmark = pytest.mark.slow

T2V = "klingai/v2-master-text-to-video"
I2V = "klingai/v2-master-image-to-video"
E2E_KEY = "e2e-secret-key"
SDK_PYTHON = REPO_ROOT / ".venv-aimlapi" / "bin" / "python"
HERE = Path(__file__).parent


def create(server: LiveServer, body: dict[str, Any], key: str | None = None) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    response = httpx.post(server.base_url + "/v2/video/generations", json=body, headers=headers)
    assert response.status_code == 200, response.text
    generation: dict[str, Any] = response.json()
    return generation


def poll(server: LiveServer, generation_id: str, key: str | None = None) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    response = httpx.get(
        server.base_url + "/v2/video/generations",
        params={"generation_id": generation_id},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    generation: dict[str, Any] = response.json()
    return generation


def wait_terminal(server: LiveServer, generation_id: str, timeout_s: float = 120) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        generation = poll(server, generation_id)
        return generation if generation["status"] in ("completed", "error") else None

    result: dict[str, Any] = wait_for(done, timeout_s, f"generation {generation_id} to finish")
    return result


def png_data_uri(size: tuple[int, int], colour: tuple[int, int, int]) -> str:
    """A plain-coloured PNG as the data URI an `image_url` may carry."""
    image = io.BytesIO()
    Image.new("RGB", size, colour).save(image, format="PNG")
    return "data:image/png;base64," + base64.b64encode(image.getvalue()).decode()


def write_models_file(path: Path, engine: str, checkpoint: Path | None = None) -> Path:
    lines = []
    for model in (T2V, I2V):
        lines.append(f'[models."{model}"]\nengine = "{engine}"')
        if checkpoint is not None:
            lines.append(f'checkpoint = "{checkpoint}"')
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def keyed_server(module_server_factory: Callable[..., LiveServer]) -> LiveServer:
    """A server that requires `E2E_KEY`, shared by the third-party client tests (each makes
    and checks its own generation)."""
    return module_server_factory(api_keys=E2E_KEY)


def test_aimlapi_sdk_gets_the_mp4_bytes(keyed_server: LiveServer, tmp_path: Path) -> None:
    if not SDK_PYTHON.exists():
        pytest.fail(f"{SDK_PYTHON} is missing: run `make sdk-env` (make test does)")
    server = keyed_server
    out = tmp_path / "sdk.mp4"
    completed = subprocess.run(
        [
            str(SDK_PYTHON),
            str(HERE / "aimlapi_sdk_script.py"),
            "--base-url",
            server.base_url,
            "--api-key",
            E2E_KEY,
            "--model",
            T2V,
            "--prompt",
            "a raccoon in a sequoia forest",
            "--out",
            str(out),
            "--poll-interval",
            "0.3",
            "--poll-timeout",
            "120",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    summary = json.loads(completed.stdout.strip().splitlines()[-1])
    assert summary["final_status"] == "completed"
    info = probe_video(out)
    assert (info.width, info.height, info.num_frames, info.fps) == (1280, 720, 120, 24)
    assert info.codec == "h264"
    assert summary["bytes"] == out.stat().st_size


def test_requests_loop_shaped_like_the_seed(keyed_server: LiveServer, tmp_path: Path) -> None:
    server = keyed_server
    out = tmp_path / "requests.mp4"
    completed = subprocess.run(
        [
            sys.executable,
            str(HERE / "requests_seed_script.py"),
            "--base-url",
            server.base_url,
            "--api-key",
            E2E_KEY,
            "--model",
            T2V,
            "--prompt",
            "a white raccoon",
            "--duration",
            "5",
            "--aspect-ratio",
            "9:16",
            "--out",
            str(out),
            "--poll-interval",
            "0.3",
            "--timeout",
            "120",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    info = probe_video(out)
    assert (info.width, info.height, info.num_frames) == (720, 1280, 120)


def test_generation_reports_progress_serves_artifacts_until_deleted(
    live_server: LiveServer,
) -> None:
    created = create(live_server, {"model": T2V, "prompt": "a red fox", "aspect_ratio": "1:1"})
    statuses = {created["status"]}
    final = wait_terminal(live_server, created["id"])
    statuses.add(final["status"])
    assert statuses <= {"queued", "generating", "completed"}
    assert final["status"] == "completed", final
    assert final["progress"] == 100
    assert final["engine"] == "testsrc"
    assert final["error"] is None
    video = httpx.get(final["video"]["url"])  # signed link: no API key needed
    assert video.status_code == 200
    assert len(video.content) == final["video"]["file_size"]
    assert video.headers["content-type"] == "video/mp4"
    gif = Image.open(io.BytesIO(httpx.get(final["preview"]["url"]).content))
    assert gif.format == "GIF" and gif.width <= 480
    thumb = Image.open(io.BytesIO(httpx.get(final["thumbnail"]["url"]).content))
    assert thumb.format == "WEBP"
    assert (final["video"]["width"], final["video"]["height"]) == (960, 960)

    # Deleted: the generation, its links and its files are gone.
    folder = live_server.data_dir / "artifacts" / "jobs" / created["id"]
    assert [path.name for path in folder.rglob("video.mp4")] == ["video.mp4"]  # <run>/video.mp4
    url = f"{live_server.base_url}/v2/video/generations/{created['id']}"
    deleted = httpx.delete(url)
    assert deleted.status_code == 200
    assert deleted.json() == {"id": created["id"], "deleted": True}
    assert_gone(live_server, created["id"], [final[k]["url"] for k in MEDIA])
    assert httpx.delete(url).status_code == 404


def test_expired_generations_are_swept_with_their_files(
    server_factory: Callable[..., LiveServer],
) -> None:
    server = server_factory(retention_hours="0.0003", sweep_interval_s="0.2")  # about 1 s
    created = create(server, {"model": T2V, "prompt": "gone in a second"})
    swept = "retention sweep removed 1 expired generation(s)"
    wait_for(lambda: swept in server.log(), 60, "the sweeper to remove the generation")
    assert f"job {created['id']}: succeeded" in server.log()  # it ran to the end first
    assert_gone(server, created["id"], [])


MEDIA = ("video", "preview", "thumbnail")


def assert_gone(server: LiveServer, generation_id: str, links: list[str]) -> None:
    """The poll, its path form and each file link answer 404; no file of it is left."""
    polled = httpx.get(
        server.base_url + "/v2/video/generations", params={"generation_id": generation_id}
    )
    assert polled.status_code == 404
    by_path = httpx.get(f"{server.base_url}/v2/video/generations/{generation_id}")
    assert by_path.status_code == 404
    for link in links:
        assert httpx.get(link).status_code == 404, link
    artifacts = server.data_dir / "artifacts"
    assert not (artifacts / "jobs" / generation_id).exists()
    assert not (artifacts / "inputs" / generation_id).exists()


def test_tampered_file_link_is_refused(live_server: LiveServer) -> None:
    final = wait_terminal(live_server, create(live_server, {"model": T2V, "prompt": "x"})["id"])
    url = final["video"]["url"].replace("video.mp4", "preview.gif")
    assert httpx.get(url).status_code == 403


def test_image_to_video_through_the_service(live_server: LiveServer, tmp_path: Path) -> None:
    data_uri = png_data_uri((64, 48), (10, 200, 10))
    created = create(live_server, {"model": I2V, "image_url": data_uri, "duration": 10})
    final = wait_terminal(live_server, created["id"])
    assert final["status"] == "completed", final
    out = tmp_path / "i2v.mp4"
    out.write_bytes(httpx.get(final["video"]["url"]).content)
    info = probe_video(out)
    assert (info.width, info.height, info.num_frames) == (1280, 720, 240)


def _gate_server(
    server_factory: Callable[..., LiveServer], tmp_path: Path, max_attempts: int
) -> tuple[LiveServer, Path]:
    gate = tmp_path / "gate"
    gate.mkdir()
    models = write_models_file(tmp_path / "models.toml", "tests.fixtures.engines:GateEngine", gate)
    server = server_factory(
        models_file=models,
        lease_seconds="1.5",
        max_attempts=str(max_attempts),
        poll_interval_s="0.1",
    )
    return server, gate


def _started_pids(gate: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in gate.glob("started-*"))


def test_worker_killed_mid_job_runs_it_again(
    server_factory: Callable[..., LiveServer], tmp_path: Path
) -> None:
    server, gate = _gate_server(server_factory, tmp_path, max_attempts=3)
    created = create(server, {"model": T2V, "prompt": "survive a crash"})
    [first_pid] = wait_for(lambda: _started_pids(gate), 60, "the job to start")
    os.kill(first_pid, signal.SIGKILL)
    assert poll(server, created["id"])["status"] in ("generating", "queued")  # API still serves
    pids = wait_for(
        lambda: len(_started_pids(gate)) == 2 and _started_pids(gate),
        60,
        "the restarted worker to run the job again",
    )
    assert first_pid in pids
    (gate / "release").touch()
    final = wait_terminal(server, created["id"])
    assert final["status"] == "completed", final
    assert final["meta"]["attempts"] == 2


def test_worker_killed_past_attempt_limit_ends_in_error(
    server_factory: Callable[..., LiveServer], tmp_path: Path
) -> None:
    server, gate = _gate_server(server_factory, tmp_path, max_attempts=1)
    created = create(server, {"model": T2V, "prompt": "crash once"})
    [pid] = wait_for(lambda: _started_pids(gate), 60, "the job to start")
    os.kill(pid, signal.SIGKILL)
    final = wait_terminal(server, created["id"])
    assert final["status"] == "error"
    assert final["error"]["name"] == "worker_lost"
    assert "stopped responding" in final["error"]["message"]
    # The service goes on: the restarted worker serves the next job.
    (gate / "release").touch()
    wait_for(server.healthy, 60, "the restarted worker")
    nxt = wait_terminal(server, create(server, {"model": T2V, "prompt": "next"})["id"])
    assert nxt["status"] == "completed"


def test_cancel_over_http_stops_a_running_job_and_ends_a_queued_one(
    server_factory: Callable[..., LiveServer], tmp_path: Path
) -> None:
    from reelforge.cli.main import main as cli_main
    from reelforge.client import Conflict, ReelforgeClient

    server, gate = _gate_server(server_factory, tmp_path, max_attempts=3)
    with ReelforgeClient(server.base_url) as client:
        running = client.create_generation("run until canceled")
        wait_for(lambda: _started_pids(gate), 60, "the job to start")
        queued = client.create_generation("never starts")  # behind the gated job
        assert client.get_generation(queued.id).queue_position == 0

        asked = client.cancel_generation(running.id)
        assert asked.status == "generating" and asked.cancel_requested
        ended = client.cancel_generation(queued.id)
        assert ended.status == "error" and ended.error is not None
        assert ended.error.name == "canceled"

        # The gate is never released: only the cancel can end the running job.
        final = wait_terminal(server, running.id)
        assert final["status"] == "error" and final["error"]["name"] == "canceled", server.log()
        assert final["video"] is None
        done = _completed_job(client, gate)
        with pytest.raises(Conflict):
            client.cancel_generation(done.id)
    # The command line says so too, with the usage exit code.
    assert cli_main(["cancel", done.id, "--base-url", server.base_url]) == 2
    assert len(_started_pids(gate)) == 1  # the queued job never reached a worker


def _completed_job(client: Any, gate: Path) -> Any:
    (gate / "release").touch()
    return client.generate("finishes", poll_interval_s=0.1, timeout_s=60)


def test_restarted_server_completes_queued_jobs(
    server_factory: Callable[..., LiveServer], tmp_path: Path
) -> None:
    data_dir = tmp_path / "shared-data"
    api_only = server_factory(data_dir=data_dir, wait_ready=False, workers="0")
    ids = [create(api_only, {"model": T2V, "prompt": f"job {n}"})["id"] for n in range(3)]
    assert [poll(api_only, i)["queue_position"] for i in ids] == [0, 1, 2]
    api_only.stop()
    restarted = server_factory(data_dir=data_dir)
    finals = [wait_terminal(restarted, i) for i in ids]
    assert [f["status"] for f in finals] == ["completed"] * 3


def test_internal_errors_are_logged_not_leaked(
    server_factory: Callable[..., LiveServer], tmp_path: Path
) -> None:
    models = write_models_file(tmp_path / "models.toml", "tests.fixtures.engines:CrashingEngine")
    server = server_factory(models_file=models)
    created = create(server, {"model": T2V, "prompt": "boom"})
    final = wait_terminal(server, created["id"])
    assert final["status"] == "error"
    assert final["error"]["name"] == "internal_error"
    assert created["id"] in final["error"]["message"]
    assert "secret internal detail" not in json.dumps(final)
    log = wait_for(
        lambda: "secret internal detail" in server.log() and server.log(),
        10,
        "the traceback in the server log",
    )
    assert f"job {created['id']}" in log


def test_generation_errors_reach_the_user(
    server_factory: Callable[..., LiveServer], tmp_path: Path
) -> None:
    models = write_models_file(tmp_path / "models.toml", "tests.fixtures.engines:FailingEngine")
    server = server_factory(models_file=models)
    final = wait_terminal(server, create(server, {"model": T2V, "prompt": "fail"})["id"])
    assert final["error"] == {"name": "fixture_failure", "message": "this fixture always fails"}
    assert "url" not in json.dumps(final)  # the SDK downloads the first "url" it finds


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers signal 0; it has exited, which is what matters here.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def _worker_pids(server: LiveServer) -> list[int]:
    return [worker.pid for worker in server.store().live_workers(within_s=60)]


def test_stopping_the_server_stops_its_workers(
    server_factory: Callable[..., LiveServer],
) -> None:
    server = server_factory()
    [pid] = _worker_pids(server)
    assert _pid_alive(pid)
    server.stop()  # SIGTERM, as a service manager sends
    assert server.process is not None and server.process.returncode == 0
    wait_for(lambda: not _pid_alive(pid), 30, f"worker {pid} to exit")
    assert "stopping workers" in server.log()


def test_workers_of_a_killed_server_stop_themselves(
    server_factory: Callable[..., LiveServer],
) -> None:
    server = server_factory()
    [pid] = _worker_pids(server)
    assert server.process is not None
    server.process.kill()  # SIGKILL: the server cannot stop its children
    server.process.wait()
    wait_for(lambda: not _pid_alive(pid), 30, f"orphaned worker {pid} to exit")
