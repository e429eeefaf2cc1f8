"""`make demo` (python -m reelforge.demo) in a shell that exports a server's configuration."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO_ROOT

pytestmark = pytest.mark.slow


def test_the_demo_runs_in_a_shell_that_exports_api_keys_and_a_server_setup(
    tmp_path: Path,
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        # What the README suggests exporting for a server: the demo used to send no key to
        # a server that then required one (401, a traceback) ...
        "REELFORGE_API_KEYS": "key1,key2",
        # ... and these would have left it nothing to render or pointed it elsewhere.
        "REELFORGE_WORKERS": "0",
        "REELFORGE_PUBLIC_BASE_URL": "http://proxy.invalid",
        "REELFORGE_DATABASE_URL": f"sqlite:///{tmp_path / 'users-own.db'}",
    }
    env.pop("REELFORGE_MODELS_FILE", None)  # the embedded defaults: the micro model
    result = subprocess.run(
        [sys.executable, "-m", "reelforge.demo", "--out", str(tmp_path / "out")],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / "out" / "demo.mp4").stat().st_size > 1000
    assert (tmp_path / "out" / "demo.gif").stat().st_size > 100
    assert not (tmp_path / "users-own.db").exists()  # the user's database was left alone
    # The server's log (its stderr is the demo's): no traceback, no library progress bar.
    assert "Traceback" not in result.stderr, result.stderr[-4000:]
    assert not re.search(r"\d+%\|", result.stderr), result.stderr[-4000:]
