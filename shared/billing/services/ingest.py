"""Ingest use cases: accept a request's events onto the queue, and store queued events exactly once."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from aws_lambda_powertools.metrics import MetricUnit

from billing.domain.errors import EventRefused, InvalidEvent, PoisonMessage
from billing.domain.ingest_messages import IngestMessage, decode_message, pack_events
from billing.domain.pii import strip_properties
from billing.domain.tenants import PiiPolicy, Tenant
from billing.domain.usage_events import EventLimits, UsageEvent, check_limits, format_timestamp
from billing.domain.webhooks.events import NewEvent, on_unbilled_usage
from billing.runtime import logger, metrics
from billing.services.ports import CustomerLookup

# ---- ports -------------------------------------------------------------------------------------------


class TenantLookup(Protocol):
    def get_tenant(self, tenant_id: str) -> Tenant | None: ...


class IngestQueue(Protocol):
    def send(self, bodies: Sequence[str]) -> None: ...


class EventStore(Protocol):
    def put_if_absent(self, event: UsageEvent, stored_at: str) -> Any: ...


class DeadLetters(Protocol):
    def send(self, body: str, *, reason_code: str, reason: str, source_message_id: str) -> None: ...


class Announcements(Protocol):
    def announce(self, tenant_id: str, customer_id: str, events: Sequence[NewEvent]) -> Sequence[Any]:
        """Write webhook events that come with no other fact; those written before are left out."""


# ---- accepting events --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RejectedEvent:
    index: int
    event_id: str | None
    code: str
    message: str
    field: str | None = None


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    rejected: list[RejectedEvent] = field(default_factory=list)


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

    def accept(
        self, tenant_id: str, events: Sequence[tuple[int, UsageEvent]], received_at: datetime
    ) -> IngestResult:
        """Accept well-formed events (each with its position in the request) that keep the limits.

        An event outside the limits (too old, too far ahead, too large) is rejected alone; the others are
        stripped of personal data, deduplicated within the request and queued. Returns only once SQS has
        accepted every message (raises TransientFailure otherwise: nothing is answered as accepted).
        """
        policy = self._policies.policy_for(tenant_id)
        unique: list[UsageEvent] = []
        seen: set[tuple[str, str]] = set()
        rejected: list[RejectedEvent] = []
        accepted = stripped = 0
        for index, event in events:
            try:
                check_limits(event, received_at, self._limits)
            except InvalidEvent as problem:
                rejected.append(
                    RejectedEvent(index, event.event_id, problem.code, problem.message, problem.field)
                )
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


ANNOUNCED_CACHE_SIZE = 10_000

# ---- the consumer ------------------------------------------------------------------------------------


@dataclass
class ConsumeResult:
    stored: int = 0
    duplicates: int = 0
    conflicts: int = 0
    dead_lettered: int = 0
    unbilled: int = 0  # stored events that no subscription of their customer covers (yet)


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
        customers: CustomerLookup | None = None,
        outbox: Announcements | None = None,
    ) -> None:
        self._store = store
        self._dead_letters = dead_letters
        self._clock = clock
        self._customers = customers
        self._outbox = outbox
        # (tenant, customer, day) announced by this process: no transaction for each later batch that day.
        self._announced: OrderedDict[tuple[str, str, str], None] = OrderedDict()
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
        stored: list[UsageEvent] = []
        held: list[UsageEvent] = []  # stored now or before: the table holds them
        for event, outcome in zip(events, outcomes, strict=True):
            if isinstance(outcome, Exception):
                unreadable.append(
                    (event.to_message(), f"the events table refused it: {type(outcome).__name__}")
                )
            elif str(outcome) == "stored":
                result.stored += 1
                stored.append(event)
                held.append(event)
            elif str(outcome) == "duplicate":
                result.duplicates += 1
                held.append(event)
            else:
                result.conflicts += 1
        # Parked last, once every put went through: a redelivered message does not park them twice.
        for raw, reason in unreadable:
            single = IngestMessage(tenant_id, (raw,)) if isinstance(raw, dict) else None
            code = "unstorable" if reason.startswith("the events table") else "schema_invalid"
            self._dead_letter(single.body() if single else body, code, reason, message_id)
            result.dead_lettered += 1
        result.unbilled = self._unbilled(tenant_id, stored, held)
        metrics.add_metric(name="EventsStored", unit=MetricUnit.Count, value=result.stored)
        if result.unbilled:
            metrics.add_metric(name="EventsUnbilled", unit=MetricUnit.Count, value=result.unbilled)
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
                "unbilled": result.unbilled,
            },
        )
        return result

    def _unbilled(self, tenant_id: str, stored: list[UsageEvent], held: list[UsageEvent]) -> int:
        """How many of the newly stored events no subscription covers (one catalog read per customer),
        and a `usage.unbilled` webhook event per customer and UTC day that has any.

        They are stored all the same (a subscription created later makes them counted) and listed by
        `GET /v1/events?status=unbilled`. The count feeds the `EventsUnbilled` metric; the webhook event
        tells the application. Events stored by an earlier delivery of this message count too for the
        announcement (its failure raised, so the message came back): it is written once however often
        this runs (its id is the customer and the day), and a failure to write it raises for a retry.
        """
        if self._customers is None or not held:
            return 0
        fresh = {id(event) for event in stored}
        unbilled = 0
        by_customer: dict[str, list[UsageEvent]] = {}
        for event in held:
            by_customer.setdefault(event.customer_id, []).append(event)
        now = self._clock()
        day = now.astimezone(UTC).date()
        for customer_id, theirs in by_customer.items():
            key = (tenant_id, customer_id, day.isoformat())
            counting = any(id(event) in fresh for event in theirs)
            if not counting and key in self._announced:
                continue
            customer = self._customers.get_customer(tenant_id, customer_id)
            uncovered = [
                event
                for event in theirs
                if customer is None or customer.subscription_at(event.timestamp) is None
            ]
            if not uncovered:
                continue
            newly = sum(1 for event in uncovered if id(event) in fresh)
            unbilled += newly
            if newly:
                logger.info(
                    "unbilled events stored",
                    extra={"tenant_id": tenant_id, "customer_id": customer_id, "events": newly},
                )
            if self._outbox is not None and key not in self._announced:
                first = min(uncovered, key=lambda event: (event.timestamp, event.event_id))
                self._outbox.announce(
                    tenant_id,
                    customer_id,
                    [
                        on_unbilled_usage(
                            tenant_id,
                            customer_id,
                            day,
                            first_event_id=first.event_id,
                            first_event_type=first.type,
                            first_timestamp=first.timestamp,
                            stored_at=now,
                        )
                    ],
                )
                self._announced[key] = None
                while len(self._announced) > ANNOUNCED_CACHE_SIZE:
                    self._announced.popitem(last=False)
        return unbilled

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
