"""`reelforge keys` on a real SQLite database, as an operator runs it, against the real app on
that database: create, list, limits, revoke, rotate and expiry."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from reelforge.api.context import ApiContext
from reelforge.cli.main import main as cli_main
from reelforge.jobs import JobStore, open_store
from reelforge.settings import Settings
from tests.conftest import wait_for
from tests.integration.keyed_api import app_for, bearer, create

LIST = "/v2/video/generations"


class Operator:
    """Runs `reelforge keys ...` on one database and reads what it printed."""

    def __init__(self, database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.database_url = database_url
        self.capsys = capsys

    def run(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()  # what came before is not this command's
        code = cli_main(["keys", *args, "--database-url", self.database_url])
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *args: str) -> Any:
        code, out, err = self.run(*args, "--json")
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
def keys_database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'keys.db'}"


@pytest.fixture
def operator(keys_database: str, capsys: pytest.CaptureFixture[str]) -> Operator:
    return Operator(keys_database, capsys)


@pytest.fixture
def server(tmp_path: Path, keys_database: str) -> Any:
    """The app of a server on the operator's database, and a client of it."""
    settings = Settings(data_dir=tmp_path / "data", database_url=keys_database)
    store: JobStore = open_store(keys_database)
    ctx, client = app_for(settings, store)
    yield ctx, client
    store.engine.dispose()


def refresh(ctx: ApiContext) -> None:
    """The key ring's round, which the server's loop runs every 0.5 s."""
    assert ctx.auth.ring is not None
    ctx.auth.ring.refresh()


def status(client: TestClient, secret: str) -> int:
    return int(client.get(LIST, headers=bearer(secret)).status_code)


def test_keys_list_shows_name_prefix_scopes_state_times_and_limits(
    operator: Operator, server: tuple[ApiContext, TestClient]
) -> None:
    ctx, client = server
    assert operator.run("list")[1].strip() == "no keys yet: reelforge keys create --name NAME"
    web = operator.json(
        "create", "--name", "web-app", "--max-concurrent", "2", "--daily-video-seconds", "600"
    )
    ops = operator.json("create", "--name", "ops", "--scopes", "read,generate,admin")
    gone = operator.json("create", "--name", "old-batch-job-with-a-long-name")
    operator.run("revoke", gone["id"])
    changed = operator.json("limits", web["id"], "--max-queued", "5", "--max-concurrent", "0")
    assert changed["limits"] == {
        "max_concurrent": None,  # 0 removes it
        "max_queued": 5,
        "daily_video_seconds": 600.0,  # not given: kept
        "rate_per_minute": None,
    }
    refresh(ctx)
    assert status(client, web["secret"]) == 200
    assert ctx.auth.ring is not None
    ctx.auth.ring.record_use()  # the batch the server writes every 30 s

    code, out, _err = operator.run("list")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == [
        "ID", "NAME", "PREFIX", "SCOPES", "STATE", "CREATED", "LAST", "USED", "LIMITS"
    ]  # fmt: skip
    assert len(rows) == 3
    by_id = {row.split()[0]: row for row in rows}
    today = time.strftime("%Y-%m-%d")
    web_row = by_id[web["id"]].split()
    assert web_row[1:5] == ["web-app", web["prefix"], "generate,read", "active"]
    assert web_row[5] == today and web_row[7] == today  # created, last used
    assert by_id[web["id"]].endswith("5 queued, 600 s/day")
    ops_row = by_id[ops["id"]].split()
    assert ops_row[3:5] == ["admin,generate,read", "active"]
    assert ops_row[7] == "never" and ops_row[8] == "none"
    gone_row = by_id[gone["id"]]
    assert "old-batch-job-with-a" in gone_row and "long-name" not in gone_row  # 20 characters
    assert gone_row.split()[4] == "revoked"
    # Every column starts where its header does, whatever the values.
    starts = [header.index(name) for name in ("NAME", "PREFIX", "SCOPES", "STATE", "CREATED")]
    for row in rows:
        assert all(row[start - 2 : start] == "  " and row[start] != " " for start in starts)
    for secret in (web["secret"], ops["secret"], gone["secret"]):
        assert secret not in out


def test_keys_revoke_ends_a_key_and_says_so(
    operator: Operator, server: tuple[ApiContext, TestClient]
) -> None:
    ctx, client = server
    key = operator.json("create", "--name", "app")
    refresh(ctx)
    assert status(client, key["secret"]) == 200
    code, out, _err = operator.run("revoke", key["id"])
    assert code == 0 and out.strip() == f"revoked key {key['id']} (app)"
    refresh(ctx)
    assert status(client, key["secret"]) == 401
    again = operator.json("revoke", key["id"])  # revoking twice keeps the first time
    assert again["revoked_at"] is not None
    code, _out, err = operator.run("revoke", "000000000000")
    assert code == 2 and "no key 000000000000" in err


def test_keys_rotate_gives_a_new_secret_and_the_old_one_stops_working(
    operator: Operator, server: tuple[ApiContext, TestClient]
) -> None:
    ctx, client = server
    key = operator.json("create", "--name", "app", "--rate-per-minute", "100")
    refresh(ctx)
    job_id = create(client, key["secret"]).json()["id"]
    rotated = operator.json("rotate", key["id"])
    assert rotated["secret"] != key["secret"] and rotated["secret"].startswith(key["prefix"])
    assert rotated["tenant"] == key["tenant"] and rotated["limits"] == key["limits"]
    refresh(ctx)
    assert status(client, key["secret"]) == 401
    poll = client.get(LIST, params={"generation_id": job_id}, headers=bearer(rotated["secret"]))
    assert poll.status_code == 200  # the same tenant: its jobs stay
    code, out, _err = operator.run("rotate", key["id"])
    assert code == 0 and "the old secret no longer works" in out
    new_secret = out.splitlines()[1].rsplit(" ", 1)[1]
    refresh(ctx)
    assert status(client, rotated["secret"]) == 401 and status(client, new_secret) == 200
    operator.run("revoke", key["id"])
    code, _out, err = operator.run("rotate", key["id"])
    assert code == 2 and f"no key {key['id']} in force" in err


def test_a_key_made_with_expires_is_refused_once_it_expires(
    operator: Operator, server: tuple[ApiContext, TestClient]
) -> None:
    ctx, client = server
    lifetime_s = 5.0
    key = operator.json("create", "--name", "trial", "--expires", f"{lifetime_s / 86400:.10f}")
    assert key["expires_at"] - key["created_at"] == pytest.approx(lifetime_s, abs=0.01)
    refresh(ctx)
    assert time.time() < key["expires_at"]
    assert status(client, key["secret"]) == 200
    # No refresh needed: each replica checks the expiry at every request.
    wait_for(lambda: status(client, key["secret"]) == 401, lifetime_s + 10, "the key to expire")
    assert time.time() >= key["expires_at"]
    row = next(line for line in operator.run("list")[1].splitlines() if key["id"] in line)
    assert row.split()[4] == "expired"
    code, _out, err = operator.run("create", "--name", "x", "--expires", "0")
    assert code == 2 and "DAYS must be above 0" in err
