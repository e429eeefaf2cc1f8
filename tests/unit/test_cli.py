"""The `reelforge` command line against a fake server (an `httpx.MockTransport`), no sockets.

The CLI builds its client through `reelforge.cli.common.make_client`; the `fake_server`
fixture replaces that factory with one whose client talks to the fake. `serve` and `worker`
get fake server / worker modules injected into `sys.modules`, since they import them lazily.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from reelforge.cli import common, parsing
from reelforge.cli.main import build_parser, main
from reelforge.client import DEFAULT_IMAGE_MODEL, DEFAULT_TEXT_MODEL, ReelforgeClient
from reelforge.settings import Settings

BASE_URL = "http://reelforge.test"
VIDEO_BYTES = b"\x00\x00\x00\x18ftypmp42 fake video"
GIF_BYTES = b"GIF89a fake preview"
FAST = ["--poll-interval", "0.001"]


def generation(status: str, **fields: Any) -> dict[str, Any]:
    return {"id": "gen_7", "status": status, "model": DEFAULT_TEXT_MODEL, "progress": 0, **fields}


COMPLETED = generation(
    "completed",
    progress=100,
    video={"url": "http://files.test/gen_7.mp4?sig=1", "content_type": "video/mp4"},
    preview={"url": "http://files.test/gen_7.gif?sig=1", "content_type": "image/gif"},
)


class FakeServer:
    """A scripted server: POST answers `created`, polls answer `states` in turn."""

    def __init__(self) -> None:
        self.states: list[dict[str, Any]] = [COMPLETED]
        self.create_answer = httpx.Response(200, json=generation("queued", queue_position=2))
        self.requests: list[httpx.Request] = []
        self.factory_args: tuple[str | None, str | None] | None = None
        self.listed: list[dict[str, Any]] = []  # what a list answers, newest first

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.method == "POST":
            return self.create_answer
        if request.method == "DELETE" and request.url.path == "/v2/video/generations/gen_7":
            return httpx.Response(200, json={"id": "gen_7", "deleted": True})
        if (
            request.url.path == "/v2/video/generations"
            and "generation_id" not in request.url.params
        ):
            return self.list_page(request)
        if request.url.path == "/v2/video/generations":
            return httpx.Response(
                200, json=self.states.pop(0) if len(self.states) > 1 else self.states[0]
            )
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"object": "list", "data": MODELS})
        if request.url.path == "/gen_7.mp4":
            return httpx.Response(200, content=VIDEO_BYTES)
        if request.url.path == "/gen_7.gif":
            return httpx.Response(200, content=GIF_BYTES)
        return httpx.Response(404, json={"message": "not found", "statusCode": 404})

    def list_page(self, request: httpx.Request) -> httpx.Response:
        limit = int(request.url.params.get("limit", "20"))
        after = request.url.params.get("after")
        ids = [item["id"] for item in self.listed]
        start = ids.index(after) + 1 if after else 0
        page = self.listed[start : start + limit]
        body = {"data": page, "has_more": start + limit < len(ids),
                "last_id": page[-1]["id"] if page else None}  # fmt: skip
        return httpx.Response(200, json=body)

    def make_client(self, base_url: str | None, api_key: str | None) -> ReelforgeClient:
        self.factory_args = (base_url, api_key)
        return ReelforgeClient(base_url, api_key, transport=httpx.MockTransport(self.handle))

    def created_body(self) -> dict[str, Any]:
        (post,) = [r for r in self.requests if r.method == "POST"]
        body: dict[str, Any] = json.loads(post.content)
        return body


MODELS = [
    {"id": DEFAULT_TEXT_MODEL, "object": "model", "engine": "testsrc", "task": "text-to-video"},
    {"id": DEFAULT_IMAGE_MODEL, "object": "model", "engine": "wan", "task": "image-to-video"},
]


@pytest.fixture
def fake_server(monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    for name in ("REELFORGE_BASE_URL", "REELFORGE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    server = FakeServer()
    monkeypatch.setattr(common, "make_client", server.make_client)
    return server


def test_generate_saves_the_video_and_preview_and_prints_their_paths(
    fake_server: FakeServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_server.states = [generation("generating", progress=40), COMPLETED]
    output = tmp_path / "new-dir" / "fox.mp4"

    code = main(["generate", "a red fox", "-o", str(output), "--preview", *FAST])

    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert output.read_bytes() == VIDEO_BYTES
    assert output.with_suffix(".gif").read_bytes() == GIF_BYTES
    assert captured.out.splitlines() == [str(output), str(output.with_suffix(".gif"))]
    # The progress bar showed the queue position, then the progress of each poll.
    assert "queued (2 ahead)" in captured.err
    assert "rendering  40%" in captured.err
    assert "completed 100%" in captured.err
    assert fake_server.created_body() == {"model": DEFAULT_TEXT_MODEL, "prompt": "a red fox"}


def test_generate_prints_the_engines_warnings_to_stderr(
    fake_server: FakeServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    warned = {**COMPLETED, "meta": {"warnings": ["the prompt is far from the model's world"]}}
    fake_server.states = [warned]
    output = tmp_path / "fox.mp4"

    assert main(["generate", "a red fox", "-o", str(output), *FAST]) == 0

    captured = capsys.readouterr()
    assert "reelforge: warning: the prompt is far from the model's world\n" in captured.err
    assert captured.out.splitlines() == [str(output)]  # stdout stays the saved paths


def test_generate_prints_no_warning_when_the_engine_gave_none(
    fake_server: FakeServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_server.states = [{**COMPLETED, "meta": {"legs": 1}}]
    assert main(["generate", "a red circle", "-o", str(tmp_path / "c.mp4"), *FAST]) == 0
    assert "warning" not in capsys.readouterr().err


def test_generate_names_the_file_after_the_generation_by_default(
    fake_server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["generate", "a red fox", *FAST]) == 0
    assert (tmp_path / "gen_7.mp4").read_bytes() == VIDEO_BYTES
    assert not (tmp_path / "gen_7.gif").exists()  # no --preview, no GIF


def test_generate_sends_every_option_given(fake_server: FakeServer, tmp_path: Path) -> None:
    code = main(
        ["generate", "a red fox", "--model", "custom/model", "--duration", "10",
         "--aspect-ratio", "9:16", "--negative-prompt", "blur", "--cfg-scale", "0.3",
         "--camera-control", "down_back", "--seed", "7", "-o", str(tmp_path / "x.mp4"),
         "--base-url", "http://gpu-box:8000", "--api-key", "sk-cli", *FAST]
    )  # fmt: skip

    assert code == 0
    assert fake_server.created_body() == {
        "model": "custom/model",
        "prompt": "a red fox",
        "duration": 10,
        "aspect_ratio": "9:16",
        "negative_prompt": "blur",
        "cfg_scale": 0.3,
        "camera_control": "down_back",
        "seed": 7,
    }
    assert fake_server.factory_args == ("http://gpu-box:8000", "sk-cli")


def test_a_local_image_is_sent_as_a_data_uri_to_the_image_model(
    fake_server: FakeServer, tmp_path: Path
) -> None:
    image = tmp_path / "start.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\nstart frame")

    code = main(["generate", "--image", str(image), "-o", str(tmp_path / "x.mp4"), *FAST])

    assert code == 0
    body = fake_server.created_body()
    assert body["model"] == DEFAULT_IMAGE_MODEL
    assert "prompt" not in body
    header, _, payload = body["image_url"].partition(",")
    assert header == "data:image/png;base64"
    assert base64.b64decode(payload) == image.read_bytes()


def test_an_image_url_is_passed_through(fake_server: FakeServer, tmp_path: Path) -> None:
    url = "https://example.com/start.jpg"
    assert main(["generate", "go", "--image", url, "-o", str(tmp_path / "x.mp4"), *FAST]) == 0
    assert fake_server.created_body()["image_url"] == url
    assert fake_server.created_body()["model"] == DEFAULT_IMAGE_MODEL


def test_a_missing_image_file_is_a_usage_error(
    fake_server: FakeServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["generate", "go", "--image", str(tmp_path / "nope.png")])
    assert code == 2
    assert "no such file" in capsys.readouterr().err
    assert fake_server.requests == []  # nothing was sent


def test_a_failed_job_exits_1_with_its_error(
    fake_server: FakeServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_server.states = [generation("error", error={"name": "nsfw", "message": "refused"})]

    code = main(["generate", "a red fox", "-o", str(tmp_path / "x.mp4"), *FAST])

    assert code == 1
    assert "nsfw: refused" in capsys.readouterr().err
    assert not (tmp_path / "x.mp4").exists()


def test_a_rejected_request_exits_2_with_the_server_message(
    fake_server: FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    message = "model: unknown model; served: klingai/v2-master-text-to-video"
    fake_server.create_answer = httpx.Response(400, json={"message": message, "statusCode": 400})

    code = main(["generate", "a red fox", "--model", "nope"])

    assert code == 2
    assert message in capsys.readouterr().err


def test_an_unreachable_server_exits_3(
    fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    monkeypatch.setattr(fake_server, "handle", refuse)
    assert main(["generate", "a red fox"]) == 3
    assert "cannot reach the server" in capsys.readouterr().err


def test_ctrl_c_while_generating_says_the_job_goes_on_and_how_to_cancel_it(
    fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    answer = fake_server.handle

    def interrupt_the_first_poll(request: httpx.Request) -> httpx.Response:
        if "generation_id" in request.url.params:
            raise KeyboardInterrupt
        return answer(request)

    monkeypatch.setattr(fake_server, "handle", interrupt_the_first_poll)
    assert main(["generate", "a red fox", *FAST]) == 130
    err = capsys.readouterr().err
    assert "generation gen_7 goes on on the server" in err
    assert "`reelforge wait gen_7` picks it up" in err
    assert "`reelforge cancel gen_7` cancels it" in err


def test_a_timeout_names_the_command_that_picks_the_job_up_later(
    fake_server: FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_server.states = [generation("generating", progress=40)]
    assert main(["generate", "a red fox", "--timeout", "0.01", *FAST]) == 4
    err = capsys.readouterr().err
    assert "`reelforge wait gen_7` picks it up later" in err
    assert "`reelforge cancel gen_7` cancels it" in err


# --- list, status, wait, download, delete ---------------------------------------------------


def listed(count: int) -> list[dict[str, Any]]:
    """`count` generations, newest first, the newest made 30 s ago and each an hour older."""
    now = datetime.now(UTC)
    return [
        generation("completed", id=f"gen_{n}", progress=100,
                   created_at=(now - timedelta(seconds=30, hours=hours)).isoformat())
        for hours, n in enumerate(range(count, 0, -1))
    ]  # fmt: skip


def test_list_shows_the_newest_20_with_status_progress_and_age(
    fake_server: FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_server.listed = listed(25)
    fake_server.listed[0] = {**fake_server.listed[0], "status": "generating", "progress": 40}

    assert main(["list"]) == 0

    captured = capsys.readouterr()
    header, *rows = captured.out.splitlines()
    assert header.split() == ["ID", "MODEL", "STATUS", "PROGRESS", "AGE"]
    assert len(rows) == 20
    assert rows[0].split() == ["gen_25", DEFAULT_TEXT_MODEL, "generating", "40%", "30s"]
    assert rows[2].split()[-1] == "2h"
    assert "showing the newest 20; --limit N or --all for more" in captured.err
    (request,) = fake_server.requests  # one page, one more than shown: "are there more?"
    assert request.url.params["limit"] == "21"


def test_list_all_pages_through_everything_with_the_filters_as_json(
    fake_server: FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_server.listed = listed(150)

    assert main(["list", "--all", "--status", "completed,error", "--model", "m/x", "--json"]) == 0

    captured = capsys.readouterr()
    shown = json.loads(captured.out)
    assert [item["id"] for item in shown] == [f"gen_{n}" for n in range(150, 0, -1)]
    assert shown[0]["status"] == "completed" and shown[0]["model"] == DEFAULT_TEXT_MODEL
    assert [r.url.params.get("after") for r in fake_server.requests] == [None, "gen_51"]
    assert {r.url.params["status"] for r in fake_server.requests} == {"completed,error"}
    assert {r.url.params["model"] for r in fake_server.requests} == {"m/x"}
    assert "--all for more" not in captured.err


def test_list_refuses_an_unknown_status(
    fake_server: FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["list", "--status", "done"]) == 2
    assert "'done' is not a status" in capsys.readouterr().err
    assert fake_server.requests == []


def status_rows(out: str) -> dict[str, str]:
    return dict(
        (name.strip(), value.strip())
        for name, value in (line.split(":", 1) for line in out.splitlines())
    )


def test_status_shows_progress_queue_and_eta_of_a_waiting_generation(
    fake_server: FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_server.states = [generation("queued", queue_position=2, eta_seconds=95)]

    assert main(["status", "gen_7"]) == 0

    rows = status_rows(capsys.readouterr().out)
    assert rows["status"] == "queued"
    assert rows["queue position"] == "2 ahead"
    assert rows["eta"] == "1:35"
    assert rows["progress"] == "0%"
    assert "video" not in rows
    assert fake_server.requests[0].url.params["generation_id"] == "gen_7"


def test_status_shows_the_error_or_the_file_urls(
    fake_server: FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_server.states = [generation("error", error={"name": "nsfw", "message": "refused"})]
    assert main(["status", "gen_7"]) == 0
    assert status_rows(capsys.readouterr().out)["error"] == "nsfw: refused"

    fake_server.states = [COMPLETED]
    assert main(["status", "gen_7"]) == 0
    rows = status_rows(capsys.readouterr().out)
    assert rows["video"] == COMPLETED["video"]["url"]
    assert rows["preview"] == COMPLETED["preview"]["url"]
    assert "eta" not in rows


def test_status_json_prints_the_generation_object(
    fake_server: FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "gen_7", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["id"], shown["status"]) == ("gen_7", "completed")
    assert shown["video"]["url"] == COMPLETED["video"]["url"]


def test_wait_follows_with_the_progress_bar_and_exits_0_once_completed(
    fake_server: FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_server.states = [generation("queued", queue_position=1),
                          generation("generating", progress=40), COMPLETED]  # fmt: skip

    assert main(["wait", "gen_7", *FAST]) == 0

    captured = capsys.readouterr()
    assert captured.out == "gen_7: completed\n"
    assert "queued (1 ahead)" in captured.err
    assert "rendering  40%" in captured.err
    assert "completed 100%" in captured.err
    assert "`reelforge download gen_7`" in captured.err


def test_wait_prints_the_engines_warnings_to_stderr(
    fake_server: FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_server.states = [{**COMPLETED, "meta": {"warnings": ["far from the model's world"]}}]
    assert main(["wait", "gen_7", *FAST]) == 0
    captured = capsys.readouterr()
    assert "reelforge: warning: far from the model's world\n" in captured.err
    assert captured.out == "gen_7: completed\n"


@pytest.mark.parametrize(
    ("state", "argv", "code", "message"),
    [
        (generation("error", error={"name": "nsfw", "message": "refused"}), [], 1,
         "generation gen_7 failed: nsfw: refused"),
        (generation("generating", progress=40), ["--timeout", "0.01"], 4,
         "`reelforge wait gen_7` picks it up later"),
    ],
)  # fmt: skip
def test_wait_exits_with_the_documented_code_when_it_does_not_complete(
    state: dict[str, Any],
    argv: list[str],
    code: int,
    message: str,
    fake_server: FakeServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_server.states = [state]
    assert main(["wait", "gen_7", *argv, *FAST, "--json"]) == code
    captured = capsys.readouterr()
    assert message in captured.err
    assert json.loads(captured.out)["status"] == state["status"]  # --json: its last state


def test_wait_on_an_unknown_id_exits_2(
    fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def not_found(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"message": "generation not found", "statusCode": 404})

    monkeypatch.setattr(fake_server, "handle", not_found)
    assert main(["wait", "nope", *FAST]) == 2
    assert "generation not found" in capsys.readouterr().err


def test_download_saves_the_video_as_id_mp4_and_prints_the_path(
    fake_server: FakeServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["download", "gen_7"]) == 0
    assert (tmp_path / "gen_7.mp4").read_bytes() == VIDEO_BYTES
    assert capsys.readouterr().out == "gen_7.mp4\n"


def test_download_preview_saves_the_gif_where_asked(
    fake_server: FakeServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "new" / "fox.gif"
    assert main(["download", "gen_7", "--preview", "-o", str(output), "--json"]) == 0
    assert output.read_bytes() == GIF_BYTES
    shown = json.loads(capsys.readouterr().out)
    assert (shown["id"], shown["path"]) == ("gen_7", str(output))


def test_download_of_an_unfinished_generation_exits_1_and_says_to_wait(
    fake_server: FakeServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    fake_server.states = [generation("generating", progress=40)]
    assert main(["download", "gen_7"]) == 1
    assert "still generating (40%); `reelforge wait gen_7`" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_download_of_a_failed_generation_exits_1_with_its_error(
    fake_server: FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_server.states = [generation("error", error={"name": "nsfw", "message": "refused"})]
    assert main(["download", "gen_7"]) == 1
    assert "generation gen_7 failed: nsfw: refused" in capsys.readouterr().err


def test_delete_deletes_and_says_so(
    fake_server: FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["delete", "gen_7"]) == 0
    assert capsys.readouterr().out == "gen_7: deleted\n"
    assert main(["delete", "gen_7", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"id": "gen_7", "deleted": True}
    assert [(r.method, r.url.path) for r in fake_server.requests] == [
        ("DELETE", "/v2/video/generations/gen_7")
    ] * 2


def test_delete_of_an_unknown_id_exits_2(
    fake_server: FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["delete", "gen_8"]) == 2
    assert "404" in capsys.readouterr().err


def test_generate_needs_a_prompt_or_an_image(
    fake_server: FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["generate"]) == 2
    assert "PROMPT" in capsys.readouterr().err


def test_models_served_prints_the_servers_table(
    fake_server: FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "served"]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split() == ["ID", "ENGINE", "TASK"]
    assert [row.split() for row in rows] == [
        [DEFAULT_TEXT_MODEL, "testsrc", "text-to-video"],
        [DEFAULT_IMAGE_MODEL, "wan", "image-to-video"],
    ]


class EntryPointSpy:
    """Stands in for `serve` / `run_worker`: records the settings it was started with."""

    def __init__(self) -> None:
        self.settings: Settings | None = None

    def __call__(self, settings: Settings) -> int:
        self.settings = settings
        return 0


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("HOST", "PORT", "MODELS", "WORKERS", "DATABASE_URL", "DEVICE", "DATA_DIR"):
        monkeypatch.delenv(f"REELFORGE_{name}", raising=False)
    return monkeypatch


def inject_module(monkeypatch: pytest.MonkeyPatch, name: str, **attributes: Any) -> None:
    module = ModuleType(name)
    for key, value in attributes.items():
        setattr(module, key, value)
    monkeypatch.setitem(sys.modules, name, module)


def test_serve_applies_flags_over_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("REELFORGE_MODELS", "klingai/v2-master-image-to-video=testsrc")
    clean_env.setenv("REELFORGE_WORKERS", "3")
    serve = EntryPointSpy()
    inject_module(clean_env, "reelforge.server", serve=serve)

    code = main(["serve", "--model", "X=testsrc", "--port", "9000"])

    assert code == 0
    assert serve.settings is not None
    assert serve.settings.port == 9000
    # --model adds to the environment's models; unflagged settings keep their env values.
    assert serve.settings.models == ["klingai/v2-master-image-to-video=testsrc", "X=testsrc"]
    assert serve.settings.workers == 3
    assert serve.settings.host == "127.0.0.1"


def test_worker_gets_the_storage_and_database_flags(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    run_worker = EntryPointSpy()
    inject_module(clean_env, "reelforge.worker.main", run_worker=run_worker)
    database_url = "postgresql+psycopg://reelforge@db/reelforge"

    code = main(
        ["worker", "--database-url", database_url, "--data-dir", str(tmp_path),
         "--device", "cpu"]
    )  # fmt: skip

    assert code == 0
    assert run_worker.settings is not None
    assert run_worker.settings.database_url == database_url
    assert run_worker.settings.data_dir == tmp_path
    assert run_worker.settings.device == "cpu"


def test_a_malformed_model_flag_is_a_usage_error(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    serve = EntryPointSpy()
    inject_module(clean_env, "reelforge.server", serve=serve)
    assert main(["serve", "--model", "no-engine-here"]) == 2
    assert "ID=ENGINE[:CHECKPOINT]" in capsys.readouterr().err
    assert serve.settings is None  # the server never started


def test_make_tiny_refuses_a_folder_that_is_not_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["models", "make-tiny", "wan2.1-t2v", str(tmp_path)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_make_tiny_names_the_architectures_it_knows(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "make-tiny", "sora-2", "out"]) == 2
    assert "wan2.2-ti2v" in capsys.readouterr().err


# --- help, usage errors and exit codes ------------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parents[2]


def all_parsers() -> dict[str, argparse.ArgumentParser]:
    """Every command and action parser by its prog ('reelforge models pull', ...)."""
    found: dict[str, argparse.ArgumentParser] = {}

    def visit(parser: argparse.ArgumentParser) -> None:
        found[parser.prog] = parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child in dict.fromkeys(action.choices.values()):
                    visit(child)

    visit(build_parser())
    return found


@pytest.fixture
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")


# What `reelforge --help` must not pay for: the HTTP stack, pydantic, the array and image
# libraries, torch, the server. Each command imports them when it runs.
HEAVY_MODULES = ("httpx", "pydantic", "pydantic_settings", "numpy", "PIL", "torch", "uvicorn",
                 "tqdm", "reelforge.client", "reelforge.settings")  # fmt: skip


def test_building_the_parser_imports_nothing_heavy() -> None:
    # A fresh interpreter: this one has long imported them all.
    code = (
        "import sys; from reelforge.cli.main import build_parser; build_parser(); "
        "print('\\n'.join(sorted(sys.modules)))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    loaded = result.stdout.split()
    assert "reelforge.cli.main" in loaded
    heavy = [m for m in loaded if any(m == h or m.startswith(f"{h}.") for h in HEAVY_MODULES)]
    assert heavy == []


def test_a_commands_help_loads_what_it_needs_on_first_print(wide_terminal: None) -> None:
    # serve's help comes from Settings (pydantic), filled in only when it is printed.
    serve = all_parsers()["reelforge serve"]
    first, second = serve.format_help(), serve.format_help()
    assert first == second
    assert "\n  REELFORGE_PORT " in first


def test_every_help_shows_its_purpose_examples_and_environment(wide_terminal: None) -> None:
    parsers = all_parsers()
    assert len(parsers) == 26  # reelforge, 13 commands, 5 models, 2 micro and 5 keys actions
    for prog, parser in parsers.items():
        text = parser.format_help()
        assert parser.description, prog
        assert "\nexamples:\n  reelforge " in text, prog
        assert "\nenvironment:\n  " in text, prog
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                # Each command or action is listed with what it does.
                assert all(choice.help for choice in action._choices_actions), prog
                continue
            assert action.help, f"{prog} {action.option_strings or action.dest} has no help"


def test_help_keeps_descriptions_and_examples_as_written(wide_terminal: None) -> None:
    parsers = all_parsers()
    cancel_help = parsers["reelforge cancel"].format_help()
    # Lines as written, not reflowed into one paragraph.
    assert "\nCancel a generation on a running server. A queued generation ends at once; a\n" in (
        cancel_help
    )
    assert "\n  reelforge cancel 3f6c2a9e-...\n" in cancel_help
    micro_help = parsers["reelforge micro"].format_help()
    assert (
        "\n  reelforge micro train --out my-micro.safetensors      # about 40 min on 2 CPU cores\n"
        in micro_help
    )
    # The help's default steps are the trainer's.
    from reelforge.micro.train import TrainConfig

    train_help = parsers["reelforge micro train"].format_help()
    assert f"optimiser steps ({TrainConfig.steps})" in train_help
    assert f"the default {TrainConfig.steps} steps" in train_help
    # Sub-actions are listed with what they do.
    models_help = parsers["reelforge models"].format_help()
    assert "download a catalog model (resumable, verified)" in models_help


@pytest.mark.parametrize("command", ["reelforge serve", "reelforge worker"])
def test_serve_and_worker_help_name_every_setting_variable(
    command: str, wide_terminal: None
) -> None:
    text = all_parsers()[command].format_help()
    for name, field in Settings.model_fields.items():
        variable = parsing.setting_variable(name, field)  # CUDA_VISIBLE_DEVICES is CUDA's own
        assert variable.startswith("REELFORGE_") or variable == "CUDA_VISIBLE_DEVICES"
        assert f"\n  {variable} " in text or f"\n  {variable}\n" in text, variable
        assert field.description is not None
        first_words = " ".join(field.description.split()[:3])
        assert first_words in " ".join(text.split()), variable


def test_a_settings_flag_names_its_variable_and_default(wide_terminal: None) -> None:
    text = " ".join(all_parsers()["reelforge serve"].format_help().split())
    assert "Port the API server binds. [$REELFORGE_PORT; default: 8000]" in text


@pytest.mark.parametrize(
    "command",
    ["generate", "cancel", "models served", "list", "status", "wait", "download", "delete"],
)
def test_client_commands_name_their_variables(command: str, wide_terminal: None) -> None:
    text = all_parsers()[f"reelforge {command}"].format_help()
    assert "\n  REELFORGE_BASE_URL " in text
    assert "\n  REELFORGE_API_KEY " in text


def test_main_help_and_readme_list_every_exit_code(
    wide_terminal: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--help"]) == 0
    help_text = capsys.readouterr().out
    readme = (REPO_ROOT / "README.md").read_text()
    codes = [code for code, _ in common.EXIT_CODES]
    assert codes == [0, 1, 2, 3, 4, 130]
    for code, meaning in common.EXIT_CODES:
        assert f"\n  {code:<3}  {meaning}" in help_text, code
        assert f"| {code} |" in readme, code


@pytest.mark.parametrize(
    ("argv", "usage", "suggestion"),
    [
        (["generate", "a fox", "--durration", "5"], "reelforge generate", "--duration"),
        (["cancel", "gen_7", "--base_url", "http://x"], "reelforge cancel", "--base-url"),
        (["models", "make-tiny", "wan2.1-t2v", "out", "--sed", "1"],
         "reelforge models make-tiny", "--seed"),
        (["serve", "--prot=9000"], "reelforge serve", "--port"),
    ],
)  # fmt: skip
def test_an_unknown_flag_gets_its_commands_usage_and_a_suggestion(
    argv: list[str], usage: str, suggestion: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: {usage} ")
    assert f"did you mean {suggestion}?" in err


def test_a_mistyped_command_gets_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "lst"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: reelforge models ")
    assert "did you mean 'list'?" in err


@pytest.mark.parametrize(
    "command", [["generate", "a fox"], ["cancel", "gen_7"], ["models", "served"]]
)
@pytest.mark.parametrize("url", ["127.0.0.1:8000", "localhost:8000"])
def test_a_base_url_without_a_scheme_is_a_usage_error_that_shows_the_fix(
    command: list[str], url: str, fake_server: FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*command, "--base-url", url]) == 2
    err = capsys.readouterr().err
    assert f"write http://{url}" in err
    assert fake_server.requests == []  # nothing was sent


def test_a_base_url_without_a_scheme_from_the_environment_is_a_usage_error_too(
    fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REELFORGE_BASE_URL", "gpu-box:8000")
    assert main(["cancel", "gen_7"]) == 2
    err = capsys.readouterr().err
    assert "REELFORGE_BASE_URL=gpu-box:8000 has no scheme; write http://gpu-box:8000" in err


def test_a_base_url_from_the_environment_reaches_the_client(
    fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REELFORGE_BASE_URL", "https://gpu-box:8443")
    assert main(["models", "served"]) == 0
    (request,) = fake_server.requests
    assert str(request.url) == "https://gpu-box:8443/v1/models"


def test_ctrl_c_in_a_local_command_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    @dataclasses.dataclass(frozen=True)
    class TrainConfig:
        seed: int = 0
        threads: int = 0
        steps: int = 4000
        save_every: int = 500
        batch_size: int = 32

    def train(out: Path, config: TrainConfig) -> Path:
        raise KeyboardInterrupt

    inject_module(monkeypatch, "reelforge.micro.train", TrainConfig=TrainConfig, train=train)
    try:
        code = main(["micro", "train", "--out", "unused.safetensors"])
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped main() as a traceback")
    assert code == 130
    assert "interrupted" in capsys.readouterr().err


@dataclasses.dataclass(frozen=True)
class _FakeTrainConfig:
    seed: int = 0
    threads: int = 0
    steps: int = 4000
    save_every: int = 500
    batch_size: int = 32


def fake_training(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Path]:
    """Replace `reelforge.micro.train` with one that records where it would write."""
    written: list[Path] = []

    def train(out: Path, config: _FakeTrainConfig) -> Path:
        written.append(out)
        stand_in = tmp_path / "stand-in.safetensors"  # never the shipped file
        stand_in.write_bytes(b"weights")
        return stand_in

    inject_module(monkeypatch, "reelforge.micro.train", TrainConfig=_FakeTrainConfig, train=train)
    return written


def test_micro_train_writes_to_the_current_directory_by_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    written = fake_training(monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["micro", "train", "--steps", "1"]) == 0
    assert [path.resolve() for path in written] == [tmp_path / "micro.safetensors"]


@pytest.mark.parametrize("spelling", ["direct", "through .."])
def test_micro_train_refuses_to_overwrite_the_shipped_checkpoint(
    spelling: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    written = fake_training(monkeypatch, tmp_path)
    shipped = REPO_ROOT / "reelforge" / "micro" / "weights" / "micro.safetensors"
    out = shipped if spelling == "direct" else shipped.parent / ".." / "weights" / shipped.name
    assert main(["micro", "train", "--out", str(out)]) == common.EXIT_USAGE
    assert written == []
    assert "--overwrite-shipped" in capsys.readouterr().err


def test_micro_train_overwrites_the_shipped_checkpoint_when_told_to(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    written = fake_training(monkeypatch, tmp_path)
    shipped = REPO_ROOT / "reelforge" / "micro" / "weights" / "micro.safetensors"
    assert main(["micro", "train", "--out", str(shipped), "--overwrite-shipped"]) == 0
    assert written == [shipped]


def test_status_of_a_running_generation_names_its_phase(
    fake_server: FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_server.states = [generation("generating", progress=95, cancel_requested=True)]
    assert main(["status", "gen_7"]) == 0
    rows = status_rows(capsys.readouterr().out)
    assert rows["status"] == "generating (encoding), cancel requested"
    assert rows["progress"] == "95%"


def test_cancel_json_prints_the_generation_object(
    fake_server: FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    canceled = generation("queued", cancel_requested=True)
    fake_server.create_answer = httpx.Response(200, json=canceled)  # every POST answers this
    assert main(["cancel", "gen_7", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["id"], shown["cancel_requested"]) == ("gen_7", True)
    (request,) = fake_server.requests
    assert request.url.path == "/v2/video/generations/gen_7/cancel"


def test_serve_api_processes_flag_sets_the_setting(capsys: pytest.CaptureFixture[str]) -> None:
    from reelforge.cli.serve import settings_from_args

    args = build_parser().parse_args(["serve", "--api-processes", "3"])
    assert settings_from_args(args).api_processes == 3
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--api-processes", "0"])
    assert "must be at least 1" in capsys.readouterr().err
