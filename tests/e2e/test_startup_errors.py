"""`reelforge serve` and `reelforge worker` on a database they cannot use: one line, quickly.

Each case runs the real command as a subprocess against a real fault (a closed port, a
port that completes the TCP handshake and never answers, a misnamed host or database, a
file of random bytes) and checks that it exits non-zero within 10 s with exactly one
`reelforge: error:` line on stderr and no traceback.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import POSTGRES_URL
from tests.e2e.conftest import REPO_ROOT, TESTSRC_REGISTRY, free_port

pytestmark = pytest.mark.slow

EXIT_WITHIN_S = 10.0
CONNECT_TIMEOUT_S = 2


def start_and_fail(
    command: str, data_dir: Path, database_url: str = "", **settings: str
) -> tuple[str, float]:
    """Run `reelforge <command>` with extra `REELFORGE_*` settings; return its one error line
    and how long it took to exit."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "REELFORGE_DATA_DIR": str(data_dir),
        "REELFORGE_PORT": str(free_port()),
        "REELFORGE_MODELS_FILE": str(TESTSRC_REGISTRY),
        "REELFORGE_DATABASE_URL": database_url,
        **{f"REELFORGE_{k.upper()}": v for k, v in settings.items()},
    }
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "reelforge", command],
            env=env,
            capture_output=True,
            text=True,
            timeout=EXIT_WITHIN_S * 2,  # past this it is a hang, not a slow exit
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"reelforge {command} was still running after {EXIT_WITHIN_S * 2:.0f} s")
    elapsed = time.monotonic() - started
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode != 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 1 and lines[0].startswith("reelforge: error: "), done.stderr
    assert elapsed < EXIT_WITHIN_S, f"took {elapsed:.1f} s: {lines[0]}"
    return lines[0], elapsed


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port whose kernel completes the TCP handshake; nobody ever answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_refused_database_is_one_line_without_the_password(command: str, tmp_path: Path) -> None:
    url = f"postgresql+psycopg://postgres:s3cret@127.0.0.1:{free_port()}/test"
    line, _ = start_and_fail(command, tmp_path, url)
    assert "cannot reach the job database at postgresql+psycopg://postgres:***@" in line
    assert "(connection refused)" in line and "REELFORGE_DATABASE_URL" in line
    assert "s3cret" not in line


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_black_holed_database_gives_up_after_the_connect_timeout(
    command: str, tmp_path: Path, silent_port: int
) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{silent_port}/test"
    # The shortest connect timeout the settings allow (the default is 5 s): the same path,
    # less waiting.
    line, elapsed = start_and_fail(
        command, tmp_path, url, database_connect_timeout_s=str(CONNECT_TIMEOUT_S)
    )
    assert "(connection timed out)" in line
    # It did wait the connect timeout, not fail for another reason.
    assert elapsed > CONNECT_TIMEOUT_S - 0.5


def test_unknown_database_host_is_one_line(tmp_path: Path) -> None:
    line, _ = start_and_fail("worker", tmp_path, "postgresql://postgres@no-such-host.invalid/x")
    assert "cannot find the host" in line and "(unknown host)" in line


@pytest.mark.postgres
def test_missing_database_says_how_to_create_it(tmp_path: Path) -> None:
    try:
        socket.create_connection(("127.0.0.1", make_url(POSTGRES_URL).port or 5432), 2).close()
    except OSError:
        pytest.skip("PostgreSQL is not running")
    url = make_url(POSTGRES_URL).set(database="reelforge_no_such_db")
    line, _ = start_and_fail("serve", tmp_path, url.render_as_string(hide_password=False))
    assert "does not exist; create it (e.g. createdb reelforge_no_such_db)" in line


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_corrupt_sqlite_file_names_it_and_what_to_do(command: str, tmp_path: Path) -> None:
    database = tmp_path / "reelforge.db"  # the default database of this data dir
    database.write_bytes(os.urandom(64 * 1024))
    line, _ = start_and_fail(command, tmp_path)
    assert f"the job database file {database} is damaged or is not a SQLite database" in line
    assert "move it aside (or restore a backup)" in line


@pytest.mark.parametrize(
    "url", ["postgresql://u:s3cret@db:not-a-port/x", "nosuchdialect://u:s3cret@db/x"]
)
def test_unusable_url_is_one_line(url: str, tmp_path: Path) -> None:
    line, _ = start_and_fail("worker", tmp_path, url)
    assert "REELFORGE_DATABASE_URL is not a usable database URL" in line
    assert "s3cret" not in line
