"""Webhook signatures (checked by the `standardwebhooks` receiver library), the secret, and
the retry schedule."""

from __future__ import annotations

import random
import stat
import time
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from reelforge.errors import ConfigurationError
from reelforge.settings import Settings
from reelforge.webhooks import RetrySchedule, WebhookSigner, load_or_create_webhook_secret
from reelforge.webhooks.signing import SECRET_FILE

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BODY = '{"type":"completed","data":{"id":"abc"}}'


def test_a_signed_request_verifies_with_standardwebhooks() -> None:
    headers = WebhookSigner(SECRET).headers("msg_1", int(time.time()), BODY)
    assert Webhook(SECRET).verify(BODY, headers) == {"type": "completed", "data": {"id": "abc"}}
    assert headers["webhook-signature"].startswith("v1,")


def test_a_changed_body_or_id_does_not_verify() -> None:
    headers = WebhookSigner(SECRET).headers("msg_1", int(time.time()), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(BODY.replace("abc", "abd"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(BODY, {**headers, "webhook-id": "msg_2"})


def test_the_secret_is_made_once_and_kept_private(tmp_path: Path) -> None:
    first = load_or_create_webhook_secret("", tmp_path)
    assert first.startswith("whsec_")
    assert load_or_create_webhook_secret("", tmp_path) == first
    mode = stat.S_IMODE((tmp_path / SECRET_FILE).stat().st_mode)
    assert mode == 0o600
    # It is a working Standard Webhooks secret.
    headers = WebhookSigner(first).headers("msg_1", int(time.time()), BODY)
    Webhook(first).verify(BODY, headers)


def test_a_configured_secret_wins_and_no_file_is_written(tmp_path: Path) -> None:
    assert load_or_create_webhook_secret(SECRET, tmp_path) == SECRET
    assert not (tmp_path / SECRET_FILE).exists()


@pytest.mark.parametrize("bad", ["plain-text", "whsec_", "whsec_not base64!", "MfKQ9r8GKYqr"])
def test_a_malformed_secret_is_a_configuration_error(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigurationError, match="whsec_"):
        load_or_create_webhook_secret(bad, tmp_path)


def test_the_schedule_gives_each_delay_within_its_jitter_then_stops() -> None:
    schedule = RetrySchedule([10, 100], jitter=0.2, rng=random.Random(1))
    assert schedule.max_attempts == 3
    for _ in range(200):
        first = schedule.delay_after(1)
        second = schedule.delay_after(2)
        assert first is not None and 8 <= first <= 12
        assert second is not None and 80 <= second <= 120
    assert schedule.delay_after(3) is None


def test_the_jitter_spreads_retries() -> None:
    schedule = RetrySchedule([100], rng=random.Random(2))
    assert len({schedule.delay_after(1) for _ in range(20)}) == 20


def test_an_empty_schedule_never_retries() -> None:
    assert RetrySchedule([]).delay_after(1) is None


def test_the_default_schedule_spans_about_a_day() -> None:
    span_s = RetrySchedule(Settings().webhook_retry_schedule_s).span_s
    assert 20 * 3600 < span_s < 26 * 3600


def test_the_schedule_and_private_url_settings_read_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REELFORGE_WEBHOOK_RETRY_SCHEDULE_S", "0.5, 2,10")
    monkeypatch.setenv("REELFORGE_ALLOW_PRIVATE_IMAGE_URLS", "1")  # the old name still works
    settings = Settings()
    assert settings.webhook_retry_schedule_s == [0.5, 2.0, 10.0]
    assert settings.outbound_networks[:2] == ["loopback", "private"]


def test_a_negative_delay_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REELFORGE_WEBHOOK_RETRY_SCHEDULE_S", "5,-1")
    with pytest.raises(ValueError, match="negative"):
        Settings()
