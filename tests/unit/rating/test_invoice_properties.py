"""Properties of invoices that must hold for any events, any plan-change instant, any timezone."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from random import Random

from hypothesis import given, settings
from hypothesis import strategies as st

from billing.domain.rating.invoices import Invoice, LineType
from billing.domain.rating.money import to_minor
from billing.domain.rating.plans import Subscription, SubscriptionSegment
from billing.domain.usage_events import UsageEvent
from tests.unit.rating.builders import at, customer, gb, invoice_for, period_of, plan, seats, tokens, usage

ZONES = ["UTC", "America/New_York", "Pacific/Tongatapu", "Pacific/Honolulu", "Europe/Berlin"]
START = at("2026-02-25T00:00:00Z")  # events range a little beyond March on both sides
SPAN_SECONDS = 40 * 86400


@st.composite
def usage_events(draw: st.DrawFn) -> list[UsageEvent]:
    """Events of every metered kind at instants around March, unique ids."""
    count = draw(st.integers(min_value=0, max_value=30))
    events = []
    for n in range(count):
        moment = START + timedelta(seconds=draw(st.integers(min_value=0, max_value=SPAN_SECONDS)))
        kind = draw(st.sampled_from(["tokens", "call", "seats", "gb"]))
        if kind == "tokens":
            events.append(tokens(f"e{n}", moment, draw(st.integers(min_value=0, max_value=400_000))))
        elif kind == "call":
            events.append(usage(f"e{n}", moment, type="api.call"))
        elif kind == "seats":
            events.append(seats(f"e{n}", moment, draw(st.integers(min_value=0, max_value=20))))
        else:
            events.append(gb(f"e{n}", moment, draw(st.decimals(min_value=0, max_value=300, places=2))))
    return events


def offset_into(period_start: datetime, period_end: datetime, seconds: int) -> datetime:
    return min(period_start + timedelta(seconds=seconds), period_end - timedelta(seconds=1))


@settings(max_examples=60)
@given(usage_events(), st.sampled_from(ZONES), st.integers(min_value=0, max_value=31 * 86400), st.randoms())
def test_invoices_are_invariant_under_event_order_and_duplication(
    events: list[UsageEvent], zone: str, change_after: int, random: Random
) -> None:
    who = customer(zone)
    period = period_of(who, "2026-03-15T12:00:00Z")
    subscription = Subscription.start("sub_1", "cus_42", plan(), at("2026-01-01T00:00:00Z")).change_plan(
        plan(version=2, base_fee="59.00"), offset_into(period.start_utc, period.end_utc, change_after)
    )
    noisy = events + random.sample(events, k=len(events) // 2) + events[:3]
    random.shuffle(noisy)
    expected = invoice_for(who, period, subscription.segments, events).to_json()
    assert invoice_for(who, period, subscription.segments, noisy).to_json() == expected
    # and building twice gives byte-identical JSON
    assert invoice_for(who, period, subscription.segments, events).to_json() == expected


@settings(max_examples=60)
@given(
    usage_events(),
    st.integers(min_value=1, max_value=31 * 86400 - 1),
    st.decimals(min_value=0, max_value=1, places=6),
)
def test_per_unit_usage_split_at_any_instant_sums_to_the_whole(
    events: list[UsageEvent], split_after: int, unit_price: Decimal
) -> None:
    who = customer("America/New_York")
    period = period_of(who, "2026-03-15T12:00:00Z")
    price = {"meter": "tokens", "model": "per_unit", "unit_price": format(unit_price, "f")}
    per_unit = plan(minimum_commitment=None, charges=[price])
    whole = invoice_for(who, period, [SubscriptionSegment(per_unit, at("2026-01-01T00:00:00Z"))], events)
    split = Subscription.start("sub_1", "cus_42", per_unit, at("2026-01-01T00:00:00Z")).change_plan(
        plan(version=2, minimum_commitment=None, charges=[price]),
        offset_into(period.start_utc, period.end_utc, split_after),
    )
    parts = invoice_for(who, period, split.segments, events)
    assert len([line for line in parts.lines if line.type is LineType.USAGE]) == 2
    assert usage_of(parts) == usage_of(whole)


def usage_of(invoice: Invoice) -> tuple[Decimal, Decimal]:
    """(unrounded amount, quantity) of all usage lines together."""
    lines = [line for line in invoice.lines if line.type is LineType.USAGE]
    return (
        sum((line.unrounded or Decimal(0) for line in lines), Decimal(0)),
        sum((line.quantity for line in lines), Decimal(0)),
    )


@settings(max_examples=60)
@given(usage_events(), st.sampled_from(ZONES), st.integers(min_value=0, max_value=31 * 86400))
def test_each_line_is_within_half_a_minor_unit_of_its_exact_amount_and_totals_add_up(
    events: list[UsageEvent], zone: str, change_after: int
) -> None:
    who = customer(zone)
    period = period_of(who, "2026-03-15T12:00:00Z")
    subscription = Subscription.start("sub_1", "cus_42", plan(), at("2026-01-01T00:00:00Z")).change_plan(
        plan(version=2, base_fee="59.99", minimum_commitment="250.00"),
        offset_into(period.start_utc, period.end_utc, change_after),
    )
    invoice = invoice_for(who, period, subscription.segments, events)
    half = invoice.currency.minor_unit / 2
    for line in invoice.lines:
        assert line.unrounded is not None
        assert abs(line.amount.to_decimal() - line.unrounded) <= half
    assert invoice.subtotal.minor == sum(line.amount.minor for line in invoice.lines)
    assert invoice.to_dict()["subtotal_minor"] == invoice.subtotal.minor


@given(st.sampled_from(ZONES), st.integers(min_value=1, max_value=28), st.decimals(0, 10**6, places=2))
def test_a_full_period_bills_exactly_the_full_base_fee(zone: str, anchor: int, fee: Decimal) -> None:
    who = customer(zone, anchor)
    period = period_of(who, "2026-03-15T12:00:00Z")
    priced = plan(base_fee=format(fee, "f"), minimum_commitment=None)
    invoice = invoice_for(who, period, [SubscriptionSegment(priced, at("2025-01-01T00:00:00Z"))], [])
    if fee:
        base = invoice.lines[0]
        assert base.unrounded == fee
        assert base.amount.minor == to_minor(fee, invoice.currency)
        assert base.proration == (period.seconds, period.seconds)
