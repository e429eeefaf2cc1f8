"""Live progress against a real `reelforge serve`: a stream opened while the job is queued
sees queued → generating (rising progress) → completed in order, a resume with
`Last-Event-ID` misses no transition (checked against `job_events`), and the client and
`reelforge generate` follow the stream.

One server for the module: the text-to-video model is a gate (`GateEngine`) that holds the
one worker so a job waits queued behind it; the image-to-video model paces its steps
(`PacedEngine`) so its progress is seen rising.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelforge.client import ReelforgeClient
from reelforge.client._sse import SSEParser
from tests.e2e.conftest import LiveServer, wait_for
from tests.e2e.test_service import I2V, T2V, create, png_data_uri, poll, wait_terminal

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def paced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Path]]:
    root = tmp_path_factory.mktemp("events")
    gate = root / "gate"
    gate.mkdir()
    models = root / "models.toml"
    models.write_text(
        f'[models."{T2V}"]\nengine = "tests.fixtures.engines:GateEngine"\ncheckpoint = "{gate}"\n'
        f'[models."{I2V}"]\nengine = "tests.fixtures.engines:PacedEngine"\n'
    )
    server = LiveServer(root / "data", {"REELFORGE_MODELS_FILE": str(models)})
    try:
        yield server.start(), gate
    finally:
        server.stop()


def paced_job(server: LiveServer) -> str:
    body = {"model": I2V, "image_url": png_data_uri((64, 36), (200, 40, 40)), "duration": 5}
    generation_id: str = create(server, body)["id"]
    return generation_id


class Watcher(threading.Thread):
    """Reads one event stream to its end on a thread, keeping every event."""

    def __init__(self, server: LiveServer, generation_id: str, last_event_id: int | None = None):
        super().__init__(daemon=True)
        self.url = f"{server.base_url}/v2/video/generations/{generation_id}/events"
        self.headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
        self.events: list[dict[str, Any]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        parser = SSEParser()
        try:
            with httpx.stream("GET", self.url, headers=self.headers, timeout=60) as answer:
                assert answer.status_code == 200, answer.read()
                for line in answer.iter_lines():
                    event = parser.feed(line)
                    if event is not None:
                        self.events.append(
                            {
                                "id": int(event.id or 0),
                                "event": event.event,
                                "data": json.loads(event.data),
                            }
                        )
        except BaseException as exc:
            self.error = exc

    def finish(self) -> list[dict[str, Any]]:
        self.join(60)
        assert not self.is_alive(), "the stream did not end after the terminal event"
        if self.error is not None:
            raise self.error
        return self.events


def test_a_stream_opened_while_queued_sees_every_transition_in_order(
    paced: tuple[LiveServer, Path],
) -> None:
    server, gate = paced
    blocker = create(server, {"model": T2V, "prompt": "hold the worker"})["id"]
    wait_for(lambda: list(gate.glob("started-*")), 60, "the gate job to start")
    watched = paced_job(server)
    assert poll(server, watched)["queue_position"] == 0

    watcher = Watcher(server, watched)
    watcher.start()
    first = wait_for(lambda: watcher.events, 30, "the first event")
    assert first[0]["event"] == "queued"
    assert first[0]["data"]["queue_position"] == 0
    (gate / "release").touch()
    events = watcher.finish()

    statuses = [e["event"] for e in events]
    assert statuses[0] == "queued" and statuses[-1] == "completed"
    generating = [e["data"]["progress"] for e in events if e["event"] == "generating"]
    assert len(set(generating)) >= 3, events  # progress seen rising, not only start and end
    assert generating == sorted(generating)
    assert statuses == ["queued"] * statuses.count("queued") + ["generating"] * len(generating) + [
        "completed"
    ]
    final = events[-1]["data"]
    assert final["video"] is not None and final["eta_seconds"] == 0
    assert set(final["timings"]) == {"queued_s", "engine_s", "encode_s", "store_s"}

    # Every transition of the outbox reached the stream, each under its own id.
    stored = [e.seq for e in server.store().events_after(watched)]
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and set(stored) <= set(ids)
    assert wait_terminal(server, blocker)["status"] == "completed"

    # A resume from any id it was given replays exactly the transitions after it.
    for resume_after in sorted(set(ids))[:-1]:
        resumed = Watcher(server, watched, last_event_id=resume_after)
        resumed.start()
        assert [e["id"] for e in resumed.finish()] == [s for s in stored if s > resume_after]


def test_a_dropped_stream_resumed_with_last_event_id_misses_nothing(
    paced: tuple[LiveServer, Path],
) -> None:
    server, _gate = paced
    watched = paced_job(server)
    url = f"{server.base_url}/v2/video/generations/{watched}/events"
    parser = SSEParser()
    before: list[int] = []
    with httpx.stream("GET", url, timeout=60) as answer:
        for line in answer.iter_lines():
            event = parser.feed(line)
            if event is not None:
                before.append(int(event.id or 0))
                if event.event == "generating":
                    break  # the connection drops mid-run
    resumed = Watcher(server, watched, last_event_id=before[-1])
    resumed.start()
    after = resumed.finish()
    assert after[-1]["event"] == "completed"
    stored = {e.seq for e in server.store().events_after(watched)}
    assert stored <= set(before) | {e["id"] for e in after}


def test_the_client_and_the_cli_follow_the_stream(
    paced: tuple[LiveServer, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from reelforge.cli.main import main as cli_main

    server, _gate = paced
    with ReelforgeClient(server.base_url) as client:
        watched = paced_job(server)
        seen = list(client.stream(watched))
        assert seen[-1].status == "completed" and seen[-1].video is not None
        assert client.wait(watched).id == watched  # a finished job: its final state at once

    image = tmp_path / "start.png"
    image.write_bytes(base64.b64decode(png_data_uri((64, 36), (9, 9, 9)).split(",")[1]))
    out = tmp_path / "clip.mp4"
    code = cli_main(
        [
            "generate",
            "--model",
            I2V,
            "--image",
            str(image),
            "-o",
            str(out),
            "--base-url",
            server.base_url,
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.splitlines() == [str(out)] and out.stat().st_size > 0
    assert "rendering" in captured.err and "completed 100%" in captured.err
