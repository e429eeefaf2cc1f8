"""`serve` with several API processes on one port (REELFORGE_API_PROCESSES)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import LiveServer, wait_for

pytestmark = pytest.mark.slow

T2V = "klingai/v2-master-text-to-video"


def children(pid: int) -> set[int]:
    """Every descendant of `pid`, from /proc."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found |= {int(child)} | children(int(child))
    return found


def test_two_api_processes_serve_one_port_and_stop_with_serve(tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "data", {"REELFORGE_API_PROCESSES": "2"}).start()
    try:
        assert server.process is not None
        log = server.log_path
        assert log is not None

        def api_processes() -> set[str] | None:
            started = set(re.findall(r"Started server process \[(\d+)\]", log.read_text()))
            return started if len(started) >= 2 else None

        started = wait_for(api_processes, 60, "both API processes to start")
        api_pids = {int(pid) for pid in started}
        assert len(api_pids) == 2 and api_pids <= children(server.process.pid)
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            created = client.post(
                "/v2/video/generations", json={"model": T2V, "prompt": "a red circle"}
            )
            assert created.status_code == 200, created.text
            generation_id = created.json()["id"]

            def finished() -> dict[str, object] | None:
                body: dict[str, object] = client.get(
                    f"/v2/video/generations/{generation_id}"
                ).json()
                return body if body["status"] in ("completed", "error") else None

            done = wait_for(finished, 120, "the generation to finish")
            assert done["status"] == "completed", done
            # Either process answers every route, from the same database.
            assert all(
                client.get(f"/v2/video/generations/{generation_id}").status_code == 200
                for _ in range(20)
            )
        family = children(server.process.pid)
    finally:
        server.stop()
    # Stopping serve stops its API processes and its worker.
    wait_for(lambda: not any(os.path.exists(f"/proc/{pid}") for pid in family), 30, "children")
