"""Ingest use cases: accept a request's events onto the queue, and store queued events exactly once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from aws_lambda_powertools.metrics import MetricUnit

from billing.domain import canonical_json
from billing.domain.errors import (
    EventRefused,
    InvalidEvent,
    MalformedRequest,
    PayloadTooLarge,
    PoisonMessage,
)
from billing.domain.ingest_messages import IngestMessage, decode_message, pack_events
from billing.domain.pii import strip_properties
from billing.domain.tenants import PiiPolicy, Tenant
from billing.domain.usage_events import (
    EventLimits,
    UsageEvent,
    format_timestamp,
    from_cloudevent,
    parse_event,
)
from billing.runtime import logger, metrics

MAX_EVENTS_PER_REQUEST = 1000
MAX_REQUEST_BYTES = 1024 * 1024

CLOUDEVENTS_SINGLE = "application/cloudevents+json"
CLOUDEVENTS_BATCH = "application/cloudevents-batch+json"


# ---- ports -------------------------------------------------------------------------------------------


class TenantLookup(Protocol):
    def get_tenant(self, tenant_id: str) -> Tenant | None: ...


class IngestQueue(Protocol):
    def send(self, bodies: Sequence[str]) -> None: ...


class EventStore(Protocol):
    def put_if_absent(self, event: UsageEvent, stored_at: str) -> Any: ...


class DeadLetters(Protocol):
    def send(self, body: str, *, reason_code: str, reason: str, source_message_id: str) -> None: ...


# ---- the request -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IngestRequest:
    """What a POST /v1/events body says: the raw events, whether it was a batch, which dialect."""

    events: list[Any]
    batch: bool
    cloudevents: bool


def read_ingest_request(body: bytes, content_type: str | None) -> IngestRequest:
    """Parse a POST /v1/events body. Raises MalformedRequest or PayloadTooLarge for the whole request."""
    if len(body) > MAX_REQUEST_BYTES:
        raise PayloadTooLarge(f"request body is {len(body)} bytes; the limit is {MAX_REQUEST_BYTES} (1 MiB)")
    media_type = (content_type or "application/json").split(";")[0].strip().lower()
    if media_type not in ("application/json", CLOUDEVENTS_SINGLE, CLOUDEVENTS_BATCH, ""):
        raise MalformedRequest(
            f"unsupported Content-Type {media_type!r}; use application/json, {CLOUDEVENTS_SINGLE} "
            f"or {CLOUDEVENTS_BATCH}",
            code="unsupported_media_type",
        )
    if not body.strip():
        raise MalformedRequest("request body is empty", code="malformed_json")
    try:
        data = canonical_json.loads(body)
    except RecursionError:
        raise MalformedRequest(
            "request body nests too deeply to be an event", code="malformed_json"
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedRequest(f"request body is not valid JSON: {exc}", code="malformed_json") from None

    if media_type == CLOUDEVENTS_BATCH:
        if not isinstance(data, list):
            raise MalformedRequest("a CloudEvents batch must be a JSON array of events")
        request = IngestRequest(events=data, batch=True, cloudevents=True)
    elif media_type == CLOUDEVENTS_SINGLE:
        if not isinstance(data, dict):
            raise MalformedRequest("a structured CloudEvent must be a JSON object")
        request = IngestRequest(events=[data], batch=False, cloudevents=True)
    elif isinstance(data, dict) and "events" in data:
        if set(data) != {"events"} or not isinstance(data["events"], list):
            raise MalformedRequest('a batch is {"events": [...]} with no other fields')
        request = IngestRequest(events=data["events"], batch=True, cloudevents=False)
    elif isinstance(data, dict):
        request = IngestRequest(events=[data], batch=False, cloudevents=False)
    else:
        raise MalformedRequest('the body must be one event object or {"events": [...]}')

    if not request.events:
        raise MalformedRequest("the batch holds no events", code="empty_batch")
    if len(request.events) > MAX_EVENTS_PER_REQUEST:
        raise PayloadTooLarge(
            f"the batch holds {len(request.events)} events; the limit is {MAX_EVENTS_PER_REQUEST} per request"
        )
    return request


@dataclass(frozen=True)
class RejectedEvent:
    index: int
    event_id: str | None
    code: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "id": self.event_id,
            "error": {"code": self.code, "message": self.message},
        }


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    rejected: list[RejectedEvent] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "rejected": [item.to_json() for item in self.rejected]}


class CachedTenantPolicies:
    """Tenant PII policies cached for a short time: one read per tenant per interval, not per request."""

    def __init__(
        self, tenants: TenantLookup, ttl_seconds: float, monotonic: Callable[[], float] = time.monotonic
    ):
        self._tenants = tenants
        self._ttl = ttl_seconds
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, PiiPolicy]] = {}
        self._lock = threading.Lock()

    def policy_for(self, tenant_id: str) -> PiiPolicy:
        now = self._monotonic()
        with self._lock:
            cached = self._cache.get(tenant_id)
        if cached and now - cached[0] < self._ttl:
            return cached[1]
        tenant = self._tenants.get_tenant(tenant_id)
        # A tenant with no profile still has a key (the authorizer let it in): strip by the default policy.
        policy = tenant.pii_policy if tenant else PiiPolicy()
        with self._lock:
            self._cache[tenant_id] = (now, policy)
        return policy


class IngestService:
    """POST /v1/events: validate each event, strip PII, pack, enqueue; answer only after SQS accepted."""

    def __init__(
        self,
        queue: IngestQueue,
        policies: CachedTenantPolicies,
        limits: EventLimits,
        max_message_bytes: int,
    ) -> None:
        self._queue = queue
        self._policies = policies
        self._limits = limits
        self._max_message_bytes = max_message_bytes

    def ingest(self, tenant_id: str, request: IngestRequest, received_at: datetime) -> IngestResult:
        policy = self._policies.policy_for(tenant_id)
        unique: list[UsageEvent] = []
        seen: set[tuple[str, str]] = set()
        rejected: list[RejectedEvent] = []
        accepted = stripped = 0
        for index, raw in enumerate(request.events):
            try:
                native = from_cloudevent(raw) if request.cloudevents else raw
                event = parse_event(native, tenant_id=tenant_id, received_at=received_at, limits=self._limits)
            except InvalidEvent as problem:
                rejected.append(RejectedEvent(index, _raw_id(raw), problem.code, problem.message))
                continue
            accepted += 1
            key = (event.customer_id, event.event_id)
            if key in seen:
                continue  # counted once however often it is sent; the first copy in the request wins
            seen.add(key)
            clean, report = strip_properties(event.properties, policy)
            stripped += report.total
            unique.append(replace(event, properties=clean))
        if unique:
            messages = pack_events(tenant_id, unique, self._max_message_bytes)
            self._queue.send([message.body() for message in messages])
            metrics.add_metric(name="IngestMessagesSent", unit=MetricUnit.Count, value=len(messages))
        metrics.add_metric(name="EventsAccepted", unit=MetricUnit.Count, value=accepted)
        metrics.add_metric(name="EventsRejected", unit=MetricUnit.Count, value=len(rejected))
        if stripped:
            metrics.add_metric(name="PiiPropertiesStripped", unit=MetricUnit.Count, value=stripped)
        logger.info(
            "events accepted",
            extra={"tenant_id": tenant_id, "accepted": accepted, "rejected": len(rejected)},
        )
        return IngestResult(accepted=accepted, rejected=rejected)


def _raw_id(raw: Any) -> str | None:
    value = raw.get("id") if isinstance(raw, dict) else None
    return value if isinstance(value, str) else None


# ---- the consumer ------------------------------------------------------------------------------------


@dataclass
class ConsumeResult:
    stored: int = 0
    duplicates: int = 0
    conflicts: int = 0
    dead_lettered: int = 0


class IngestConsumer:
    """Stores each queued event with a conditional Put: a redelivered message counts nothing twice.

    A message that can never succeed goes to the DLQ with its reason; a transient failure raises so that
    SQS redelivers the message (events already stored then count as duplicates, not twice).
    """

    def __init__(
        self,
        store: EventStore,
        dead_letters: DeadLetters,
        clock: Callable[[], datetime],
        write_concurrency: int = 16,
    ) -> None:
        self._store = store
        self._dead_letters = dead_letters
        self._clock = clock
        self._pool = ThreadPoolExecutor(max_workers=write_concurrency, thread_name_prefix="event-put")

    def consume(self, body: str, message_id: str) -> ConsumeResult:
        result = ConsumeResult()
        try:
            tenant_id, raw_events = decode_message(body)
        except PoisonMessage as poison:
            self._dead_letter(body, poison.code, poison.message, message_id)
            result.dead_lettered += 1
            return result

        events: list[UsageEvent] = []
        unreadable: list[tuple[Any, str]] = []
        for raw in raw_events:
            try:
                events.append(UsageEvent.from_message(tenant_id, raw))
            except InvalidEvent as problem:
                unreadable.append((raw, problem.message))

        stored_at = format_timestamp(self._clock())
        # A transient failure raises out of here (SQS redelivers the message; stored events then count as
        # duplicates); an event the table refuses for good is parked on its own, the others go on.
        outcomes = list(self._pool.map(lambda event: self._put(event, stored_at), events))
        for event, outcome in zip(events, outcomes, strict=True):
            if isinstance(outcome, Exception):
                unreadable.append(
                    (event.to_message(), f"the events table refused it: {type(outcome).__name__}")
                )
            elif str(outcome) == "stored":
                result.stored += 1
            elif str(outcome) == "duplicate":
                result.duplicates += 1
            else:
                result.conflicts += 1
        # Parked last, once every put went through: a redelivered message does not park them twice.
        for raw, reason in unreadable:
            single = IngestMessage(tenant_id, (raw,)) if isinstance(raw, dict) else None
            code = "unstorable" if reason.startswith("the events table") else "schema_invalid"
            self._dead_letter(single.body() if single else body, code, reason, message_id)
            result.dead_lettered += 1
        metrics.add_metric(name="EventsStored", unit=MetricUnit.Count, value=result.stored)
        metrics.add_metric(name="EventsDuplicate", unit=MetricUnit.Count, value=result.duplicates)
        if result.conflicts:
            metrics.add_metric(name="EventIdConflicts", unit=MetricUnit.Count, value=result.conflicts)
        logger.info(
            "ingest message stored",
            extra={
                "tenant_id": tenant_id,
                "sqs_message_id": message_id,
                "stored": result.stored,
                "duplicates": result.duplicates,
                "conflicts": result.conflicts,
                "dead_lettered": result.dead_lettered,
            },
        )
        return result

    def _put(self, event: UsageEvent, stored_at: str) -> Any:
        try:
            return self._store.put_if_absent(event, stored_at)
        except EventRefused as exc:  # the item itself is unacceptable: retrying cannot change that
            logger.warning(
                "event refused by the events table",
                extra={"event_id": event.event_id, "error": type(exc).__name__},
            )
            return exc

    def _dead_letter(self, body: str, code: str, reason: str, message_id: str) -> None:
        self._dead_letters.send(body, reason_code=code, reason=reason, source_message_id=message_id)
        metrics.add_metric(name="PoisonMessages", unit=MetricUnit.Count, value=1)
        logger.warning("message dead-lettered", extra={"sqs_message_id": message_id, "failure_code": code})
