"""README.md's *Set up* and *Use* sections, followed as typed: a fresh checkout, a fresh shell.

The test copies the working tree (what `git ls-files` lists, untracked files included) into a
temporary folder, then runs every command of the two sections' shell blocks, in order, in
`bash --noprofile --norc` with a new HOME and PATH stripped of any virtual environment. A
command that changes the shell (`source`, `export`, `cd`) is replayed before every later
one, as it would persist in a terminal. Every command must exit 0 (a command that is not
found exits 127); curl's answers must be JSON and not an error body. Python blocks run with
the `python` the shell then finds.

Where it departs from a user's terminal, and why:

- `make install` would download torch and the rest; the test builds `.venv` first, offline,
  from this interpreter's packages (a `.pth` file, plus `pip install -e` of the copy), so
  `make install` finds it up to date. `REELFORGE_README_REAL_INSTALL=1` skips that: the real
  install, from the network or the configured wheelhouse (minutes, about 2 GB).
- `make serve` is started in the background (the server the *Use* commands talk to) and
  stopped with Ctrl-C's signal at the end. It serves on a free port, not 8000, which may be
  taken on a shared machine: `127.0.0.1:8000` in the commands is rewritten to that port, and
  the shell exports `REELFORGE_PORT` and `REELFORGE_BASE_URL` for it.
- The placeholder generation id `3f0c…` stands for the id the last command printed (the
  curl block's generation, which `reelforge status`, `wait`, `download` and `delete` then
  use); for `reelforge cancel` it is a generation submitted just before, since a finished
  one answers 409 (exit 2).
- `photo.jpg`, which `--image photo.jpg` presumes, is written into the checkout.

Skipped (each listed in `SKIPPED` with its reason): `make test` (the whole suite, this test
included; it also installs the AI/ML API SDK from the network), reinstalling torch from
download.pytorch.org (network, GBs), and the AI/ML API SDK block (the SDK lives in its own
environment, `make sdk-env`, from the network; `tests/e2e/test_service.py` drives it).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.e2e.conftest import REPO_ROOT, free_port, wait_for

pytestmark = pytest.mark.slow

SECTIONS = ("Set up", "Use")
PLACEHOLDER_ID = "3f0c…"
COMMAND_TIMEOUT_S = 400
SERVER_START_TIMEOUT_S = 240

# (pattern searched in a shell command or a python block, why it is not run)
SKIPPED = (
    (r"^make test\b", "runs the whole suite (this test included) and installs the AI/ML API "
     "SDK from the network"),
    (r"pip install torch\b", "reinstalls torch from download.pytorch.org (network, GBs)"),
    (r"from aimlapi import", "needs the AI/ML API SDK, in its own environment from the network "
     "(`make sdk-env`); tests/e2e/test_service.py drives it"),
)  # fmt: skip
BACKGROUND = re.compile(r"^make serve\b")
SHELL_STATE = re.compile(r"^(source|\.|export|cd)\s")


@dataclass
class Block:
    section: str
    language: str
    text: str
    line: int


def readme_blocks(text: str, sections: tuple[str, ...] = SECTIONS) -> list[Block]:
    """The fenced blocks under the given `## ` sections (their `###` subsections included)."""
    blocks: list[Block] = []
    section = ""
    fence: Block | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if fence is not None:
            if line.startswith("```"):
                blocks.append(fence)
                fence = None
            else:
                fence.text += line + "\n"
            continue
        if line.startswith("## "):
            section = line[3:].strip()
        elif line.startswith("```") and section in sections:
            fence = Block(section, line[3:].strip(), "", number + 1)
    return blocks


def shell_commands(script: str) -> list[str]:
    """The commands of a shell block: continuation lines and multi-line quotes joined,
    comment lines and blank lines dropped."""
    commands: list[str] = []
    pending = ""
    for line in script.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending = f"{pending}\n{line}" if pending else line
        if pending.endswith("\\"):
            continue
        try:
            shlex.split(pending, comments=True)
        except ValueError:  # a quote still open: the command goes on on the next line
            continue
        commands.append(pending)
        pending = ""
    assert not pending, f"unterminated shell command in README.md: {pending!r}"
    return commands


def skip_reason(command: str) -> str | None:
    for pattern, reason in SKIPPED:
        if re.search(pattern, command, flags=re.MULTILINE):
            return reason
    return None


# --- the checkout and the shell -------------------------------------------------------------


def copy_checkout(destination: Path) -> None:
    """The working tree as a fresh clone would have it: tracked and untracked files that git
    does not ignore, nothing built."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO_ROOT / name
        if source.is_file():  # a deleted file still listed by --cached
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def seed_venv(checkout: Path, env: dict[str, str]) -> None:
    """`.venv` as `make install` would leave it, without downloading: this interpreter's
    packages through a `.pth` file, and the checkout installed editable (its `reelforge`
    console script included)."""
    venv = checkout / ".venv"
    base_python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base_python, "-m", "venv", "--without-pip", str(venv)], check=True)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site_packages = venv / "lib" / version / "site-packages"
    ours = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site_packages / "_readme_test_dependencies.pth").write_text("\n".join(ours) + "\n")
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps",
         "--no-build-isolation", "--no-index", "-e", str(checkout)],
        env=env,
        cwd=checkout,
        check=True,
        capture_output=True,
    )  # fmt: skip
    (venv / ".installed").touch()  # newer than pyproject.toml: `make install` is up to date


def fresh_shell_env(home: Path, port: int) -> dict[str, str]:
    """A new login's environment: this one without the test run's settings, any activated
    virtual environment or the developer's home."""
    dropped = ("REELFORGE_", "HF_", "XDG_", "PYTHON", "VIRTUAL_ENV", "CONDA_", "PYTEST_")
    env = {key: value for key, value in os.environ.items() if not key.startswith(dropped)}
    venvs = [Path(sys.prefix)] + (
        [Path(os.environ["VIRTUAL_ENV"])] if "VIRTUAL_ENV" in os.environ else []
    )
    path = [
        entry
        for entry in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)
        if entry and not any(Path(entry).is_relative_to(venv) for venv in venvs)
    ]
    env.update(
        HOME=str(home),
        PATH=os.pathsep.join(path),
        REELFORGE_PORT=str(port),
        REELFORGE_BASE_URL=f"http://127.0.0.1:{port}",
    )
    return env


@dataclass
class Shell:
    """Runs commands as typed in one terminal: `source`, `export` and `cd` persist."""

    cwd: Path
    env: dict[str, str]
    state: list[str] = field(default_factory=list)

    def script(self, command: str) -> str:
        return "\n".join(["set -e", *self.state, command])

    def run(
        self, command: str, timeout_s: float = COMMAND_TIMEOUT_S
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["bash", "--noprofile", "--norc", "-c", self.script(command)],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        if SHELL_STATE.match(command) and result.returncode == 0:
            self.state.append(command)
        return result

    def start(self, command: str, log_path: Path) -> subprocess.Popen[bytes]:
        with open(log_path, "wb") as log:
            return subprocess.Popen(
                ["bash", "--noprofile", "--norc", "-c", self.script(f"exec {command}")],
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # one process group: make and the server it runs
            )


def stop(process: subprocess.Popen[bytes]) -> None:
    """Ctrl-C, as the README says, then a kill if it does not stop."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


# --- the test --------------------------------------------------------------------------------


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("needs a git checkout of reelforge (to copy what a clone has)")
    destination = tmp_path / "reelforge"
    copy_checkout(destination)
    return destination


@dataclass
class Run:
    """What the README's commands have shown so far."""

    port: int
    last_id: str | None = None
    servers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


@pytest.fixture
def run_state() -> Iterator[Run]:
    state = Run(port=free_port())
    yield state
    for server in state.servers:
        stop(server)


def test_the_readme_set_up_and_use_commands_work_as_typed(
    checkout: Path, tmp_path: Path, run_state: Run
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    shell = Shell(checkout, fresh_shell_env(home, run_state.port))
    # The shell is fresh: nothing but the README's own set-up puts `reelforge` on PATH.
    assert shell.run("command -v reelforge").returncode != 0
    if not os.environ.get("REELFORGE_README_REAL_INSTALL"):
        seed_venv(checkout, shell.env)
    Image.new("RGB", (96, 64), (200, 30, 30)).save(checkout / "photo.jpg")

    blocks = readme_blocks((checkout / "README.md").read_text())
    assert {block.section for block in blocks} == set(SECTIONS), "README sections renamed?"
    for block in blocks:
        if block.language == "sh":
            for command in shell_commands(block.text):
                run_command(shell, run_state, command, checkout)
        elif block.language == "python":
            run_python_block(shell, run_state, block, checkout)

    # The README still documents, and this test still ran, the essentials.
    for essential in ("make install", "source .venv/bin/activate", "make demo", "make serve",
                      "curl", "reelforge generate", "reelforge cancel", "reelforge list",
                      "reelforge wait", "reelforge download", "reelforge delete"):  # fmt: skip
        assert any(command.startswith(essential) for command in run_state.ran), essential
    for command, reason in run_state.skipped:  # shown with -s, or when the test fails
        print(f"skipped {command!r}: {reason}")


def run_command(shell: Shell, state: Run, command: str, checkout: Path) -> None:
    reason = skip_reason(command)
    if reason is not None:
        state.skipped.append((command, reason))
        return
    command = command.replace("127.0.0.1:8000", f"127.0.0.1:{state.port}")
    if BACKGROUND.match(command):
        start_server(shell, state, command, checkout)
        return
    if PLACEHOLDER_ID in command:
        generation_id = (
            fresh_generation(state) if command.startswith("reelforge cancel") else (state.last_id)
        )
        assert generation_id, f"nothing printed a generation id before: {command}"
        command = command.replace(PLACEHOLDER_ID, generation_id)
    result = shell.run(command)
    assert result.returncode == 0, failure(command, result)
    state.ran.append(command)
    if command.startswith("make install"):
        # `make install` says how to put `reelforge` on PATH, as the README does.
        assert "source .venv/bin/activate" in result.stdout, result.stdout
    if command.startswith("make demo"):
        assert (checkout / "out" / "demo.mp4").stat().st_size > 0
    if command.startswith("reelforge generate"):
        # The examples are of the micro model's world: no "far from what it knows" warning.
        assert "reelforge: warning:" not in result.stderr, failure(command, result)
    if command.startswith("curl"):
        answer = json.loads(result.stdout)
        assert "statusCode" not in answer, failure(command, result)
        state.last_id = answer.get("id", state.last_id)


def run_python_block(shell: Shell, state: Run, block: Block, checkout: Path) -> None:
    reason = skip_reason(block.text)
    if reason is not None:
        state.skipped.append((f"README.md line {block.line} (python)", reason))
        return
    script = checkout / f"readme_line_{block.line}.py"
    script.write_text(block.text.replace("127.0.0.1:8000", f"127.0.0.1:{state.port}"))
    result = shell.run(f"python {script.name}")
    assert result.returncode == 0, failure(
        f"the python block at README.md line {block.line}", result
    )
    state.ran.append(f"python {script.name}")


def start_server(shell: Shell, state: Run, command: str, checkout: Path) -> None:
    log_path = checkout / "serve.log"
    server = shell.start(command, log_path)
    state.servers.append(server)

    def ready() -> bool:
        assert server.poll() is None, f"{command} exited: {log_path.read_text()[-4000:]}"
        try:
            return httpx.get(f"http://127.0.0.1:{state.port}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ready, SERVER_START_TIMEOUT_S, f"`{command}` to serve")
    state.ran.append(command)
    log = log_path.read_text()
    # It says where the jobs live: the per-user data dir, whichever folder it started in.
    assert f"data dir {Path(shell.env['HOME']) / '.local' / 'share' / 'reelforge'}" in log, log


def fresh_generation(state: Run) -> str:
    """A generation that is still queued or running when `reelforge cancel` comes."""
    answer = httpx.post(
        f"http://127.0.0.1:{state.port}/v2/video/generations",
        json={"model": "klingai/v2-master-text-to-video", "prompt": "a blue square moving up",
              "duration": 10},
        timeout=30,
    )  # fmt: skip
    answer.raise_for_status()
    generation_id: str = answer.json()["id"]
    return generation_id


def failure(what: str, result: subprocess.CompletedProcess[str]) -> str:
    hint = (
        " (command not found: is it on PATH as the README says?)"
        if result.returncode == 127
        else ""
    )
    return (
        f"`{what}` exited {result.returncode}{hint}\n"
        f"--- stdout ---\n{result.stdout[-3000:]}\n--- stderr ---\n{result.stderr[-3000:]}"
    )


def test_the_readme_parser_finds_every_command_of_a_block() -> None:
    script = """
make demo    # it's a comment
curl -s http://x \\
  -H 'A: b' -d '{"a": 1,
       "b": 2}'
# {"id": "3f0c…"}

reelforge cancel 3f0c…            # client.cancel_generation("3f0c…") in Python
"""
    assert shell_commands(script) == [
        "make demo    # it's a comment",
        "curl -s http://x \\\n  -H 'A: b' -d '{\"a\": 1,\n       \"b\": 2}'",
        'reelforge cancel 3f0c…            # client.cancel_generation("3f0c…") in Python',
    ]
