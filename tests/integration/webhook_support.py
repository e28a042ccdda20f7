"""A webhook test bench on moto: the real store, outbox, KMS and HTTP transport, with an injected clock.

The webhook queue is replaced by `RecordedQueue`, which keeps each message with the (fake) time it becomes
visible: `WebhookBench.run()` hands due messages to the sender and moves the clock to the next one, so a
retry schedule of hours plays in milliseconds, and the timers' chaining past SQS's 15-minute limit is
exercised as it happens in AWS. The dispatcher is fed the outbox items written so far, as the stream
would (the stream itself is played by the local runtime and by the dispatcher handler's tests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from billing.adapters.outbox_store import event_from_item, tenant_of
from billing.adapters.webhook_http import HttpWebhookTransport, Resolver, system_resolver
from billing.bootstrap import get_services
from billing.domain.webhooks.events import WebhookEvent
from billing.domain.webhooks.messages import LaneKick, ReplayRequest, ResumeRequest, SenderMessage
from billing.domain.webhooks.retries import RetrySchedule
from billing.services.webhook_delivery import OutboxDispatcher, SenderSettings, WebhookSender
from billing.services.webhooks import WebhookDeliveryService, WebhookEndpointService
from billing.settings import get_settings


class FakeClock:
    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class RecordedQueue:
    """The webhook queue: messages with the time they become visible (delays honoured, in fake time)."""

    clock: Callable[[], datetime]
    messages: list[tuple[datetime, SenderMessage]] = field(default_factory=list)
    sent: list[tuple[datetime, int, SenderMessage]] = field(default_factory=list)  # (at, delay, message)

    def kick(self, kicks: Any) -> None:
        for kick in kicks:
            self._add(kick, 0)

    def schedule(self, kick: LaneKick, delay_seconds: int) -> None:
        assert 0 <= delay_seconds <= 900, "SQS delays a message 15 minutes at most"
        self._add(kick, delay_seconds)

    def replay(self, request: ReplayRequest) -> None:
        self._add(request, 0)

    def resume(self, request: ResumeRequest) -> None:
        self._add(request, 0)

    def _add(self, message: SenderMessage, delay: int) -> None:
        now = self.clock()
        self.messages.append((now + timedelta(seconds=delay), message))
        self.sent.append((now, delay, message))

    def take_due(self) -> list[SenderMessage]:
        now = self.clock()
        due = [message for visible, message in self.messages if visible <= now]
        self.messages = [(visible, message) for visible, message in self.messages if visible > now]
        return due

    def next_visible(self) -> datetime | None:
        return min((visible for visible, _ in self.messages), default=None)


class WebhookBench:
    def __init__(
        self,
        *,
        schedule: RetrySchedule | None = None,
        resolver: Resolver = system_resolver,
        clock: FakeClock | None = None,
    ) -> None:
        services = get_services()
        self.clock = clock or FakeClock()
        self.queue = RecordedQueue(self.clock)
        self.transport = HttpWebhookTransport(allow_loopback=True, resolver=resolver, timeout_seconds=5)
        self.store = services.webhook_store
        self.outbox = services.outbox
        self.dispatcher = OutboxDispatcher(self.store, self.queue, self.clock)
        self.sender = WebhookSender(
            outbox=services.outbox,
            store=services.webhook_store,
            queue=self.queue,
            secrets=services.webhook_secrets,
            transport=self.transport,
            settings=SenderSettings(schedule=schedule or get_settings().webhook_retry_schedule),
            clock=self.clock,
        )
        self.endpoints = WebhookEndpointService(
            services.webhook_store, services.webhook_secrets, self.transport, self.queue, self.clock
        )
        self.deliveries = WebhookDeliveryService(services.webhook_store, self.queue, self.clock)
        self._dispatched: set[str] = set()

    # -- the stream ------------------------------------------------------------------------------------

    def outbox_items(self) -> list[dict[str, Any]]:
        """Every outbox event item of the billing table (what the stream filter lets through)."""
        client = boto3.client("dynamodb")
        items: list[dict[str, Any]] = []
        for page in client.get_paginator("scan").paginate(TableName=get_settings().billing_table):
            items += [item for item in page["Items"] if item.get("entity", {}).get("S") == "outbox_event"]
        return sorted(items, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))

    def events(self) -> list[tuple[str, WebhookEvent]]:
        return [(tenant_of(item), event_from_item(item)) for item in self.outbox_items()]

    def dispatch(self) -> int:
        """Dispatch the outbox events not dispatched yet by this bench; returns how many."""
        fresh = [(tenant, event) for tenant, event in self.events() if event.id not in self._dispatched]
        if fresh:
            self.dispatcher.dispatch(fresh)
            self._dispatched.update(event.id for _, event in fresh)
        return len(fresh)

    # -- the sender ------------------------------------------------------------------------------------

    def run(self, *, horizon: timedelta = timedelta(days=3), time_left_ms: int = 60_000) -> int:
        """Dispatch, then hand every message to the sender as it becomes visible, moving the clock on to
        the next one, until nothing is left or the next is beyond `horizon`. Returns messages handled."""
        handled = 0
        stop_at = self.clock() + horizon
        while True:
            self.dispatch()
            due = self.queue.take_due()
            for message in due:
                self.sender.handle(message, lambda: time_left_ms)
                handled += 1
            if due:
                continue
            following = self.queue.next_visible()
            if following is None or following > stop_at:
                return handled
            self.clock.now = max(self.clock.now, following)
