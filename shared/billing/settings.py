"""Configuration from the environment, parsed and validated once per process.

Each function is given only the variables its spec declares (`billing.resources.FunctionSpec`), so every
table and queue name is optional here: the composition root asks for one with `Settings.require` when it
builds the adapter that needs it, and a missing one fails there, naming its environment variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from billing import resources
from billing.domain.webhooks.retries import DEFAULT_RETRY_SCHEDULE, RetrySchedule, parse_schedule

# {field: the environment variable it is read from}
ENV_VARS: Mapping[str, str] = {
    "events_table": resources.EVENTS_TABLE.env_var,
    "billing_table": resources.BILLING_TABLE.env_var,
    "idempotency_table": resources.IDEMPOTENCY_TABLE.env_var,
    "ingest_queue_url": resources.INGEST_QUEUE.env_var,
    "ingest_dlq_url": resources.INGEST_DLQ.env_var,
    "webhook_queue_url": resources.WEBHOOK_QUEUE.env_var,
    "webhook_secrets_key_arn": resources.WEBHOOK_SECRETS_KEY.env_var,
    "webhook_retry_schedule": "BILLING_WEBHOOK_RETRY_SCHEDULE",
    "webhook_allow_loopback": "BILLING_WEBHOOK_ALLOW_LOOPBACK",
    "event_shards": "EVENT_SHARDS",
    "event_max_age_days": "EVENT_MAX_AGE_DAYS",
    "event_max_future_seconds": "EVENT_MAX_FUTURE_SECONDS",
    "sqs_max_message_bytes": "SQS_MAX_MESSAGE_BYTES",
    "idempotency_ttl_seconds": "IDEMPOTENCY_TTL_SECONDS",
    "tenant_cache_seconds": "TENANT_CACHE_SECONDS",
    "consumer_write_concurrency": "CONSUMER_WRITE_CONCURRENCY",
    "cycle_close_state_machine_arn": resources.CYCLE_CLOSE_STATE_MACHINE.env_var,
    "billing_grace_seconds": "BILLING_GRACE_SECONDS",
    "seller_country": "BILLING_SELLER_COUNTRY",
    "seller_tax_registrations": "BILLING_SELLER_TAX_REGISTRATIONS",
    "tax_provider": "TAX_PROVIDER",
    "tax_provider_url": "TAX_PROVIDER_URL",
    "tax_provider_api_key": "TAX_PROVIDER_API_KEY",
    "tax_provider_timeout_seconds": "TAX_PROVIDER_TIMEOUT_SECONDS",
    "tax_breaker_failure_threshold": "TAX_BREAKER_FAILURE_THRESHOLD",
    "tax_breaker_cool_down_seconds": "TAX_BREAKER_COOL_DOWN_SECONDS",
}

MAX_RETRY_SPAN_SECONDS = 30 * 24 * 3600

ResourceName = Literal[
    "events_table",
    "billing_table",
    "idempotency_table",
    "ingest_queue_url",
    "ingest_dlq_url",
    "webhook_queue_url",
    "webhook_secrets_key_arn",
]


class SettingsError(RuntimeError):
    """The environment does not describe a usable configuration."""


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    # Optional: a function has only those of its spec. Read them with `require`.
    events_table: str | None = Field(default=None, min_length=1)
    billing_table: str | None = Field(default=None, min_length=1)
    idempotency_table: str | None = Field(default=None, min_length=1)
    ingest_queue_url: str | None = Field(default=None, min_length=1)
    ingest_dlq_url: str | None = Field(default=None, min_length=1)
    webhook_queue_url: str | None = Field(default=None, min_length=1)
    webhook_secrets_key_arn: str | None = Field(default=None, min_length=1)
    # Write shards per (tenant, customer) partition. Changing it for live data needs a migration:
    # an event's shard is derived from its id, and reads query every shard up to this number.
    event_shards: int = Field(default=8, ge=1, le=64)
    event_max_age_days: int = Field(default=35, ge=1)
    event_max_future_seconds: int = Field(default=300, ge=0)
    sqs_max_message_bytes: int = Field(default=256 * 1024, ge=1024, le=1024 * 1024)
    idempotency_ttl_seconds: int = Field(default=24 * 3600, ge=60)
    tenant_cache_seconds: int = Field(default=60, ge=0)
    consumer_write_concurrency: int = Field(default=16, ge=1, le=64)
    # Only the functions that start billing runs have it (the api function). Without it a start fails as
    # "not configured" and a run's status reads as unknown (`billing.adapters.workflows`).
    cycle_close_state_machine_arn: str | None = None
    # Time after a period's end before it is closed, so most late events land in their own period.
    billing_grace_seconds: int = Field(default=24 * 3600, ge=0)
    # Who sells, for tax: country of establishment and where it is registered to collect tax
    # (comma-separated jurisdiction codes such as "US-NY,DE,EU-OSS,GB"; none: no tax is collected).
    seller_country: str = Field(default="US", pattern=r"^[A-Z]{2}$")
    seller_tax_registrations: str = ""
    # An external tax provider (Avalara/TaxJar-style HTTP API); unset: the built-in rules engine only.
    tax_provider: str | None = None
    tax_provider_url: str | None = None
    tax_provider_api_key: SecretStr | None = None
    tax_provider_timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    tax_breaker_failure_threshold: int = Field(default=5, ge=1)
    tax_breaker_cool_down_seconds: int = Field(default=30, ge=1)
    # Seconds between webhook attempts, comma-separated (the first attempt is immediate).
    webhook_retry_schedule: RetrySchedule = DEFAULT_RETRY_SCHEDULE
    # Plain http to loopback addresses for webhook URLs: the local runtime sets it, AWS never does.
    webhook_allow_loopback: bool = False

    @field_validator("webhook_retry_schedule", mode="before")
    @classmethod
    def _schedule(cls, value: object) -> object:
        schedule = parse_schedule(value) if isinstance(value, str) else value
        if isinstance(schedule, RetrySchedule) and sum(schedule.delays) > MAX_RETRY_SPAN_SECONDS:
            # A delivery must be settled (delivered or dead-lettered) while it can still be replayed.
            raise ValueError(
                f"the retry schedule spans {sum(schedule.delays)} s; at most {MAX_RETRY_SPAN_SECONDS} s "
                "(the 30-day replay window)"
            )
        return schedule

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and validate what is set (an empty variable counts as unset); nothing is required here."""
        env = os.environ if env is None else env
        values = {field: env[var] for field, var in ENV_VARS.items() if env.get(var)}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{ENV_VARS.get(str(err['loc'][0]), err['loc'][0])}: {err['msg']}" for err in exc.errors()
            )
            raise SettingsError(f"invalid configuration: {problems}") from exc

    def require(self, name: ResourceName) -> str:
        """A table name or queue URL the caller is about to use; SettingsError naming its variable if unset.

        The state machine ARN is not asked for this way: without it billing runs fail as not configured.
        """
        value: str | None = getattr(self, name)
        if value is None:
            raise SettingsError(
                f"{ENV_VARS[name]} is not set: this function's spec (billing.resources) does not give it "
                "the resource the service being built needs"
            )
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
