"""Builders for rating tests: usage events, meters, plans and customers with readable defaults."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from billing.domain.rating.customers import Customer
from billing.domain.rating.invoices import Invoice, InvoiceLine, build_invoice
from billing.domain.rating.meters import Aggregation, Meter
from billing.domain.rating.money import Currency
from billing.domain.rating.periods import BillingPeriod
from billing.domain.rating.plans import Plan, SubscriptionSegment
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


# --- catalog -----------------------------------------------------------------------------------------

# The example plan of API.md, verbatim.
API_PLAN: dict[str, Any] = {
    "id": "pro",
    "currency": "USD",
    "interval": "month",
    "base_fee": "49.00",
    "tax_code": "saas",
    "minimum_commitment": "100.00",
    "charges": [
        {"meter": "tokens", "model": "graduated",
         "tiers": [{"up_to": 100000, "unit_price": "0"},
                   {"up_to": None, "unit_price": "0.00002", "flat_fee": "0"}]},
        {"meter": "calls", "model": "per_unit", "unit_price": "0.001"},
        {"meter": "seats", "model": "volume",
         "tiers": [{"up_to": 10, "unit_price": "8"}, {"up_to": None, "unit_price": "6"}]},
        {"meter": "gb", "model": "package", "package_size": 100, "package_price": "5.00"},
    ],
}  # fmt: skip

METERS = (
    Meter("tokens", "llm.completion", Aggregation.SUM, "tokens"),
    Meter("calls", "api.call", Aggregation.COUNT),
    Meter("seats", "seats.updated", Aggregation.MAX, "seats"),
    Meter("gb", "storage.used", Aggregation.SUM, "gb"),
)


def plan(base: dict[str, Any] | None = None, *, version: int = 1, **overrides: Any) -> Plan:
    """A plan from the API shape (API.md's example by default), with top-level fields overridden."""
    data = {**(base or API_PLAN), **overrides}
    return Plan.from_json(data, version=version)


def customer(timezone: str = "America/New_York", anchor: int = 1, currency: str = "USD") -> Customer:
    return Customer("cus_42", Currency.of(currency), timezone, anchor)


def period_of(who: Customer, instant: str) -> BillingPeriod:
    return who.cycle.period_containing(at(instant))


def tokens(event_id: str, timestamp: str | datetime, count: int, **kwargs: Any) -> UsageEvent:
    return usage(event_id, timestamp, type="llm.completion", tokens=count, **kwargs)


def calls(count: int, timestamp: str | datetime, prefix: str = "call") -> list[UsageEvent]:
    return [usage(f"{prefix}-{n}", timestamp, type="api.call") for n in range(count)]


def seats(event_id: str, timestamp: str | datetime, count: int) -> UsageEvent:
    return usage(event_id, timestamp, type="seats.updated", seats=count)


def gb(event_id: str, timestamp: str | datetime, amount: int | Decimal) -> UsageEvent:
    return usage(event_id, timestamp, type="storage.used", gb=amount)


def invoice_for(
    who: Customer,
    period: BillingPeriod,
    segments: Sequence[SubscriptionSegment],
    events: Iterable[UsageEvent],
    adjustments: Sequence[InvoiceLine] = (),
) -> Invoice:
    return build_invoice("acme", who, "sub_1", period, segments, METERS, events, adjustments)


def summary(invoice: Invoice) -> list[tuple[str, str | None, str]]:
    """(type, meter, amount) per line: what a reader checks first."""
    return [(line.type.value, line.meter, line.amount.major) for line in invoice.lines]
