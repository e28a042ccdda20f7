"""Deliveries: one event to one endpoint, its attempts, and the order in which a lane sends them.

A delivery's id is derived from (event id, endpoint id), so whoever creates it (the dispatcher on the
stream, the sender meeting the event first, a redelivered stream record) creates the same one, once.
Deliveries to one endpoint for one customer form a lane, sent in the customer's `sequence` order: the
next one is not sent before the one before it succeeded or was dead-lettered. `next_step` is the lane's
rule, applied by the sender to the event at the lane's cursor.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from billing.domain import canonical_json
from billing.domain.webhooks.attempts import AttemptOutcome
from billing.domain.webhooks.endpoints import WebhookEndpoint
from billing.domain.webhooks.events import EventType, WebhookEvent
from billing.domain.webhooks.retries import (
    RetrySchedule,
    disables_endpoint,
    next_attempt,
    parse_retry_after,
)

DELIVERY_ID_PREFIX = "whd_"
REPLAY_WINDOW = timedelta(days=30)
MAX_KEPT_ATTEMPTS = 50  # a delivery keeps its latest attempts (the schedule makes 10; replays add one each)


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


def delivery_id(event_id: str, endpoint_id: str) -> str:
    return DELIVERY_ID_PREFIX + canonical_json.sha256_hex([event_id, endpoint_id])[:32]


@dataclass(frozen=True)
class Attempt:
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int
    replay: bool = False


@dataclass(frozen=True)
class Delivery:
    id: str
    endpoint_id: str
    event_id: str
    event_type: EventType
    customer_id: str
    sequence: int
    status: DeliveryStatus
    created_at: datetime
    updated_at: datetime
    next_attempt_at: datetime | None
    attempts: tuple[Attempt, ...] = ()
    scheduled_attempts: int = 0  # attempts made on the retry schedule (replays do not count)
    failure_reason: str | None = None
    revision: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "event_type", EventType(self.event_type))
        object.__setattr__(self, "status", DeliveryStatus(self.status))

    @classmethod
    def create(cls, endpoint: WebhookEndpoint, event: WebhookEvent, at: datetime) -> Delivery:
        """A new delivery, due at once."""
        return cls(
            id=delivery_id(event.id, endpoint.id),
            endpoint_id=endpoint.id,
            event_id=event.id,
            event_type=event.type,
            customer_id=event.customer_id,
            sequence=event.sequence,
            status=DeliveryStatus.PENDING,
            created_at=at,
            updated_at=at,
            next_attempt_at=at,
        )

    def due(self, at: datetime) -> bool:
        return self.status is DeliveryStatus.PENDING and (
            self.next_attempt_at is None or self.next_attempt_at <= at
        )

    def replayable(self, at: datetime) -> bool:
        return at - self.created_at <= REPLAY_WINDOW

    def attempted(
        self, outcome: AttemptOutcome, at: datetime, schedule: RetrySchedule, *, replay: bool = False
    ) -> Delivery:
        """The delivery after one attempt: succeeded, retried later on the schedule, or dead-lettered.

        An answer of 410 dead-letters it at once (the endpoint is being disabled). A replay is one attempt
        outside the schedule: it succeeds or fails, it never schedules retries of its own. A scheduled
        attempt of a delivery that is finished already (a sender whose lease ran out, met it done) changes
        nothing; a replay of one still pending is its next scheduled attempt.
        """
        if self.status is not DeliveryStatus.PENDING and not replay:
            return self
        replay = replay and self.status is not DeliveryStatus.PENDING
        attempt = Attempt(at, outcome.status_code, outcome.error, outcome.duration_ms, replay)
        attempts = (*self.attempts, attempt)[-MAX_KEPT_ATTEMPTS:]
        made = self.scheduled_attempts + (0 if replay else 1)
        done = replace(self, attempts=attempts, scheduled_attempts=made, updated_at=at)
        if outcome.succeeded:
            return replace(done, status=DeliveryStatus.SUCCEEDED, next_attempt_at=None, failure_reason=None)
        if replay and self.status is DeliveryStatus.SUCCEEDED:
            return done  # the receiver had it: a replay it failed (even with 410) does not undo that
        if disables_endpoint(outcome.status_code):
            return replace(
                done,
                status=DeliveryStatus.FAILED,
                next_attempt_at=None,
                failure_reason="the endpoint answered 410 Gone: it was disabled",
            )
        if replay:
            return replace(
                done,
                status=DeliveryStatus.FAILED,
                next_attempt_at=None,
                failure_reason=f"replay failed: {describe(outcome)}",
            )
        decision = next_attempt(schedule, made, self.id, at, parse_retry_after(outcome.retry_after, at))
        if decision.next_attempt_at is None:
            return replace(
                done,
                status=DeliveryStatus.FAILED,
                next_attempt_at=None,
                failure_reason=f"{made} attempts failed, the last: {describe(outcome)}",
            )
        return replace(done, status=DeliveryStatus.PENDING, next_attempt_at=decision.next_attempt_at)

    def replay_requested(self, at: datetime) -> Delivery:
        """A pending delivery asked to be replayed is simply due now; a finished one stays as it is until
        the replay attempt is made."""
        if self.status is DeliveryStatus.PENDING:
            return replace(self, next_attempt_at=at, updated_at=at)
        return self


def describe(outcome: AttemptOutcome) -> str:
    if outcome.status_code is None:
        return outcome.error or "no answer"
    text = f"HTTP {outcome.status_code}"
    return f"{text} ({outcome.error})" if outcome.error else text


# ---- the lane rule ---------------------------------------------------------------------------------


class StepKind(StrEnum):
    SKIP = "skip"  # not this endpoint's: the cursor moves past it
    SEND = "send"  # attempt it now (creating the delivery when it does not exist yet)
    WAIT = "wait"  # its next attempt is later: the lane waits (nothing after it is sent meanwhile)
    DONE = "done"  # delivered or dead-lettered already: the cursor moves past it


@dataclass(frozen=True)
class LaneStep:
    kind: StepKind
    until: datetime | None = None


def next_step(
    endpoint: WebhookEndpoint, event: WebhookEvent, delivery: Delivery | None, at: datetime
) -> LaneStep:
    """What the lane does with the event at its cursor (the endpoint is enabled: a disabled one's lanes
    do not move). A delivery that exists is always carried through, even if the endpoint's filter changed
    since it was made; one that does not exist is made only if the endpoint should receive the event."""
    if delivery is None:
        return LaneStep(StepKind.SEND) if endpoint.should_deliver(event) else LaneStep(StepKind.SKIP)
    if delivery.status is not DeliveryStatus.PENDING:
        return LaneStep(StepKind.DONE)
    if delivery.due(at):
        return LaneStep(StepKind.SEND)
    return LaneStep(StepKind.WAIT, delivery.next_attempt_at)
