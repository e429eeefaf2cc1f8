"""Schemathesis against a live server's own OpenAPI document: no 5xx, every answer (status,
content type, headers, body) as the document says, and none carrying a stack trace or one of
the server's secrets (`fuzz_checks.py`, a check of our own).

It reads the document, so a route added later is fuzzed without a line here. The fuzzer lives
in its own pinned environment (`make fuzz-env`, which `make test` runs).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelforge.api.openapi import Generation
from tests.e2e.conftest import REPO_ROOT, LiveServer
from tests.e2e.test_service import T2V, create, wait_terminal

pytestmark = pytest.mark.slow

SCHEMATHESIS = REPO_ROOT / ".venv-schemathesis" / "bin" / "schemathesis"
OWN_CHECKS = Path(__file__).with_name("fuzz_checks.py")
CHECKS = (
    "not_a_server_error",
    "no_secret_or_stack_trace",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
# About 800 requests, 20 s on two cores; the coverage phase (edge values of every parameter
# and body field) takes half of it whatever the number of examples.
MAX_EXAMPLES = 15
SEED = 1
FUZZ_TIMEOUT_S = 240
# A request that takes this long is a hang: schemathesis reports it and exits non-zero.
REQUEST_TIMEOUT_S = 10
# Secrets both fuzzed servers are configured with, which no answer may carry.
SIGNING_SECRET = "fuzz-url-signing-secret-7f3a9c"
WEBHOOK_SECRET = "whsec_ZnV6ei13ZWJob29rLXNlY3JldC0xMjM0NQ=="
SECRETS = {
    "REELFORGE_URL_SIGNING_SECRET": SIGNING_SECRET,
    "REELFORGE_WEBHOOK_SECRET": WEBHOOK_SECRET,
}


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A keyless server (loopback clients only): the browser guard is in the way of every
    request, as in the default set-up."""
    server = LiveServer(tmp_path_factory.mktemp("fuzz") / "data", dict(SECRETS))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def schemathesis() -> Path:
    """The fuzzer's executable; requested before the server, so a skip starts nothing."""
    if not SCHEMATHESIS.exists():
        message = f"{SCHEMATHESIS} is missing: run `make test` (or `make fuzz-env`) to build it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return SCHEMATHESIS


def document(server: LiveServer) -> dict[str, Any]:
    answer = httpx.get(server.base_url + "/openapi.json")
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def test_completed_generation_is_as_documented(fuzz_server: LiveServer) -> None:
    # The fuzzer's jobs rarely finish while it runs, and it cannot follow a file link: this
    # is the completed generation and its downloads. First, before the fuzzer's jobs queue.
    final = wait_terminal(fuzz_server, create(fuzz_server, {"model": T2V, "prompt": "a fox"})["id"])
    assert final["status"] == "completed", final
    Generation.model_validate(final)  # the model the document is made from; no unknown field
    files = document(fuzz_server)["paths"]["/files/{key}"]["get"]["responses"]["200"]["content"]
    for name in ("video", "preview", "thumbnail"):
        download = httpx.get(final[name]["url"])
        assert download.status_code == 200, download.text
        assert download.headers["content-type"] in files, name
        assert download.headers["content-type"] == final[name]["content_type"]


# Creating a managed key turns a keyless server into a keyed one (for good): the admin
# routes are fuzzed on their own server, with a bootstrap admin key.
ADMIN_PATHS = r"^/v1/admin/"
FUZZ_KEY = "fuzz-bootstrap-admin-key"


@pytest.fixture(scope="module")
def keyed_fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(
        tmp_path_factory.mktemp("fuzz-keyed") / "data",
        # The document public, so the fuzzer (and `document`) load it without the key.
        {"REELFORGE_API_KEYS": FUZZ_KEY, "REELFORGE_DOCS": "public", **SECRETS},
    )
    try:
        yield server.start()
    finally:
        server.stop()


def run_schemathesis(
    schemathesis: Path, server: LiveServer, tmp_path: Path, extra: list[str], workers: int = 2
) -> tuple[str, int]:
    """Run the fuzzer on `server`'s document; return its output and how many operations it
    tested."""
    command = [
        str(schemathesis),
        "run",
        f"{server.base_url}/openapi.json",  # 127.0.0.1: a keyless server wants loopback
        "--checks",
        ",".join(CHECKS),
        "--phases",
        "coverage,fuzzing,stateful",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--generation-database",
        "none",  # no examples carried over from an earlier run: the same run every time
        "--request-timeout",
        str(REQUEST_TIMEOUT_S),
        "--workers",
        str(workers),
        "--no-color",
        *extra,
    ]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["SCHEMATHESIS_HOOKS"] = str(OWN_CHECKS)
    env["REELFORGE_FUZZ_SECRETS"] = ",".join(
        [SIGNING_SECRET, WEBHOOK_SECRET, *server.env.get("REELFORGE_API_KEYS", "").split(",")]
    )
    try:
        run = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=FUZZ_TIMEOUT_S
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"schemathesis ran past {FUZZ_TIMEOUT_S} s:\n{exc.stdout!s}\n{exc.stderr!s}")
    output = f"{run.stdout}\n{run.stderr}"
    assert run.returncode == 0, f"schemathesis exit code {run.returncode}:\n{output}"
    tested = re.search(r"Tested:\s+(\d+)", output)
    assert tested is not None, output
    assert server.log_path is not None
    server_log = server.log_path.read_text(errors="replace")
    assert "Traceback" not in server_log, server_log[-20_000:]
    return output, int(tested.group(1))


def operations(server: LiveServer, admin: bool) -> int:
    return sum(
        method in ("get", "put", "post", "delete", "patch")
        for path, item in document(server)["paths"].items()
        for method in item
        if bool(re.match(ADMIN_PATHS, path)) == admin
    )


def test_schemathesis_finds_no_server_error_and_nothing_undocumented(
    schemathesis: Path, fuzz_server: LiveServer, tmp_path: Path
) -> None:
    output, tested = run_schemathesis(
        schemathesis, fuzz_server, tmp_path, ["--exclude-path-regex", ADMIN_PATHS]
    )
    # Every other operation of the document was tested (none skipped as unusable).
    assert tested == operations(fuzz_server, admin=False), output


def test_schemathesis_on_the_admin_routes_with_an_admin_key(
    schemathesis: Path, keyed_fuzz_server: LiveServer, tmp_path: Path
) -> None:
    output, tested = run_schemathesis(
        schemathesis,
        keyed_fuzz_server,
        tmp_path,
        [
            "--include-path-regex",
            ADMIN_PATHS,
            "--header",
            f"Authorization: Bearer {FUZZ_KEY}",
        ],
        # One worker: with two, schemathesis' coverage phase hit a CPython 3.11 AST error
        # ("AST constructor recursion depth mismatch") on these routes, inside the fuzzer.
        workers=1,
    )
    assert tested == operations(keyed_fuzz_server, admin=True) > 0, output
