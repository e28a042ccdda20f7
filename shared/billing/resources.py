"""The AWS resources and Lambda functions the system needs, described once.

The CDK app (`infra/`) and the local runtime (`local/`) both build their tables, queues, keys, state
machine and functions from these specs, so the two cannot drift. A function's spec names the resources it uses
with the access it needs: the CDK app derives the function's environment and IAM grants from it, the local
runtime the environment of its worker processes. Pure data: no boto3, no CDK imports here.
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
    # Webhook deliveries expire once they can no longer be replayed.
    ttl_attribute="expires_at",
    # New images only: the dispatcher needs what was written, never what was there before.
    stream="NEW_IMAGE",
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

# ---- the outbox and webhooks ---------------------------------------------------------------------------

# Which stream records reach the dispatcher (a Lambda event filter, and the local stream pump's): new
# outbox events only. Customer profiles, invoices, anything else of the table never reach it.
OUTBOX_STREAM_FILTER: dict[str, object] = {
    "eventName": ["INSERT"],
    "dynamodb": {"NewImage": {"entity": {"S": ["outbox_event"]}}},
}
OUTBOX_BATCH_SIZE = 100
OUTBOX_MAX_RECORD_AGE_SECONDS = 24 * 3600  # the stream keeps records 24 h
OUTBOX_RETRY_ATTEMPTS = 10  # then the batch's description goes to the on-failure queue
DISPATCHER_TIMEOUT_SECONDS = 60

# Batch descriptions the dispatcher could not process (its event source mapping's on-failure destination).
OUTBOX_FAILURES_QUEUE = QueueSpec(
    logical_id="OutboxDispatchFailures",
    env_var="OUTBOX_FAILURES_QUEUE_URL",
    local_name="billing-outbox-failures",
    retention_seconds=14 * 24 * 3600,
)

WEBHOOK_DLQ = QueueSpec(
    logical_id="WebhookDeadLetterQueue",
    env_var="WEBHOOK_DLQ_URL",
    local_name="billing-webhooks-dlq",
    retention_seconds=14 * 24 * 3600,
)

SENDER_TIMEOUT_SECONDS = 60
SENDER_BATCH_SIZE = 10
# Lane kicks, retry timers (delayed up to 15 minutes, chained beyond) and replays. A standard queue: order
# is kept by each lane's cursor and lease, not by the queue, so messages may come in any order or twice.
WEBHOOK_QUEUE = QueueSpec(
    logical_id="WebhookQueue",
    env_var="WEBHOOK_QUEUE_URL",
    local_name="billing-webhooks",
    visibility_timeout_seconds=6 * SENDER_TIMEOUT_SECONDS,
    dead_letter=WEBHOOK_DLQ,
    max_receive_count=5,
)

TABLES: tuple[TableSpec, ...] = (EVENTS_TABLE, BILLING_TABLE, IDEMPOTENCY_TABLE)
QUEUES: tuple[QueueSpec, ...] = (INGEST_DLQ, INGEST_QUEUE, OUTBOX_FAILURES_QUEUE, WEBHOOK_DLQ, WEBHOOK_QUEUE)


@dataclass(frozen=True)
class KeySpec:
    """A customer-managed KMS key (rotated yearly in AWS); functions get its ARN in `env_var`."""

    logical_id: str
    env_var: str
    alias_suffix: str  # its alias is alias/<stack name, or billing-local>-<suffix>
    description: str
    # The encryption context every use of the key carries (its keys); grants may require exactly these.
    context_keys: tuple[str, ...] = ()

    def alias(self, prefix: str) -> str:
        return f"alias/{prefix}-{self.alias_suffix}"


# Webhook signing secrets, sealed with an encryption context naming tenant and endpoint. A key of their
# own: the functions that read the table never get to open them (only the sender decrypts).
WEBHOOK_SECRETS_KEY = KeySpec(
    logical_id="WebhookSecretsKey",
    env_var="WEBHOOK_SECRETS_KEY_ARN",
    alias_suffix="webhook-secrets",
    description="usage-billing: webhook signing secrets",
    context_keys=("tenant_id", "endpoint_id"),
)
# Counted by the sender when a delivery is dead-lettered; an alarm watches it.
WEBHOOK_DEAD_LETTERED_METRIC = "WebhookDeliveriesDeadLettered"
KEYS: tuple[KeySpec, ...] = (WEBHOOK_SECRETS_KEY,)

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


# --- functions ------------------------------------------------------------------------------------------

TableAction = Literal[
    "dynamodb:BatchGetItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:DeleteItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:UpdateItem",
]
QueueAction = Literal["sqs:SendMessage"]  # also authorizes SendMessageBatch
StateMachineAction = Literal["states:StartExecution", "states:DescribeExecution"]
KeyAction = Literal["kms:Encrypt", "kms:Decrypt"]

TABLE_READ: tuple[TableAction, ...] = ("dynamodb:GetItem", "dynamodb:Query")
# A TransactWriteItems call is authorized per item by these actions; IAM has no TransactWriteItems action.
TRANSACT_WRITE: tuple[TableAction, ...] = (
    "dynamodb:ConditionCheckItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
)


@dataclass(frozen=True)
class TableAccess:
    """`actions` on a table, and `dynamodb:Query` (the only action an index serves) on `indexes` of it.

    `leading_keys` (IAM `StringLike` patterns of partition keys, e.g. `T#*#OUTBOX#*`) limits the actions
    to the items whose partition key matches one of them: a function that writes only its own kind of
    item cannot write any other (an invoice, an API key), whatever its code does.
    """

    table: TableSpec
    actions: tuple[TableAction, ...]
    indexes: tuple[str, ...] = ()
    leading_keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = set(self.indexes) - {index.name for index in self.table.indexes}
        if unknown:
            raise ValueError(f"{self.table.logical_id} has no index {sorted(unknown)}")

    @property
    def env_var(self) -> str:
        return self.table.env_var


@dataclass(frozen=True)
class QueueAccess:
    queue: QueueSpec
    actions: tuple[QueueAction, ...]

    @property
    def env_var(self) -> str:
        return self.queue.env_var


@dataclass(frozen=True)
class StateMachineAccess:
    """StartExecution applies to the state machine, DescribeExecution to its executions."""

    state_machine: StateMachineSpec
    actions: tuple[StateMachineAction, ...]

    @property
    def env_var(self) -> str:
        return self.state_machine.env_var


@dataclass(frozen=True)
class KeyAccess:
    key: KeySpec
    actions: tuple[KeyAction, ...]

    @property
    def env_var(self) -> str:
        return self.key.env_var


Access = TableAccess | QueueAccess | StateMachineAccess | KeyAccess

# Every function's code is `functions/<folder>/handler.py`, its entry point `handler`.
HANDLER_MODULE = "handler"
HANDLER_ATTRIBUTE = "handler"


@dataclass(frozen=True)
class FunctionSpec:
    """A Lambda function: its code, limits, the resources it uses and the other settings it reads.

    Its environment is exactly the env vars of the resources in `access` (table names, queue URLs, the
    state machine ARN) plus `settings`, the other `billing.settings` variables it reads; nothing else of
    the system's configuration reaches it.
    """

    # The function's name locally (the local runtime, moto's Lambda); CloudFormation names it in AWS.
    name: str
    folder: str  # its code: functions/<folder>/
    description: str
    timeout_seconds: int
    memory_mb: int
    access: tuple[Access, ...]
    settings: tuple[str, ...] = ()

    @property
    def handler(self) -> str:
        """The Lambda handler: the function's folder is the root of its code asset."""
        return f"{HANDLER_MODULE}.{HANDLER_ATTRIBUTE}"

    @property
    def local_handler(self) -> str:
        """The handler as the local runtime imports it (`module:attribute`), from the repository root."""
        return f"functions.{self.folder}.{HANDLER_MODULE}:{HANDLER_ATTRIBUTE}"

    @property
    def resource_env_vars(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(access.env_var for access in self.access))

    @property
    def env_vars(self) -> tuple[str, ...]:
        """Every configuration variable the function reads (not the platform's: AWS_*, POWERTOOLS_*)."""
        return tuple(dict.fromkeys((*self.resource_env_vars, *self.settings)))


# Partition keys of the webhook items (`billing.adapters.keys`), as IAM `StringLike` patterns.
_ENDPOINTS = "T#*#WEBHOOKS"
_DELIVERIES = "T#*#WHDELIVERY#*"
_LANES = "T#*#WHLANE#*"
_OUTBOX = ("T#*#OUTBOX#*", "T#*#WHEVENT#*")

# The local runtime's switch: webhook URLs may then be plain http to loopback addresses (never in AWS).
_WEBHOOK_ALLOW_LOOPBACK = "BILLING_WEBHOOK_ALLOW_LOOPBACK"

# Read by the ingest path (api) and the readers of events (api, consumer, cycle close): an event's shard.
_EVENT_SHARDS = "EVENT_SHARDS"
_EVENT_MAX_AGE_DAYS = "EVENT_MAX_AGE_DAYS"

API_FUNCTION = FunctionSpec(
    name="billing-api",
    folder="api",
    description="usage-billing api: validates requests, enqueues usage events, serves /v1",
    timeout_seconds=29,
    memory_mb=1024,
    access=(
        # Tenants, catalog, invoices, ledger, payments and billing runs: read, and written in transactions.
        TableAccess(BILLING_TABLE, (*TABLE_READ, *TRANSACT_WRITE), indexes=("gsi1",)),
        # DELETE /v1/webhook-endpoints/{id}: the only items it deletes.
        TableAccess(BILLING_TABLE, ("dynamodb:DeleteItem",), leading_keys=(_ENDPOINTS,)),
        TableAccess(EVENTS_TABLE, TABLE_READ, indexes=("by_time",)),
        TableAccess(
            IDEMPOTENCY_TABLE,
            ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"),
        ),
        QueueAccess(INGEST_QUEUE, ("sqs:SendMessage",)),
        # POST /v1/billing-runs starts a run, GET /v1/billing-runs/{id} reads its status.
        StateMachineAccess(CYCLE_CLOSE_STATE_MACHINE, ("states:StartExecution", "states:DescribeExecution")),
        # Webhook endpoints: secrets are sealed here (never opened); replays and re-enabled endpoints kick
        # the sender.
        KeyAccess(WEBHOOK_SECRETS_KEY, ("kms:Encrypt",)),
        QueueAccess(WEBHOOK_QUEUE, ("sqs:SendMessage",)),
    ),
    settings=(
        _EVENT_SHARDS,
        _EVENT_MAX_AGE_DAYS,
        "EVENT_MAX_FUTURE_SECONDS",
        "SQS_MAX_MESSAGE_BYTES",
        "IDEMPOTENCY_TTL_SECONDS",
        "TENANT_CACHE_SECONDS",
        _WEBHOOK_ALLOW_LOOPBACK,
    ),
)

# API keys and tenants only: it answers API Gateway before any route runs.
AUTHORIZER_FUNCTION = FunctionSpec(
    name="billing-authorizer",
    folder="authorizer",
    description="usage-billing authorizer: bearer API key to tenant and usage identifier key",
    timeout_seconds=10,
    memory_mb=256,
    access=(TableAccess(BILLING_TABLE, TABLE_READ, indexes=("gsi1",)),),
)

# Its trigger, the ingest queue, is wired as an event source (AWS) or the pump (locally), not read by it.
INGEST_CONSUMER_FUNCTION = FunctionSpec(
    name="billing-ingest-consumer",
    folder="ingest_consumer",
    description="usage-billing ingest consumer: conditional Put of each queued usage event",
    timeout_seconds=CONSUMER_TIMEOUT_SECONDS,
    memory_mb=512,
    access=(
        TableAccess(EVENTS_TABLE, ("dynamodb:PutItem",)),
        # The customers of a batch, to find their unbilled events, and the outbox to announce them
        # (`usage.unbilled`: the event, its id claim and the outbox head in one transaction): it writes
        # nothing but the outbox.
        TableAccess(BILLING_TABLE, ("dynamodb:GetItem",)),
        TableAccess(BILLING_TABLE, TRANSACT_WRITE, leading_keys=_OUTBOX),
        QueueAccess(INGEST_DLQ, ("sqs:SendMessage",)),
    ),
    settings=(_EVENT_SHARDS, "CONSUMER_WRITE_CONCURRENCY"),
)

# Named as the state machine's Lambda tasks name it locally (`local.stepfunctions.LambdaRouter`).
CYCLE_CLOSE_FUNCTION = FunctionSpec(
    name=CYCLE_CLOSE_FUNCTION_NAME,
    folder="cycle_close",
    description="usage-billing cycle close: list due subscriptions, rate, tax, finalize, summarize",
    timeout_seconds=CYCLE_CLOSE_TIMEOUT_SECONDS,
    memory_mb=512,
    access=(
        # Finalizing writes invoice, ledger entries and sequence in one TransactWriteItems; the due index
        # (gsi1) lists the subscriptions to close; tax state (breaker, learned rates) lives here too.
        TableAccess(
            BILLING_TABLE,
            (
                *TRANSACT_WRITE,
                "dynamodb:DeleteItem",
                "dynamodb:GetItem",
                "dynamodb:BatchGetItem",
                "dynamodb:Query",
            ),
            indexes=("gsi1",),
        ),
        # A period's usage, by time.
        TableAccess(EVENTS_TABLE, TABLE_READ, indexes=("by_time",)),
    ),
    settings=(
        _EVENT_SHARDS,
        _EVENT_MAX_AGE_DAYS,
        "BILLING_GRACE_SECONDS",
        "BILLING_SELLER_COUNTRY",
        "BILLING_SELLER_TAX_REGISTRATIONS",
        "TAX_PROVIDER",
        "TAX_PROVIDER_URL",
        "TAX_PROVIDER_API_KEY",
        "TAX_PROVIDER_TIMEOUT_SECONDS",
        "TAX_BREAKER_FAILURE_THRESHOLD",
        "TAX_BREAKER_COOL_DOWN_SECONDS",
    ),
)

# On the billing table's stream, filtered to outbox events (OUTBOX_STREAM_FILTER): reads the tenant's
# endpoints, creates deliveries, kicks their lanes. It never reads a customer profile.
OUTBOX_DISPATCHER_FUNCTION = FunctionSpec(
    name="billing-outbox-dispatcher",
    folder="outbox_dispatcher",
    description="usage-billing outbox dispatcher: outbox events to webhook deliveries, one per endpoint",
    timeout_seconds=DISPATCHER_TIMEOUT_SECONDS,
    memory_mb=256,
    access=(
        # Endpoints read; a delivery and its lane's registration written in one transaction (nothing else).
        TableAccess(BILLING_TABLE, ("dynamodb:Query",)),
        TableAccess(
            BILLING_TABLE, ("dynamodb:PutItem", "dynamodb:UpdateItem"), leading_keys=(_DELIVERIES, _LANES)
        ),
        QueueAccess(WEBHOOK_QUEUE, ("sqs:SendMessage",)),
    ),
)

# On the webhook queue: walks lanes, signs and sends deliveries, schedules retries (delayed messages on
# its own queue), dead-letters, disables endpoints that answer 410.
WEBHOOK_SENDER_FUNCTION = FunctionSpec(
    name="billing-webhook-sender",
    folder="webhook_sender",
    description="usage-billing webhook sender: signed deliveries in order per endpoint and customer",
    timeout_seconds=SENDER_TIMEOUT_SECONDS,
    memory_mb=256,
    access=(
        # Endpoints, deliveries, lanes and outbox events read (lanes listed through gsi1); deliveries and
        # lanes written, and an endpoint disabled when it answers 410: nothing else.
        TableAccess(BILLING_TABLE, TABLE_READ, indexes=("gsi1",)),
        TableAccess(BILLING_TABLE, TRANSACT_WRITE, leading_keys=(_ENDPOINTS, _DELIVERIES, _LANES)),
        KeyAccess(WEBHOOK_SECRETS_KEY, ("kms:Decrypt",)),
        QueueAccess(WEBHOOK_QUEUE, ("sqs:SendMessage",)),
    ),
    settings=("BILLING_WEBHOOK_RETRY_SCHEDULE", _WEBHOOK_ALLOW_LOOPBACK),
)

FUNCTIONS: tuple[FunctionSpec, ...] = (
    API_FUNCTION,
    AUTHORIZER_FUNCTION,
    INGEST_CONSUMER_FUNCTION,
    CYCLE_CLOSE_FUNCTION,
    OUTBOX_DISPATCHER_FUNCTION,
    WEBHOOK_SENDER_FUNCTION,
)
