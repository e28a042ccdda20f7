"""From the outbox to the endpoints: the dispatcher (stream records → deliveries) and the sender (lanes).

The dispatcher runs on the billing table's stream, filtered to outbox events: for each event it creates
the deliveries of the endpoints that should receive it (deterministic ids, conditional puts: a record
seen again creates nothing) and kicks their lanes on the webhook queue.

The sender walks a lane, one (endpoint, customer), in the customer's `sequence` order: under the lane's
lease it looks at the event at the cursor, sends it (signed, one attempt), and moves on only once it
succeeded or was dead-lettered. A failed attempt schedules the next on the retry schedule and leaves the
lane waiting; the wait is a delayed queue message (a timer), chained past the queue's 15-minute limit, so
no Lambda ever waits. Other lanes, other customers, are untouched by one lane's wait.
The outbox, not the stream, is the lane's source: the sender reads events from it, so a lane kicked for
any reason delivers everything due, even an event whose stream record the dispatcher has not seen yet.
"""

from __future__ import annotations

import secrets as random_source
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Protocol

from aws_lambda_powertools.metrics import MetricUnit

from billing.domain.errors import StaleRevision
from billing.domain.pages import Page
from billing.domain.usage_events import format_timestamp
from billing.domain.webhooks.attempts import AttemptOutcome
from billing.domain.webhooks.deliveries import (
    Delivery,
    DeliveryStatus,
    StepKind,
    delivery_id,
    describe,
    next_step,
)
from billing.domain.webhooks.endpoints import WebhookEndpoint
from billing.domain.webhooks.events import WebhookEvent
from billing.domain.webhooks.messages import (
    LaneKick,
    ReplayRequest,
    ResumeRequest,
    SenderMessage,
    queue_delay,
)
from billing.domain.webhooks.retries import RetrySchedule
from billing.domain.webhooks.signing import webhook_headers
from billing.resources import WEBHOOK_DEAD_LETTERED_METRIC
from billing.runtime import logger, metrics

# ---- ports -------------------------------------------------------------------------------------------


class OutboxReader(Protocol):
    def get(self, tenant_id: str, customer_id: str, sequence: int) -> WebhookEvent | None: ...

    def events_from(
        self, tenant_id: str, customer_id: str, first_sequence: int, limit: int
    ) -> list[WebhookEvent]: ...


class LaneState(Protocol):
    @property
    def next_sequence(self) -> int: ...

    @property
    def timer_due(self) -> str | None: ...


class WebhookStore(Protocol):
    def all_endpoints(self, tenant_id: str) -> list[WebhookEndpoint]: ...

    def get_endpoint(self, tenant_id: str, endpoint_id: str) -> WebhookEndpoint | None: ...

    def save_endpoint(self, tenant_id: str, endpoint: WebhookEndpoint) -> WebhookEndpoint: ...

    def create_delivery(self, tenant_id: str, delivery: Delivery) -> bool: ...

    def dispatch_delivery(self, tenant_id: str, delivery: Delivery) -> bool:
        """Create the delivery and register its lane, unless the lane's cursor passed the event."""

    def lanes(self, tenant_id: str, endpoint_id: str, limit: int, cursor: str | None) -> Page[str]: ...

    def get_delivery(self, tenant_id: str, delivery_id: str) -> Delivery | None: ...

    def save_delivery(self, tenant_id: str, delivery: Delivery) -> Delivery: ...

    def record_attempt(
        self,
        tenant_id: str,
        delivery: Delivery,
        *,
        lane_owner: str,
        advance_to: int | None,
        timer_due: str | None,
    ) -> Delivery: ...

    def acquire_lane(
        self, tenant_id: str, endpoint_id: str, customer_id: str, owner: str, now: datetime, until: datetime
    ) -> LaneState | None: ...

    def lane_timer(self, tenant_id: str, endpoint_id: str, customer_id: str) -> str | None: ...

    def advance_lane(
        self, tenant_id: str, endpoint_id: str, customer_id: str, owner: str, to_sequence: int
    ) -> None: ...

    def set_lane_timer(
        self, tenant_id: str, endpoint_id: str, customer_id: str, owner: str, due: str
    ) -> None: ...

    def release_lane(self, tenant_id: str, endpoint_id: str, customer_id: str, owner: str) -> bool: ...

    def hand_over_lane(self, tenant_id: str, endpoint_id: str, customer_id: str, owner: str) -> None: ...


class WebhookQueue(Protocol):
    def kick(self, kicks: Sequence[LaneKick]) -> None:
        """Send lane kicks now. Raises TransientFailure when the queue did not take them all."""

    def schedule(self, kick: LaneKick, delay_seconds: int) -> None:
        """Send one timer kick, delayed (at most the queue's limit)."""

    def resume(self, request: ResumeRequest) -> None: ...


class SecretBox(Protocol):
    def decrypt(self, ciphertext: str, context: dict[str, str]) -> str: ...


class WebhookTransport(Protocol):
    def post(self, url: str, body: bytes, headers: dict[str, str]) -> AttemptOutcome: ...


def secret_context(tenant_id: str, endpoint_id: str) -> dict[str, str]:
    """The KMS encryption context of an endpoint's secrets: a ciphertext opens for its endpoint only."""
    return {"tenant_id": tenant_id, "endpoint_id": endpoint_id}


# ---- the dispatcher ----------------------------------------------------------------------------------


class OutboxDispatcher:
    """Stream records of outbox events → deliveries (created once) → lane kicks."""

    def __init__(self, store: WebhookStore, queue: WebhookQueue, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._queue = queue
        self._clock = clock

    def dispatch(self, events: Sequence[tuple[str, WebhookEvent]]) -> int:
        """Fan out (tenant, event) pairs; returns how many deliveries were created (0 for events seen
        before). Raises on a failure, for the stream to retry the batch from the failed record."""
        endpoints: dict[str, list[WebhookEndpoint]] = {}
        kicks: dict[tuple[str, str, str], LaneKick] = {}
        created = 0
        for tenant_id, event in events:
            if tenant_id not in endpoints:
                endpoints[tenant_id] = self._store.all_endpoints(tenant_id)
            for endpoint in endpoints[tenant_id]:
                if not endpoint.should_deliver(event):
                    continue
                if self._store.dispatch_delivery(tenant_id, Delivery.create(endpoint, event, self._clock())):
                    created += 1
                kick = LaneKick(tenant_id, endpoint.id, event.customer_id)
                kicks[kick.lane] = kick
        if kicks:
            self._queue.kick(list(kicks.values()))
        if created:
            metrics.add_metric(name="WebhookDeliveriesCreated", unit=MetricUnit.Count, value=created)
        return created


# ---- the sender --------------------------------------------------------------------------------------

LANE_LEASE = timedelta(seconds=90)
TIMER_SKEW = timedelta(seconds=5)
RESUME_PAGE = 100  # longer than the sender's timeout: a dead holder's lease runs out
EVENTS_PER_READ = 25
TIME_RESERVE_MS = 20_000  # an attempt may take 15 s: start none with less left than this


@dataclass(frozen=True)
class SenderSettings:
    schedule: RetrySchedule


class WebhookSender:
    def __init__(
        self,
        *,
        outbox: OutboxReader,
        store: WebhookStore,
        queue: WebhookQueue,
        secrets: SecretBox,
        transport: WebhookTransport,
        settings: SenderSettings,
        clock: Callable[[], datetime],
        new_owner: Callable[[], str] = lambda: random_source.token_hex(16),
    ) -> None:
        self._outbox = outbox
        self._store = store
        self._queue = queue
        self._secrets = secrets
        self._transport = transport
        self._settings = settings
        self._clock = clock
        self._new_owner = new_owner

    def handle(self, message: SenderMessage, time_left_ms: Callable[[], int]) -> None:
        if isinstance(message, ReplayRequest):
            self.replay(message.tenant_id, message.delivery_id)
        elif isinstance(message, ResumeRequest):
            self.resume(message)
        else:
            self.run_lane(message, time_left_ms)

    def resume(self, request: ResumeRequest) -> None:
        """An endpoint enabled again: kick a page of its lanes, and hand the rest on to the next message.
        Kicking a lane with nothing due costs one read; a lane waiting for a retry keeps waiting."""
        endpoint = self._store.get_endpoint(request.tenant_id, request.endpoint_id)
        if endpoint is None or endpoint.disabled:
            return
        page = self._store.lanes(request.tenant_id, request.endpoint_id, RESUME_PAGE, request.cursor)
        kicks = [LaneKick(request.tenant_id, request.endpoint_id, customer) for customer in page.items]
        if kicks:
            self._queue.kick(kicks)
        if page.next_cursor is not None:
            self._queue.resume(ResumeRequest(request.tenant_id, request.endpoint_id, page.next_cursor))

    # -- lanes -----------------------------------------------------------------------------------------

    def run_lane(self, kick: LaneKick, time_left_ms: Callable[[], int]) -> None:
        tenant_id, endpoint_id, customer_id = kick.lane
        now = self._clock()
        if kick.due is not None and kick.due > now:
            self._chain_timer(kick, now)
            return
        endpoint = self._store.get_endpoint(tenant_id, endpoint_id)
        if endpoint is None or endpoint.disabled:
            return  # deleted: the lane is over; disabled: enabling it kicks its lanes again
        owner = self._new_owner()
        lane = self._store.acquire_lane(tenant_id, endpoint_id, customer_id, owner, now, now + LANE_LEASE)
        if lane is None:
            return  # another sender holds it and was told to walk once more
        walk = _Walk(self, endpoint, tenant_id, customer_id, owner, lane.next_sequence, lane.timer_due)
        while True:
            finished = walk.run(time_left_ms)
            if not finished:
                # Out of time with more to send: hand the lane to a fresh invocation (the lease and any
                # pending rekick go with it: the kick below does what the rekick asked).
                self._store.hand_over_lane(tenant_id, endpoint_id, customer_id, owner)
                self._queue.kick([LaneKick(tenant_id, endpoint_id, customer_id)])
                return
            if self._store.release_lane(tenant_id, endpoint_id, customer_id, owner):
                return
            # Kicked while we walked: something may have come in behind the cursor's read. Walk again.

    def _chain_timer(self, kick: LaneKick, now: datetime) -> None:
        """A timer kick that came before its time (the queue delays 15 minutes at most): send it on for
        the rest, unless the lane has a newer timer (then this one is spent)."""
        assert kick.due is not None
        current = self._store.lane_timer(*kick.lane)
        if current == format_timestamp(kick.due):
            self._queue.schedule(kick, queue_delay(kick.due, now))

    def attempt(self, tenant_id: str, endpoint: WebhookEndpoint, event: WebhookEvent) -> AttemptOutcome:
        """One signed POST of `event` to `endpoint` (every secret that signs now signs it)."""
        now = self._clock()
        context = secret_context(tenant_id, endpoint.id)
        keys = [self._secrets.decrypt(secret.ciphertext, context) for secret in endpoint.signing_secrets(now)]
        body = event.body()
        headers = webhook_headers(keys, event.id, int(now.timestamp()), body)
        outcome = self._transport.post(endpoint.url, body, headers)
        logger.info(
            "webhook attempt",
            extra={
                "tenant_id": tenant_id,
                "endpoint_id": endpoint.id,
                "event_id": event.id,
                "event_type": event.type.value,
                "status_code": outcome.status_code,
                "error": outcome.error,
                "duration_ms": outcome.duration_ms,
            },
        )
        return outcome

    def disable_after_gone(self, tenant_id: str, endpoint: WebhookEndpoint) -> None:
        """The endpoint answered 410 Gone: disable it at once (it may have changed: read it again)."""
        for _ in range(3):
            current = self._store.get_endpoint(tenant_id, endpoint.id)
            if current is None or current.disabled:
                return
            try:
                self._store.save_endpoint(
                    tenant_id, current.disable("the endpoint answered 410 Gone", self._clock())
                )
            except StaleRevision:
                continue
            metrics.add_metric(name="WebhookEndpointsDisabled", unit=MetricUnit.Count, value=1)
            logger.warning("webhook endpoint disabled", extra={"endpoint_id": endpoint.id})
            return

    # -- replays ---------------------------------------------------------------------------------------

    def replay(self, tenant_id: str, delivery_id_: str) -> None:
        """One attempt of a finished delivery now, outside its lane (the receiver asked for it again).
        A pending one is its lane's business: it was made due now, and its lane was kicked."""
        delivery = self._store.get_delivery(tenant_id, delivery_id_)
        if delivery is None or delivery.status is DeliveryStatus.PENDING:
            return
        endpoint = self._store.get_endpoint(tenant_id, delivery.endpoint_id)
        event = self._outbox.get(tenant_id, delivery.customer_id, delivery.sequence)
        if endpoint is None or endpoint.disabled or event is None:
            return
        outcome = self.attempt(tenant_id, endpoint, event)
        after = delivery.attempted(outcome, self._clock(), self._settings.schedule, replay=True)
        try:
            self._store.save_delivery(tenant_id, after)
        except StaleRevision:
            logger.info(
                "replay outcome not recorded: the delivery changed", extra={"delivery_id": delivery.id}
            )
        _count(after, outcome, replay=True)
        if outcome.status_code == 410:
            self.disable_after_gone(tenant_id, endpoint)


class _Next(Enum):
    GO_ON = "go_on"  # the event is behind the cursor now: look at the next one
    STOP = "stop"  # the lane waits (a retry later, a disabled endpoint, a lost lease)
    HAND_OVER = "hand_over"  # time is short: a fresh invocation takes the lane on


class _Walk:
    """One lease's walk along a lane: from the cursor, each event sent, skipped or waited for."""

    def __init__(
        self,
        sender: WebhookSender,
        endpoint: WebhookEndpoint,
        tenant_id: str,
        customer_id: str,
        owner: str,
        cursor: int,
        timer_due: str | None,
    ) -> None:
        self._sender = sender
        self._store = sender._store
        self._endpoint = endpoint
        self._tenant = tenant_id
        self._customer = customer_id
        self._owner = owner
        self._cursor = cursor
        self._stored_cursor = cursor
        self._timer_due = timer_due

    def run(self, time_left_ms: Callable[[], int]) -> bool:
        """Walk until the lane waits or is empty (True), or time runs short first (False)."""
        while True:
            events = self._sender._outbox.events_from(
                self._tenant, self._customer, self._cursor, EVENTS_PER_READ
            )
            for event in events:
                if event.sequence != self._cursor:
                    # Sequences have no gaps (the outbox head moves one by one), so this cannot be;
                    # should it be, wait rather than deliver out of order.
                    logger.error("outbox sequence gap", extra={"sequence": self._cursor})
                    events = []
                    break
                after = self._step(event, time_left_ms)
                if after is not _Next.GO_ON:
                    self._save_cursor()
                    return after is _Next.STOP
            if not events:
                self._save_cursor()
                return True
            # The endpoint may have been disabled or changed meanwhile: read it again per batch.
            endpoint = self._store.get_endpoint(self._tenant, self._endpoint.id)
            if endpoint is None or endpoint.disabled:
                self._save_cursor()
                return True
            self._endpoint = endpoint

    def _step(self, event: WebhookEvent, time_left_ms: Callable[[], int]) -> _Next:
        identifier = delivery_id(event.id, self._endpoint.id)
        delivery = self._store.get_delivery(self._tenant, identifier)
        now = self._sender._clock()
        step = next_step(self._endpoint, event, delivery, now)
        if step.kind in (StepKind.SKIP, StepKind.DONE):
            self._cursor = event.sequence + 1
            return _Next.GO_ON
        if step.kind is StepKind.WAIT:
            assert step.until is not None
            self._save_cursor()
            self._ensure_timer(step.until, now)
            return _Next.STOP
        if time_left_ms() < TIME_RESERVE_MS:
            return _Next.HAND_OVER
        # Read the endpoint again right before sending: once a disable, a delete or a new URL is saved,
        # nothing more goes out the old way.
        current = self._store.get_endpoint(self._tenant, self._endpoint.id)
        if current is None or current.disabled:
            return _Next.STOP
        self._endpoint = current
        if delivery is None and not current.should_deliver(event):
            self._cursor = event.sequence + 1  # its filter changed meanwhile: not this endpoint's any more
            return _Next.GO_ON
        self._save_cursor()
        if delivery is None:
            fresh = Delivery.create(self._endpoint, event, now)
            if not self._store.create_delivery(self._tenant, fresh):
                fresh = self._store.get_delivery(self._tenant, identifier) or fresh
                if fresh.status is not DeliveryStatus.PENDING:
                    self._cursor = event.sequence + 1  # another sender finished it meanwhile
                    return _Next.GO_ON
            delivery = fresh
        return self._send(delivery, event)

    def _send(self, delivery: Delivery, event: WebhookEvent) -> _Next:
        sender = self._sender
        outcome = sender.attempt(self._tenant, self._endpoint, event)
        after = delivery.attempted(outcome, sender._clock(), sender._settings.schedule)
        timer = None
        if after.status is DeliveryStatus.PENDING:
            assert after.next_attempt_at is not None
            # The timer goes out before the state that names it: a crash in between leaves a delivery
            # due at once (retried by the next kick), never a lane waiting for a timer never sent.
            timer = format_timestamp(after.next_attempt_at)
            kick = LaneKick(self._tenant, self._endpoint.id, self._customer, after.next_attempt_at)
            sender._queue.schedule(kick, queue_delay(after.next_attempt_at, sender._clock()))
        advance = None if after.status is DeliveryStatus.PENDING else event.sequence + 1
        try:
            self._store.record_attempt(
                self._tenant, after, lane_owner=self._owner, advance_to=advance, timer_due=timer
            )
        except StaleRevision:
            # The lease ran out under us and another sender moved on: leave the lane to it.
            logger.warning("lane lease lost during an attempt", extra={"delivery_id": delivery.id})
            return _Next.STOP
        _count(after, outcome)
        if timer is not None:
            self._timer_due = timer
            return _Next.STOP
        self._cursor = self._stored_cursor = event.sequence + 1
        if outcome.status_code == 410:
            sender.disable_after_gone(self._tenant, self._endpoint)
            return _Next.STOP
        return _Next.GO_ON

    def _ensure_timer(self, due: datetime, now: datetime) -> None:
        """A lane waiting for a retry needs one timer for that time: send it unless it is out already."""
        text = format_timestamp(due)
        if self._timer_due == text and due - now > TIMER_SKEW:
            # Its timer is out. Near its time it may have arrived already at a sender whose clock ran
            # ahead of ours and found it early: then one more timer is cheaper than a stalled lane.
            return
        kick = LaneKick(self._tenant, self._endpoint.id, self._customer, due)
        self._sender._queue.schedule(kick, queue_delay(due, now))
        self._store.set_lane_timer(self._tenant, self._endpoint.id, self._customer, self._owner, text)
        self._timer_due = text

    def _save_cursor(self) -> None:
        if self._cursor != self._stored_cursor:
            self._store.advance_lane(
                self._tenant, self._endpoint.id, self._customer, self._owner, self._cursor
            )
            self._stored_cursor = self._cursor


def _count(after: Delivery, outcome: AttemptOutcome, *, replay: bool = False) -> None:
    if replay:
        metrics.add_metric(name="WebhookReplays", unit=MetricUnit.Count, value=1)
        return
    if after.status is DeliveryStatus.SUCCEEDED:
        metrics.add_metric(name="WebhookDeliveriesSucceeded", unit=MetricUnit.Count, value=1)
    else:
        metrics.add_metric(name="WebhookAttemptsFailed", unit=MetricUnit.Count, value=1)
    if after.status is DeliveryStatus.FAILED:
        metrics.add_metric(name=WEBHOOK_DEAD_LETTERED_METRIC, unit=MetricUnit.Count, value=1)
        logger.warning(
            "webhook delivery dead-lettered",
            extra={"delivery_id": after.id, "endpoint_id": after.endpoint_id, "reason": describe(outcome)},
        )
