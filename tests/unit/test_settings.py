"""Configuration is read from the environment once and validated with clear messages; each function has
only its spec's variables, and a service missing one of its resources says which variable when built."""

from __future__ import annotations

from typing import Any

import pytest

from billing import resources
from billing.bootstrap import Services, build_services
from billing.resources import FunctionSpec, KeyAccess, QueueAccess, TableAccess
from billing.settings import ENV_VARS, Settings, SettingsError

# A valid value for every variable `billing.settings` reads. A tax provider is configured so that its
# settings, read only when there is one, are read too.
SAMPLE_ENV = {
    resources.EVENTS_TABLE.env_var: "events",
    resources.BILLING_TABLE.env_var: "billing",
    resources.IDEMPOTENCY_TABLE.env_var: "idem",
    resources.INGEST_QUEUE.env_var: "https://sqs.us-east-1.amazonaws.com/123456789012/ingest",
    resources.INGEST_DLQ.env_var: "https://sqs.us-east-1.amazonaws.com/123456789012/ingest-dlq",
    resources.CYCLE_CLOSE_STATE_MACHINE.env_var: "arn:aws:states:us-east-1:123456789012:stateMachine:cc",
    resources.WEBHOOK_QUEUE.env_var: "https://sqs.us-east-1.amazonaws.com/123456789012/webhooks",
    resources.WEBHOOK_SECRETS_KEY.env_var: "arn:aws:kms:us-east-1:123456789012:key/0000-webhooks",
    "EVENT_SHARDS": "4",
    "EVENT_MAX_AGE_DAYS": "30",
    "EVENT_MAX_FUTURE_SECONDS": "60",
    "SQS_MAX_MESSAGE_BYTES": "65536",
    "IDEMPOTENCY_TTL_SECONDS": "3600",
    "TENANT_CACHE_SECONDS": "5",
    "CONSUMER_WRITE_CONCURRENCY": "4",
    "BILLING_GRACE_SECONDS": "0",
    "BILLING_SELLER_COUNTRY": "DE",
    "BILLING_SELLER_TAX_REGISTRATIONS": "DE,EU-OSS",
    "TAX_PROVIDER": "avalara",
    "TAX_PROVIDER_URL": "https://tax.example.com",
    "TAX_PROVIDER_API_KEY": "not-a-real-key",
    "TAX_PROVIDER_TIMEOUT_SECONDS": "1.5",
    "TAX_BREAKER_FAILURE_THRESHOLD": "3",
    "TAX_BREAKER_COOL_DOWN_SECONDS": "10",
    "BILLING_WEBHOOK_RETRY_SCHEDULE": "1,2,3",
    "BILLING_WEBHOOK_ALLOW_LOOPBACK": "false",
}

# What each function's handler takes from the composition root (functions/*/handler.py, and for the api
# every router of billing.api plus the idempotency records of billing.api.app).
HANDLER_SERVICES = {
    resources.API_FUNCTION.name: (
        "ingest",
        "events",
        "catalog",
        "usage",
        "invoices",
        "ledger",
        "payments",
        "billing_runs",
        "webhook_endpoints",
        "webhook_deliveries",
        "webhook_events",
        "idempotency_store",
    ),
    resources.AUTHORIZER_FUNCTION.name: ("tenants",),
    resources.INGEST_CONSUMER_FUNCTION.name: ("consumer",),
    resources.CYCLE_CLOSE_FUNCTION.name: ("cycle_close",),
    resources.OUTBOX_DISPATCHER_FUNCTION.name: ("outbox_dispatcher",),
    resources.WEBHOOK_SENDER_FUNCTION.name: ("webhook_sender",),
}
SPECS = pytest.mark.parametrize("spec", resources.FUNCTIONS, ids=lambda spec: spec.name)


def spec_env(spec: FunctionSpec) -> dict[str, str]:
    """What the function is deployed with: its spec's variables, nothing else."""
    return {name: SAMPLE_ENV[name] for name in spec.env_vars}


def use_handler_services(services: Services, spec: FunctionSpec) -> None:
    for name in HANDLER_SERVICES[spec.name]:
        getattr(services, name)
    if spec is resources.API_FUNCTION:
        _ = services.settings.idempotency_ttl_seconds  # read by billing.api.app


# --- reading ----------------------------------------------------------------------------------------------


def test_the_sample_covers_every_setting() -> None:
    assert set(SAMPLE_ENV) == set(ENV_VARS.values())


def test_nothing_is_required_to_read_the_settings() -> None:
    settings = Settings.from_env({})

    assert settings.events_table is None
    assert settings.ingest_queue_url is None


def test_defaults_follow_the_api_contract() -> None:
    settings = Settings.from_env({resources.EVENTS_TABLE.env_var: "events"})

    assert settings.events_table == "events"
    assert settings.event_max_age_days == 35
    assert settings.event_max_future_seconds == 300
    assert settings.idempotency_ttl_seconds == 24 * 3600
    assert settings.event_shards == 8


def test_overrides_are_parsed() -> None:
    settings = Settings.from_env({"EVENT_SHARDS": "16", "SQS_MAX_MESSAGE_BYTES": "1048576"})

    assert (settings.event_shards, settings.sqs_max_message_bytes) == (16, 1024 * 1024)


def test_an_invalid_number_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="EVENT_SHARDS"):
        Settings.from_env({"EVENT_SHARDS": "0"})


def test_a_missing_table_names_the_variable_when_it_is_required() -> None:
    settings = Settings.from_env({resources.BILLING_TABLE.env_var: "billing"})

    assert settings.require("billing_table") == "billing"
    with pytest.raises(SettingsError, match="EVENTS_TABLE_NAME"):
        settings.require("events_table")


def test_an_empty_variable_counts_as_unset() -> None:
    settings = Settings.from_env({resources.INGEST_DLQ.env_var: ""})

    with pytest.raises(SettingsError, match="INGEST_DLQ_URL"):
        settings.require("ingest_dlq_url")


# --- per function -----------------------------------------------------------------------------------------


def test_every_setting_a_spec_names_is_read_by_billing_settings_and_is_not_a_resource() -> None:
    resource_vars = {spec.env_var for spec in (*resources.TABLES, *resources.QUEUES, *resources.KEYS)} | {
        resources.CYCLE_CLOSE_STATE_MACHINE.env_var
    }
    for spec in resources.FUNCTIONS:
        assert set(spec.settings) <= set(ENV_VARS.values()) - resource_vars, spec.name


@SPECS
def test_a_function_spec_is_enough_to_build_the_services_its_handler_uses(spec: FunctionSpec) -> None:
    services = build_services(Settings.from_env(spec_env(spec)))

    use_handler_services(services, spec)


@SPECS
def test_a_service_missing_a_table_or_queue_of_its_spec_names_the_variable_when_built(
    spec: FunctionSpec,
) -> None:
    for access in spec.access:
        if not isinstance(access, TableAccess | QueueAccess | KeyAccess):
            continue  # without the state machine ARN, starting a run fails as "not configured" instead
        env = {name: value for name, value in spec_env(spec).items() if name != access.env_var}
        services = build_services(Settings.from_env(env))  # reading the settings does not fail

        with pytest.raises(SettingsError, match=access.env_var):
            use_handler_services(services, spec)


def test_a_function_cannot_build_a_service_of_another_function() -> None:
    services = build_services(Settings.from_env(spec_env(resources.AUTHORIZER_FUNCTION)))

    with pytest.raises(SettingsError, match=resources.INGEST_QUEUE.env_var):
        _ = services.ingest
    with pytest.raises(SettingsError, match=resources.EVENTS_TABLE.env_var):
        _ = services.consumer


class _RecordingSettings(Settings):
    """Settings that remember which of their fields were read (pydantic keeps fields in __dict__)."""

    def __getattribute__(self, name: str) -> Any:
        if name in ENV_VARS:
            _READ.add(name)
        return super().__getattribute__(name)


_READ: set[str] = set()


@SPECS
def test_a_function_spec_declares_exactly_the_settings_its_handler_reads(spec: FunctionSpec) -> None:
    _READ.clear()
    settings = _RecordingSettings.from_env(spec_env(spec))

    use_handler_services(build_services(settings), spec)

    assert {ENV_VARS[field] for field in _READ} == set(spec.env_vars)
