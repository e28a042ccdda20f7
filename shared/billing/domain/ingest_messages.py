"""The ingest queue's message format, and packing many events into few messages.

One message carries up to a message-size limit of events of one tenant, so a 1000-event request costs a
handful of SQS requests rather than a thousand.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from billing.domain import canonical_json
from billing.domain.errors import PoisonMessage
from billing.domain.usage_events import UsageEvent

MESSAGE_VERSION = 1
MAX_ENTRIES_PER_BATCH = 10  # SendMessageBatch's limit


@dataclass(frozen=True)
class IngestMessage:
    tenant_id: str
    events: tuple[dict[str, Any], ...]  # the events' message form (UsageEvent.to_message)

    def body(self) -> str:
        return canonical_json.dumps(
            {"v": MESSAGE_VERSION, "tenant_id": self.tenant_id, "events": self.events}
        )


def pack_events(tenant_id: str, events: Sequence[UsageEvent], max_bytes: int) -> list[IngestMessage]:
    """Pack events, in order, into as few messages as fit `max_bytes` each.

    Raises ValueError if a single event cannot fit (event limits keep that from happening).
    """
    envelope = len(IngestMessage(tenant_id, ()).body().encode())
    messages: list[IngestMessage] = []
    current: list[dict[str, Any]] = []
    size = envelope
    for event in events:
        item = event.to_message()
        item_size = len(canonical_json.dumps(item).encode())
        if envelope + item_size > max_bytes:
            raise ValueError(f"event {event.event_id!r} is {item_size} bytes, larger than a message can hold")
        added = item_size + (1 if current else 0)  # the comma between events
        if current and size + added > max_bytes:
            messages.append(IngestMessage(tenant_id, tuple(current)))
            current, size = [], envelope
            added = item_size
        current.append(item)
        size += added
    if current:
        messages.append(IngestMessage(tenant_id, tuple(current)))
    return messages


def group_for_batches(bodies: Iterable[str], max_batch_bytes: int) -> list[list[str]]:
    """Group message bodies into SendMessageBatch calls: at most 10 entries and `max_batch_bytes` each."""
    batches: list[list[str]] = []
    current: list[str] = []
    size = 0
    for body in bodies:
        body_size = len(body.encode())
        if current and (len(current) == MAX_ENTRIES_PER_BATCH or size + body_size > max_batch_bytes):
            batches.append(current)
            current, size = [], 0
        current.append(body)
        size += body_size
    if current:
        batches.append(current)
    return batches


def decode_message(body: str) -> tuple[str, list[Any]]:
    """Read a message body into (tenant id, raw events). Raises PoisonMessage if it is not one of ours."""
    try:
        data = canonical_json.loads(body)
    except (ValueError, TypeError) as exc:
        raise PoisonMessage(f"body is not JSON: {exc.__class__.__name__}", code="undecodable") from None
    if not isinstance(data, dict) or data.get("v") != MESSAGE_VERSION:
        raise PoisonMessage(f"not an ingest message of version {MESSAGE_VERSION}", code="unknown_format")
    tenant_id = data.get("tenant_id")
    events = data.get("events")
    if not isinstance(tenant_id, str) or not tenant_id or not isinstance(events, list):
        raise PoisonMessage("ingest message lacks tenant_id or events", code="schema_invalid")
    return tenant_id, events
