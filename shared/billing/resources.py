"""The AWS resources the system needs, described once.

The CDK app (`infra/`) and the local runtime (`local/`) both build their tables and queues from these
specs, so the two cannot drift. Pure data: no boto3, no CDK imports here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

KeyType = Literal["S", "N", "B"]
StreamView = Literal["NEW_IMAGE", "NEW_AND_OLD_IMAGES", "KEYS_ONLY", "OLD_IMAGE"]


@dataclass(frozen=True)
class Key:
    name: str
    type: KeyType = "S"


@dataclass(frozen=True)
class GlobalIndex:
    name: str
    partition_key: Key
    sort_key: Key | None = None


@dataclass(frozen=True)
class TableSpec:
    """A DynamoDB table (on-demand, PITR, customer-managed KMS key in AWS)."""

    logical_id: str
    env_var: str  # the environment variable that carries the table name to the functions
    local_name: str  # the physical name the local runtime gives it
    partition_key: Key
    sort_key: Key | None = None
    indexes: tuple[GlobalIndex, ...] = ()
    ttl_attribute: str | None = None
    stream: StreamView | None = None


@dataclass(frozen=True)
class QueueSpec:
    """An SQS queue (SSE in AWS). A queue with `dead_letter` redrives there after `max_receive_count`."""

    logical_id: str
    env_var: str
    local_name: str
    visibility_timeout_seconds: int = 30
    retention_seconds: int = 4 * 24 * 3600
    dead_letter: QueueSpec | None = None
    max_receive_count: int = 5
    extra_attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ThrottleSpec:
    """Per-tenant request limits: an API Gateway usage plan in AWS, a token bucket in the local runtime."""

    rate_per_second: float
    burst: int


# Events: the source of truth. pk = tenant + customer + shard, sk = the client's event id, so the
# conditional Put on (pk, sk) is the exact dedupe. `by_time` serves period queries at cycle close.
EVENTS_TABLE = TableSpec(
    logical_id="EventsTable",
    env_var="EVENTS_TABLE_NAME",
    local_name="billing-events",
    partition_key=Key("pk"),
    sort_key=Key("sk"),
    indexes=(GlobalIndex("by_time", Key("pk"), Key("ts")),),
)

# Everything else (tenants, API keys, catalog, invoices, ledger) in one table; its stream is the outbox.
BILLING_TABLE = TableSpec(
    logical_id="BillingTable",
    env_var="BILLING_TABLE_NAME",
    local_name="billing-main",
    partition_key=Key("pk"),
    sort_key=Key("sk"),
    indexes=(GlobalIndex("gsi1", Key("gsi1pk"), Key("gsi1sk")),),
    stream="NEW_AND_OLD_IMAGES",
)

# Powertools idempotency records (its default attribute names).
IDEMPOTENCY_TABLE = TableSpec(
    logical_id="IdempotencyTable",
    env_var="IDEMPOTENCY_TABLE_NAME",
    local_name="billing-idempotency",
    partition_key=Key("id"),
    ttl_attribute="expiration",
)

INGEST_DLQ = QueueSpec(
    logical_id="IngestDeadLetterQueue",
    env_var="INGEST_DLQ_URL",
    local_name="billing-ingest-dlq",
    retention_seconds=14 * 24 * 3600,
)

# Visibility timeout is six times the consumer's timeout, as AWS advises for event source mappings.
INGEST_QUEUE = QueueSpec(
    logical_id="IngestQueue",
    env_var="INGEST_QUEUE_URL",
    local_name="billing-ingest",
    visibility_timeout_seconds=6 * 60,
    dead_letter=INGEST_DLQ,
    max_receive_count=5,
)

TABLES: tuple[TableSpec, ...] = (EVENTS_TABLE, BILLING_TABLE, IDEMPOTENCY_TABLE)
QUEUES: tuple[QueueSpec, ...] = (INGEST_DLQ, INGEST_QUEUE)

CONSUMER_TIMEOUT_SECONDS = 60
CONSUMER_BATCH_SIZE = 10

DEFAULT_TENANT_THROTTLE = ThrottleSpec(rate_per_second=100.0, burst=200)


@dataclass(frozen=True)
class StateMachineSpec:
    """A Step Functions state machine: the ASL comes from `billing.workflows`, the name from here."""

    logical_id: str
    env_var: str  # carries the state machine ARN to the functions that start it
    local_name: str


CYCLE_CLOSE_STATE_MACHINE = StateMachineSpec(
    logical_id="CycleCloseStateMachine",
    env_var="CYCLE_CLOSE_STATE_MACHINE_ARN",
    local_name="billing-cycle-close",
)
CYCLE_CLOSE_FUNCTION_NAME = "cycle-close"
CYCLE_CLOSE_TIMEOUT_SECONDS = 120
# How often the scheduler starts a billing run (EventBridge Scheduler in AWS, a timer locally).
CYCLE_CLOSE_SCHEDULE = "rate(1 hour)"
