"""The local runtime's defaults for the billing and webhook settings, its command line and its banner
(without starting anything)."""

from __future__ import annotations

import pytest

from local.runtime import (
    DEFAULT_LOCAL_WEBHOOK_RETRY_SCHEDULE,
    WEBHOOK_LOOPBACK_ENV,
    WEBHOOK_SCHEDULE_ENV,
    LocalRuntime,
    StartupError,
    _banner,
    _parser,
)


@pytest.fixture(autouse=True)
def _no_webhook_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in (WEBHOOK_SCHEDULE_ENV, WEBHOOK_LOOPBACK_ENV, "BILLING_GRACE_SECONDS"):
        monkeypatch.delenv(variable, raising=False)


def test_the_local_defaults_allow_loopback_and_compress_the_retry_schedule() -> None:
    values = LocalRuntime()._billing_settings_env()

    assert values[WEBHOOK_LOOPBACK_ENV] == "true"
    assert values[WEBHOOK_SCHEDULE_ENV] == DEFAULT_LOCAL_WEBHOOK_RETRY_SCHEDULE == "1,2,4,8,15,30,60,120,300"
    assert len(DEFAULT_LOCAL_WEBHOOK_RETRY_SCHEDULE.split(",")) == 9  # nine retries, as AWS's default


def test_the_environment_wins_over_the_local_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WEBHOOK_SCHEDULE_ENV, "5,300")
    monkeypatch.setenv(WEBHOOK_LOOPBACK_ENV, "false")

    values = LocalRuntime()._billing_settings_env()

    assert WEBHOOK_SCHEDULE_ENV not in values  # left as it is
    assert WEBHOOK_LOOPBACK_ENV not in values


def test_an_explicit_value_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WEBHOOK_SCHEDULE_ENV, "5,300")

    values = LocalRuntime(
        webhook_retry_schedule="1,1,1,1", webhook_allow_loopback=False
    )._billing_settings_env()

    assert values[WEBHOOK_SCHEDULE_ENV] == "1,1,1,1"
    assert values[WEBHOOK_LOOPBACK_ENV] == "false"


@pytest.mark.parametrize("schedule", ["", "1,,2", "0", "fast", "1;2"])
def test_a_retry_schedule_that_does_not_parse_stops_the_start(
    monkeypatch: pytest.MonkeyPatch, schedule: str
) -> None:
    monkeypatch.setenv(WEBHOOK_SCHEDULE_ENV, schedule)

    with pytest.raises(StartupError, match=WEBHOOK_SCHEDULE_ENV):
        LocalRuntime._check_webhook_schedule()


def test_a_valid_retry_schedule_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WEBHOOK_SCHEDULE_ENV, "1, 1,1")

    LocalRuntime._check_webhook_schedule()


def test_the_command_line_takes_the_webhook_options() -> None:
    args = _parser().parse_args(["--webhook-retry-schedule", "1,1,1,1", "--sender-concurrency", "2"])
    defaults = _parser().parse_args([])

    assert (args.webhook_retry_schedule, args.sender_concurrency) == ("1,1,1,1", 2)
    assert (defaults.webhook_retry_schedule, defaults.sender_concurrency) == (None, 4)


def test_the_banner_shows_how_to_create_a_webhook_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WEBHOOK_SCHEDULE_ENV, "1,2,4")
    monkeypatch.setenv(WEBHOOK_LOOPBACK_ENV, "true")
    info = {
        "api_url": "http://127.0.0.1:8080",
        "endpoint_url": "http://127.0.0.1:4566",
        "region": "us-east-1",
        "tenant_id": "default",
        "admin_key": "bk_admin_x",
        "ingest_key": "bk_ingest_y",
        "state_machine_arn": "arn:aws:states:us-east-1:123456789012:stateMachine:billing-cycle-close",
        "env": {},
    }

    banner = _banner(info, True, 0)

    assert "-X POST http://127.0.0.1:8080/v1/webhook-endpoints" in banner
    assert '{"url": "http://127.0.0.1:9000/hooks", "event_types": ["*"]}' in banner
    assert "/v1/webhook-deliveries?endpoint_id=" in banner
    assert f"{WEBHOOK_SCHEDULE_ENV}=1,2,4" in banner
    assert f"{WEBHOOK_LOOPBACK_ENV}=true" in banner
