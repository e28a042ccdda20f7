"""The composition root: builds services from settings, lazily, once per process.

Handlers call `get_services()`; tests call `build_services(settings)` against moto or pass fakes to the
service constructors directly. Nothing here runs at import time.

A function is given only the tables and queues of its spec (`billing.resources`), so each adapter asks
for its own with `settings.require(...)` as it is built: a service that needs one the function was not
given fails then, naming the environment variable, and the services a function does not use never ask.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cached_property, lru_cache
from typing import Any

import boto3
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from botocore.config import Config

from billing.adapters.billing_runs import DynamoBillingRuns
from billing.adapters.catalog_store import DynamoCatalogStore
from billing.adapters.event_store import DynamoEventStore
from billing.adapters.invoice_store import DynamoInvoiceStore
from billing.adapters.ledger_store import DynamoLedgerStore
from billing.adapters.outbox_store import DynamoOutbox
from billing.adapters.queues import SqsDeadLetters, SqsIngestQueue
from billing.adapters.tax_provider import HttpTaxProvider, TaxProviderConfig
from billing.adapters.tax_state import DynamoBreakerStore, DynamoLastKnownGoodStore
from billing.adapters.tenant_store import DynamoTenantStore
from billing.adapters.usage_reader import DynamoEventsReader
from billing.adapters.webhook_http import HttpWebhookTransport
from billing.adapters.webhook_queue import SqsWebhookQueue
from billing.adapters.webhook_secrets import KmsSecretBox
from billing.adapters.webhook_store import DynamoWebhookStore
from billing.adapters.workflows import StepFunctionsStarter
from billing.domain.tax.model import SellerConfig
from billing.domain.tax.resilience import CircuitBreaker
from billing.domain.tax.rules_engine import RulesEngine
from billing.domain.usage_events import EventLimits
from billing.services.catalog import CatalogService
from billing.services.cycle_close import BillingRuns, CloseSettings, CycleCloseService, TaxQuoter
from billing.services.events import EventService
from billing.services.ingest import CachedTenantPolicies, IngestConsumer, IngestService
from billing.services.invoices import InvoiceService
from billing.services.ledger import LedgerService
from billing.services.payments import PaymentService
from billing.services.taxation import TaxationService
from billing.services.tenants import TenantService
from billing.services.usage import UsageService
from billing.services.webhook_delivery import OutboxDispatcher, SenderSettings, WebhookSender
from billing.services.webhooks import WebhookDeliveryService, WebhookEndpointService, WebhookEventService
from billing.settings import Settings, SettingsError, get_settings

# Standard retry mode: throttles are retried with backoff inside the SDK before we ever see them.
_BOTO_CONFIG = Config(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=64)


def utc_now() -> datetime:
    return datetime.now(UTC)


class Services:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def dynamodb(self) -> Any:
        return boto3.client("dynamodb", config=_BOTO_CONFIG)

    @cached_property
    def sqs(self) -> Any:
        return boto3.client("sqs", config=_BOTO_CONFIG)

    @cached_property
    def event_store(self) -> DynamoEventStore:
        return DynamoEventStore(
            self.settings.require("events_table"), self.settings.event_shards, self.dynamodb
        )

    @cached_property
    def tenant_store(self) -> DynamoTenantStore:
        return DynamoTenantStore(self.settings.require("billing_table"), self.dynamodb)

    @cached_property
    def tenants(self) -> TenantService:
        return TenantService(self.tenant_store)

    @cached_property
    def ingest_queue(self) -> SqsIngestQueue:
        return SqsIngestQueue(
            self.settings.require("ingest_queue_url"), self.settings.sqs_max_message_bytes, self.sqs
        )

    @cached_property
    def ingest(self) -> IngestService:
        return IngestService(
            queue=self.ingest_queue,
            policies=CachedTenantPolicies(self.tenant_store, self.settings.tenant_cache_seconds),
            limits=EventLimits(
                max_age=timedelta(days=self.settings.event_max_age_days),
                max_future=timedelta(seconds=self.settings.event_max_future_seconds),
            ),
            max_message_bytes=self.settings.sqs_max_message_bytes,
        )

    @cached_property
    def consumer(self) -> IngestConsumer:
        return IngestConsumer(
            store=self.event_store,
            dead_letters=SqsDeadLetters(self.settings.require("ingest_dlq_url"), self.sqs),
            clock=utc_now,
            write_concurrency=self.settings.consumer_write_concurrency,
            customers=self.catalog_store,
            outbox=self.outbox,
        )

    @cached_property
    def catalog_store(self) -> DynamoCatalogStore:
        return DynamoCatalogStore(self.settings.require("billing_table"), self.dynamodb)

    @cached_property
    def catalog(self) -> CatalogService:
        return CatalogService(self.catalog_store)

    @cached_property
    def events_reader(self) -> DynamoEventsReader:
        return DynamoEventsReader(
            self.settings.require("events_table"), self.settings.event_shards, self.dynamodb
        )

    @cached_property
    def usage(self) -> UsageService:
        return UsageService(self.catalog_store, self.events_reader)

    @cached_property
    def billing_runs_store(self) -> DynamoBillingRuns:
        return DynamoBillingRuns(self.settings.require("billing_table"), self.dynamodb)

    @cached_property
    def ledger_store(self) -> DynamoLedgerStore:
        return DynamoLedgerStore(self.settings.require("billing_table"), self.dynamodb)

    @cached_property
    def outbox(self) -> DynamoOutbox:
        return DynamoOutbox(self.settings.require("billing_table"), self.dynamodb)

    @cached_property
    def invoice_store(self) -> DynamoInvoiceStore:
        return DynamoInvoiceStore(
            self.settings.require("billing_table"), self.ledger_store, self.outbox, self.dynamodb
        )

    @cached_property
    def invoices(self) -> InvoiceService:
        return InvoiceService(self.invoice_store)

    @cached_property
    def ledger(self) -> LedgerService:
        return LedgerService(self.ledger_store, self.catalog_store)

    @cached_property
    def events(self) -> EventService:
        return EventService(self.event_store, self.events_reader, self.catalog_store, self.invoice_store)

    @cached_property
    def payments(self) -> PaymentService:
        return PaymentService(self.invoice_store, utc_now)

    @cached_property
    def tax_engine(self) -> TaxQuoter:
        """The built-in rules engine, or the external provider behind a shared circuit breaker."""
        settings = self.settings
        provider = None
        if settings.tax_provider:
            if not settings.tax_provider_url or settings.tax_provider_api_key is None:
                raise SettingsError("TAX_PROVIDER needs TAX_PROVIDER_URL and TAX_PROVIDER_API_KEY")
            provider = HttpTaxProvider(
                TaxProviderConfig(
                    name=settings.tax_provider,
                    base_url=settings.tax_provider_url,
                    api_key=settings.tax_provider_api_key.get_secret_value(),
                    timeout_seconds=settings.tax_provider_timeout_seconds,
                )
            )
        return TaxationService(
            provider,
            RulesEngine(),
            DynamoBreakerStore(settings.require("billing_table"), self.dynamodb),
            DynamoLastKnownGoodStore(settings.require("billing_table"), self.dynamodb),
            clock=utc_now,
            breaker=CircuitBreaker(
                failure_threshold=settings.tax_breaker_failure_threshold,
                cool_down_ns=settings.tax_breaker_cool_down_seconds * 1_000_000_000,
            ),
        )

    @cached_property
    def cycle_close(self) -> CycleCloseService:
        registrations = frozenset(
            code.strip() for code in self.settings.seller_tax_registrations.split(",") if code.strip()
        )
        return CycleCloseService(
            catalog=self.catalog_store,
            events=self.events_reader,
            due_index=self.billing_runs_store,
            invoices=self.invoice_store,
            tax=self.tax_engine,
            settings=CloseSettings(
                grace=timedelta(seconds=self.settings.billing_grace_seconds),
                event_max_age=timedelta(days=self.settings.event_max_age_days),
                seller=SellerConfig(self.settings.seller_country, registrations),
            ),
            clock=utc_now,
        )

    @cached_property
    def billing_runs(self) -> BillingRuns:
        starter = StepFunctionsStarter(
            self.settings.cycle_close_state_machine_arn, boto3.client("stepfunctions", config=_BOTO_CONFIG)
        )
        return BillingRuns(self.billing_runs_store, starter, utc_now, customers=self.catalog_store)

    # -- webhooks ------------------------------------------------------------------------------------------

    @cached_property
    def webhook_store(self) -> DynamoWebhookStore:
        return DynamoWebhookStore(self.settings.require("billing_table"), self.dynamodb)

    @cached_property
    def webhook_queue(self) -> SqsWebhookQueue:
        return SqsWebhookQueue(self.settings.require("webhook_queue_url"), self.sqs)

    @cached_property
    def webhook_secrets(self) -> KmsSecretBox:
        return KmsSecretBox(
            self.settings.require("webhook_secrets_key_arn"), boto3.client("kms", config=_BOTO_CONFIG)
        )

    @cached_property
    def webhook_transport(self) -> HttpWebhookTransport:
        return HttpWebhookTransport(allow_loopback=self.settings.webhook_allow_loopback)

    @cached_property
    def webhook_endpoints(self) -> WebhookEndpointService:
        return WebhookEndpointService(
            self.webhook_store, self.webhook_secrets, self.webhook_transport, self.webhook_queue, utc_now
        )

    @cached_property
    def webhook_deliveries(self) -> WebhookDeliveryService:
        return WebhookDeliveryService(self.webhook_store, self.webhook_queue, utc_now)

    @cached_property
    def webhook_events(self) -> WebhookEventService:
        return WebhookEventService(self.outbox)

    @cached_property
    def outbox_dispatcher(self) -> OutboxDispatcher:
        return OutboxDispatcher(self.webhook_store, self.webhook_queue, utc_now)

    @cached_property
    def webhook_sender(self) -> WebhookSender:
        return WebhookSender(
            outbox=self.outbox,
            store=self.webhook_store,
            queue=self.webhook_queue,
            secrets=self.webhook_secrets,
            transport=self.webhook_transport,
            settings=SenderSettings(schedule=self.settings.webhook_retry_schedule),
            clock=utc_now,
        )

    @cached_property
    def idempotency_store(self) -> DynamoDBPersistenceLayer:
        """Where `Idempotency-Key` records live (Powertools' persistence layer on DynamoDB)."""
        return DynamoDBPersistenceLayer(
            table_name=self.settings.require("idempotency_table"), boto3_client=self.dynamodb
        )


def build_services(settings: Settings) -> Services:
    return Services(settings)


@lru_cache(maxsize=1)
def get_services() -> Services:
    return build_services(get_settings())
