"""Lanes on moto, at the moments where a wakeup or an order could be lost: a hand-over while a kick
waits, a dispatcher that meets an event its lane has passed, a re-enabled endpoint's lanes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from billing.adapters.webhook_store import DynamoWebhookStore
from billing.bootstrap import get_services
from billing.domain.webhooks.attempts import AttemptOutcome
from billing.domain.webhooks.deliveries import Delivery, delivery_id
from billing.domain.webhooks.endpoints import SigningSecret, WebhookEndpoint
from billing.domain.webhooks.events import WebhookEvent
from billing.domain.webhooks.messages import LaneKick, ResumeRequest
from billing.domain.webhooks.retries import DEFAULT_RETRY_SCHEDULE
from billing.services.webhook_delivery import OutboxDispatcher, SenderSettings, WebhookSender

pytestmark = pytest.mark.usefixtures("aws")

TENANT = "acme"
NOW = datetime(2026, 11, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


class Outbox:
    def __init__(self, events: list[WebhookEvent]) -> None:
        self.events = events

    def get(self, tenant_id: str, customer_id: str, sequence: int) -> WebhookEvent | None:
        return next((event for event in self.events if event.sequence == sequence), None)

    def events_from(self, tenant_id: str, customer_id: str, first: int, limit: int) -> list[WebhookEvent]:
        return [event for event in self.events if event.sequence >= first][:limit]


class Queue:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    def kick(self, kicks: Any) -> None:
        self.messages += list(kicks)

    def schedule(self, kick: LaneKick, delay_seconds: int) -> None:
        self.messages.append(kick)

    def resume(self, request: ResumeRequest) -> None:
        self.messages.append(request)

    def take(self) -> list[Any]:
        taken, self.messages = self.messages, []
        return taken


class Secrets:
    def decrypt(self, ciphertext: str, context: dict[str, str]) -> str:
        return "whsec_" + "A" * 32


def endpoint(**changes: Any) -> WebhookEndpoint:
    fields: dict[str, Any] = {
        "id": "we_1",
        "url": "https://example.com/hooks",
        "event_types": ("*",),
        "description": None,
        "disabled": False,
        "disabled_reason": None,
        "enabled_since": NOW - timedelta(days=1),
        "created_at": NOW - timedelta(days=1),
        "updated_at": NOW - timedelta(days=1),
        "secrets": (SigningSecret("sealed", NOW - timedelta(days=1)),),
    }
    return WebhookEndpoint(**{**fields, **changes})


def events(count: int, customer_id: str = "cus_1") -> list[WebhookEvent]:
    return [
        WebhookEvent(f"evt_{customer_id}_{n}", "invoice.finalized", customer_id, n, NOW, {"n": n})
        for n in range(1, count + 1)
    ]


def store() -> DynamoWebhookStore:
    return get_services().webhook_store


def test_a_kick_that_came_while_the_lane_was_handed_over_is_not_lost() -> None:
    lanes = store()
    lanes.create_endpoint(TENANT, endpoint())
    clock, queue, sent = Clock(), Queue(), []
    time_left = {"ms": 60_000}

    class Transport:
        def post(self, url: str, body: bytes, headers: dict[str, str]) -> AttemptOutcome:
            sent.append(body)
            if len(sent) == 1:
                # Meanwhile the dispatcher kicks the lane (a new event) while it is held, and this
                # invocation runs short of time: it hands the lane over.
                held = lanes.acquire_lane(TENANT, "we_1", "cus_1", "other", clock.now, clock.now)
                assert held is None
                time_left["ms"] = 1_000
            return AttemptOutcome(200, None, 5)

    sender = WebhookSender(
        outbox=Outbox(events(2)),
        store=lanes,
        queue=queue,
        secrets=Secrets(),
        transport=Transport(),
        settings=SenderSettings(DEFAULT_RETRY_SCHEDULE),
        clock=clock,
    )
    sender.run_lane(LaneKick(TENANT, "we_1", "cus_1"), lambda: time_left["ms"])
    assert len(sent) == 1

    time_left["ms"] = 60_000
    clock.now += timedelta(seconds=1)  # the hand-over kick, within the old lease's 90 s
    for message in queue.take():
        sender.handle(message, lambda: time_left["ms"])

    assert len(sent) == 2


def test_the_dispatcher_creates_nothing_behind_a_lane_that_passed_the_event() -> None:
    """A sender met the event first and decided (here: skipped it under the endpoint's filter then); a
    dispatcher that read the filter before it changed must not leave a delivery behind the cursor."""
    lanes = store()
    narrow = endpoint(event_types=("payment.succeeded",))
    lanes.create_endpoint(TENANT, narrow)
    [event] = events(1)
    clock, queue = Clock(), Queue()
    sender = WebhookSender(
        outbox=Outbox([event]),
        store=lanes,
        queue=queue,
        secrets=Secrets(),
        transport=None,  # type: ignore[arg-type]  # nothing is sent: the lane skips the event
        settings=SenderSettings(DEFAULT_RETRY_SCHEDULE),
        clock=clock,
    )
    sender.run_lane(LaneKick(TENANT, "we_1", "cus_1"), lambda: 60_000)

    broad = endpoint()  # the dispatcher read the endpoint as it was before its filter narrowed
    created = lanes.dispatch_delivery(TENANT, Delivery.create(broad, event, clock.now))

    assert created is False
    assert lanes.get_delivery(TENANT, delivery_id(event.id, "we_1")) is None


def test_a_delivery_dispatched_before_its_lane_exists_registers_the_lane_for_a_resume() -> None:
    lanes = store()
    lanes.create_endpoint(TENANT, endpoint())
    clock, queue = Clock(), Queue()
    dispatcher = OutboxDispatcher(lanes, queue, clock)
    for customer in ("cus_1", "cus_2"):
        dispatcher.dispatch([(TENANT, event) for event in events(1, customer)])

    assert lanes.lanes(TENANT, "we_1", 10, None).items == ["cus_1", "cus_2"]

    sender = WebhookSender(
        outbox=Outbox([]),
        store=lanes,
        queue=queue,
        secrets=Secrets(),
        transport=None,  # type: ignore[arg-type]
        settings=SenderSettings(DEFAULT_RETRY_SCHEDULE),
        clock=clock,
    )
    queue.take()
    sender.handle(ResumeRequest(TENANT, "we_1"), lambda: 60_000)
    assert {kick.customer_id for kick in queue.take()} == {"cus_1", "cus_2"}
