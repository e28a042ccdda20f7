"""Builders for rating tests: usage events, meters, plans and customers with readable defaults."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from billing.domain.usage_events import UsageEvent

RECEIVED = datetime(2026, 1, 1, tzinfo=UTC)


def at(text: str) -> datetime:
    """An instant from RFC 3339 text, e.g. at("2026-03-04T10:00:00Z")."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def usage(
    event_id: str,
    timestamp: str | datetime = "2026-03-04T10:00:00Z",
    *,
    type: str = "api.call",
    customer_id: str = "cus_42",
    tenant_id: str = "acme",
    received_at: datetime = RECEIVED,
    **properties: Any,
) -> UsageEvent:
    """A stored usage event; keyword arguments become its properties (floats are not allowed)."""
    assert not any(isinstance(value, float) for value in properties.values()), "use Decimal, not float"
    return UsageEvent(
        tenant_id=tenant_id,
        customer_id=customer_id,
        event_id=event_id,
        type=type,
        timestamp=at(timestamp) if isinstance(timestamp, str) else timestamp,
        received_at=received_at,
        properties=properties,
    )


def d(text: str) -> Decimal:
    return Decimal(text)
