"""Configuration is read from the environment once and validated with clear messages."""

from __future__ import annotations

import pytest

from billing import resources
from billing.settings import Settings, SettingsError

REQUIRED = {
    resources.EVENTS_TABLE.env_var: "events",
    resources.BILLING_TABLE.env_var: "billing",
    resources.IDEMPOTENCY_TABLE.env_var: "idem",
    resources.INGEST_QUEUE.env_var: "https://sqs/q",
    resources.INGEST_DLQ.env_var: "https://sqs/dlq",
}


def test_defaults_follow_the_api_contract() -> None:
    settings = Settings.from_env(REQUIRED)

    assert settings.events_table == "events"
    assert settings.event_max_age_days == 35
    assert settings.event_max_future_seconds == 300
    assert settings.idempotency_ttl_seconds == 24 * 3600
    assert settings.event_shards == 8


def test_overrides_are_parsed() -> None:
    settings = Settings.from_env(REQUIRED | {"EVENT_SHARDS": "16", "SQS_MAX_MESSAGE_BYTES": "1048576"})

    assert (settings.event_shards, settings.sqs_max_message_bytes) == (16, 1024 * 1024)


def test_a_missing_table_names_the_variable() -> None:
    env = {key: value for key, value in REQUIRED.items() if key != "EVENTS_TABLE_NAME"}
    with pytest.raises(SettingsError, match="EVENTS_TABLE_NAME"):
        Settings.from_env(env)


def test_an_invalid_number_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="EVENT_SHARDS"):
        Settings.from_env(REQUIRED | {"EVENT_SHARDS": "0"})
