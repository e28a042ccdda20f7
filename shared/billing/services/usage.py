"""Usage of the open billing period: a customer's stored events rated as a draft invoice.
Read-only: nothing here is finalized or stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from billing.domain.catalog import CustomerProfile, PlanRecord, SubscriptionRecord
from billing.domain.errors import NotFound
from billing.domain.ids import is_valid_id, shown_id
from billing.domain.rating.invoices import Invoice, LineType, build_invoice
from billing.domain.rating.meters import Meter, aggregate
from billing.domain.rating.money import Money
from billing.domain.rating.periods import BillingPeriod, format_instant, utc
from billing.domain.rating.plans import SubscriptionSegment
from billing.domain.usage_events import UsageEvent
from billing.services.catalog import plan_loader


class EventsReader(Protocol):
    def events_in(self, tenant_id: str, customer_id: str, start: datetime, end: datetime) -> list[UsageEvent]:
        """The customer's stored events with start <= timestamp < end."""


class CatalogReader(Protocol):
    """What usage reads from the catalog (the CatalogStore provides it)."""

    def get_customer(self, tenant_id: str, customer_id: str) -> CustomerProfile | None: ...

    def get_subscription(self, tenant_id: str, subscription_id: str) -> SubscriptionRecord | None: ...

    def get_plan(self, tenant_id: str, plan_id: str, version: int | None = None) -> PlanRecord | None: ...

    def all_meters(self, tenant_id: str) -> list[Meter]: ...


@dataclass(frozen=True)
class MeterUsage:
    meter: str
    quantity: Decimal
    amount: Money


@dataclass(frozen=True)
class UsageReport:
    """The open period's draft invoice (before tax) and its usage per meter."""

    as_of: datetime
    invoice: Invoice
    meters: tuple[MeterUsage, ...]

    def total_of(self, line_type: LineType) -> Money:
        total = Money.zero(self.invoice.currency)
        for line in self.invoice.lines:
            if line.type is line_type:
                total += line.amount
        return total


def loaded_segments(
    catalog: CatalogReader,
    tenant_id: str,
    subscription: SubscriptionRecord,
    within: BillingPeriod | None = None,
) -> list[SubscriptionSegment]:
    """The subscription's segments with their plan versions loaded (each read once); `within` keeps only
    those that overlap a period."""
    plan_of = plan_loader(catalog, tenant_id)
    return [
        SubscriptionSegment(plan_of(segment.plan_id, segment.plan_version), segment.start, segment.end)
        for segment in subscription.segments
        if within is None or within.intersect(segment.start, segment.end) is not None
    ]


class UsageService:
    def __init__(self, catalog: CatalogReader, events: EventsReader) -> None:
        self._catalog = catalog
        self._events = events

    def open_period(self, tenant_id: str, customer_id: str, at: datetime) -> UsageReport:
        """Rate the period containing `at` as it stands: base fee, usage so far, commitment true-up.

        The subscription is the one running at `at`, else the last one that ran during the period.
        """
        customer = self._catalog.get_customer(tenant_id, customer_id) if is_valid_id(customer_id) else None
        if customer is None:
            raise NotFound(f"customer {shown_id(customer_id)} not found", code="customer_not_found")
        period = customer.billing.cycle.period_containing(at)
        span = customer.subscription_in(period.start_utc, period.end_utc, at)
        subscription = None if span is None else self._catalog.get_subscription(tenant_id, span.id)
        if subscription is None:
            raise NotFound(
                f"customer {customer_id} has no subscription in the billing period "
                f"{format_instant(period.start_utc)} to {format_instant(period.end_utc)}; usage is rated "
                "against a subscription's plan (POST /v1/subscriptions)",
                code="no_subscription",
            )
        segments = loaded_segments(self._catalog, tenant_id, subscription, within=period)
        meters = {meter.key: meter for meter in self._catalog.all_meters(tenant_id)}
        events = self._events.events_in(tenant_id, customer_id, period.start_utc, period.end_utc)
        invoice = build_invoice(
            tenant_id, customer.billing, subscription.id, period, segments, meters, events
        )
        return UsageReport(utc(at), invoice, _meter_usage(invoice, segments, period, meters, events))


def _meter_usage(
    invoice: Invoice,
    segments: list[SubscriptionSegment],
    period: BillingPeriod,
    meters: dict[str, Meter],
    events: list[UsageEvent],
) -> tuple[MeterUsage, ...]:
    """Per charged meter: the quantity over the subscription's part of the period, the amount of its lines.

    The quantity is aggregated over the whole covered window (a max meter's maximum is not the sum of
    each plan's maxima); the amount is the sum of the meter's rounded usage lines.
    """
    windows = [window for segment in segments if (window := segment.window_in(period)) is not None]
    covered = [event for event in events if any(window.contains(event.timestamp) for window in windows)]
    amounts: dict[str, Money] = {}
    for line in invoice.lines:
        if line.type is LineType.USAGE and line.meter is not None:
            amounts[line.meter] = amounts.get(line.meter, Money.zero(invoice.currency)) + line.amount
    return tuple(
        MeterUsage(key, aggregate(meters[key], covered).quantity, amount) for key, amount in amounts.items()
    )
