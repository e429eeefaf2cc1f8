"""Managed keys across replicas: a key made with `reelforge keys` works on two API replicas
over one PostgreSQL; a limit changed or a revocation made through one is in force on the
other within a second (the ring's refresh); its secret is in no log and no answer after the
one that created it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import MetaData, select

from reelforge.jobs import open_engine
from tests.e2e.conftest import REPO_ROOT, wait_for
from tests.e2e.deployment import Deployment

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

T2V = "klingai/v2-master-text-to-video"


@pytest.fixture
def deployment(tmp_path: Path, postgres_url: str) -> Iterator[Deployment]:
    models = tmp_path / "models.toml"
    models.write_text(f'[models."{T2V}"]\nengine = "testsrc"\n')
    shared = {"REELFORGE_DATABASE_URL": postgres_url, "REELFORGE_MODELS_FILE": str(models)}
    deployment = Deployment(tmp_path / "hosts", shared)
    yield deployment
    deployment.close()


def keys_cli(database_url: str, *args: str) -> Any:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "REELFORGE_DATABASE_URL": database_url}
    done = subprocess.run(
        [sys.executable, "-m", "reelforge", "keys", *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def usage_cli(base_url: str, secret: str) -> Any:
    """`reelforge usage --json`, as a user runs it against a server."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "REELFORGE_API_KEY": secret}
    done = subprocess.run(
        [sys.executable, "-m", "reelforge", "usage", "--base-url", base_url, "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def seconds_until(refused: Callable[[], bool], timeout_s: float = 10.0) -> float:
    """Seconds from now until `refused()` is first true, asking it back to back (each ask
    is a request: no sleep between them to blur the figure)."""
    started = time.monotonic()
    while not refused():
        assert time.monotonic() - started < timeout_s, f"still served after {timeout_s} s"
    return time.monotonic() - started


def test_a_key_changed_or_revoked_on_one_replica_is_so_on_the_other_within_a_second(
    deployment: Deployment, postgres_url: str
) -> None:
    api_a, api_b = deployment.api("api-a"), deployment.api("api-b")
    admin = keys_cli(postgres_url, "create", "--name", "ops", "--scopes", "read,generate,admin")
    app = keys_cli(postgres_url, "create", "--name", "app")
    admin_secret, app_secret = str(admin["secret"]), str(app["secret"])
    answers: list[str] = []

    def get(base_url: str, secret: str) -> httpx.Response:
        answer = httpx.get(
            f"{base_url}/v2/video/generations",
            headers={"Authorization": f"Bearer {secret}"},
            timeout=10,
        )
        answers.append(answer.text)
        return answer

    # Both replicas learn of the new keys within their refresh.
    for api in (api_a, api_b):
        wait_for(lambda api=api: get(api.base_url, app_secret).status_code == 200, 10, "the key")
    created = httpx.post(
        f"{api_b.base_url}/v2/video/generations",
        json={"model": T2V, "prompt": "a usage test"},
        headers={"Authorization": f"Bearer {app_secret}"},
        timeout=10,
    )
    assert created.status_code == 200, created.text
    answers.append(created.text)
    used = usage_cli(api_a.base_url, app_secret)
    assert used["tenant"] == app["tenant"] and sum(used["totals"]["jobs"].values()) == 1
    admin_headers = {"Authorization": f"Bearer {admin_secret}"}

    # A new limit set through one replica is in force on the other within a second.
    limited = httpx.patch(
        f"{api_a.base_url}/v1/admin/keys/{app['id']}",
        json={"limits": {"rate_per_minute": 1}},
        headers=admin_headers,
        timeout=10,
    )
    assert limited.status_code == 200, limited.text
    answers.append(limited.text)
    limited_after_s = seconds_until(lambda: get(api_b.base_url, app_secret).status_code == 429)
    print(f"limit enforced by the other replica {limited_after_s:.3f} s after the change")
    assert limited_after_s < 1.0  # the ring refreshes every 0.5 s

    # So is a revocation.
    revoked = httpx.delete(
        f"{api_a.base_url}/v1/admin/keys/{app['id']}", headers=admin_headers, timeout=10
    )
    assert revoked.status_code == 200, revoked.text
    answers.append(revoked.text)
    refused_after_s = seconds_until(lambda: get(api_b.base_url, app_secret).status_code == 401)
    print(f"refused by the other replica {refused_after_s:.3f} s after the revocation")
    assert refused_after_s < 1.0  # the ring refreshes every 0.5 s

    listed = keys_cli(postgres_url, "list")
    # Every value of every table of the deployment's schema.
    engine = open_engine(postgres_url)
    tables = MetaData()
    tables.reflect(engine)
    with engine.connect() as conn:
        database = " ".join(
            str(row) for table in tables.sorted_tables for row in conn.execute(select(table))
        )
    engine.dispose()
    assert str(app["id"]) in database  # the rows are there
    logs = api_a.log(tail=10**7) + api_b.log(tail=10**7)
    for secret in (admin_secret, app_secret):
        assert secret not in logs
        assert all(secret not in text for text in answers)
        assert secret not in json.dumps(listed)
        assert secret not in database and secret.rsplit("_", 1)[1] not in database
