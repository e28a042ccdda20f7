"""Webhook events (pure): their ids, their per-customer sequence, what each business fact announces, and
the bytes every delivery of an event sends."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from billing.domain import canonical_json
from billing.domain.invoicing import IssuedInvoice, RecordedPayment
from billing.domain.pii import classify_value
from billing.domain.rating.invoices import Invoice, InvoiceLine, LineType
from billing.domain.rating.money import Currency, Money
from billing.domain.rating.plans import SubscriptionSegment
from billing.domain.tax.model import TaxLine, TaxReason
from billing.domain.webhooks.events import (
    EVENT_ID_PREFIX,
    EventType,
    NewEvent,
    WebhookEvent,
    event_id,
    invoice_data,
    number,
    on_invoice_finalized,
    on_payment,
    on_unbilled_usage,
)
from tests.unit.rating.builders import at, calls, customer, invoice_for, period_of, plan

TENANT = "acme"
USD = Currency.of("USD")
WHO = customer("UTC")
SINCE = at("2026-01-01T00:00:00Z")
JANUARY = period_of(WHO, "2026-01-15T00:00:00Z")
FEBRUARY = period_of(WHO, "2026-02-15T00:00:00Z")
MARCH = period_of(WHO, "2026-03-15T00:00:00Z")
FINALIZED_AT = at("2026-04-01T00:05:00Z")
PAID_AT = at("2026-04-03T09:00:00Z")
STORED_AT = at("2026-04-05T10:00:03.250000Z")

# What each announcement says: ids, amounts (as decimal strings), statuses and instants; nothing else.
INVOICE_KEYS = {
    "invoice_id",
    "subscription_id",
    "status",
    "currency",
    "period",
    "subtotal",
    "tax",
    "total",
    "credit_applied",
    "amount_paid",
    "amount_due",
    "finalized_at",
}
PAYMENT_KEYS = {
    "payment_id",
    "invoice_id",
    "amount",
    "settled",
    "credited",
    "currency",
    "reference_sha256",
    "created_at",
}
LATE_USAGE_KEYS = {"invoice_id", "adjusted_invoice_id", "period", "currency", "amount", "lines"}
LATE_LINE_KEYS = {"meter", "adjusts", "quantity", "amount"}
UNBILLED_KEYS = {"date", "first_event_id", "first_event_type", "first_event_timestamp"}

event_types = st.sampled_from(list(EventType))
texts = st.text(max_size=20)


# --- builders ----------------------------------------------------------------------------------------


def plain(value: object) -> object:
    """Event data as plain JSON values (events hold it frozen: mapping proxies and tuples)."""
    return json.loads(json.dumps(value, default=lambda frozen: dict(frozen)))


def late(
    adjusted_invoice_id: str | None,
    minor: int,
    *,
    meter: str = "calls",
    period: Any = FEBRUARY,
    quantity: str = "3",
) -> InvoiceLine:
    """A late-event adjustment line of an earlier invoice, as rating carries it on the next one."""
    return InvoiceLine(
        type=LineType.ADJUSTMENT,
        amount=Money(minor, USD),
        description=f"Adjustment of usage {meter}, pro v1",
        plan_id="pro",
        plan_version=1,
        period=period,
        meter=meter,
        quantity=Decimal(quantity),
        tax_code="saas",
        adjusts=LineType.USAGE,
        adjusted_invoice_id=adjusted_invoice_id,
    )


def rated(
    *,
    base_fee: str = "49.00",
    unit_price: str = "0.01",
    calls_made: int = 250,
    late_lines: Sequence[InvoiceLine] = (),
) -> Invoice:
    """March's rated invoice of a UTC customer: by default 49.00 + 250 calls at 0.01 = 51.50."""
    priced = plan(
        currency="USD",
        base_fee=base_fee,
        minimum_commitment=None,
        charges=[{"meter": "calls", "model": "per_unit", "unit_price": unit_price}],
    )
    events = calls(calls_made, "2026-03-10T10:00:00Z")
    return invoice_for(WHO, MARCH, [SubscriptionSegment(priced, SINCE)], events, late_lines)


def tax(minor: int) -> dict[str, Any]:
    return TaxLine(
        line_ref="L1",
        jurisdiction="US-NY",
        rate=Decimal("0.08875"),
        taxable_amount_minor=5150,
        tax_minor=minor,
        reason=TaxReason.TAXABLE,
        rule_id="us-ny-sales-2026",
        estimated=False,
        tax_type="sales",
    ).to_json(USD)


def issued(draft: Invoice | None = None, *, tax_minor: int = 457, credit: int = 0) -> IssuedInvoice:
    """By default 51.50 of charges and 4.57 of tax: 56.07 due."""
    invoice, _ = IssuedInvoice.finalize(
        (draft or rated()).to_dict(),
        [tax(tax_minor)] if tax_minor else [],
        finalized_at=FINALIZED_AT,
        run_id="run_2026_04",
        available_credit_minor=credit,
    )
    return invoice


def paid(
    invoice: IssuedInvoice,
    payment_id: str,
    minor: int,
    *,
    reference: str = "wire-2026-04-03",
    when: datetime = PAID_AT,
) -> tuple[IssuedInvoice, RecordedPayment]:
    """The invoice after a payment of `minor`, and the payment as booked."""
    after, settlement, _ = invoice.pay(payment_id, Money(minor, invoice.currency), when)
    return after, RecordedPayment(
        id=payment_id,
        invoice_id=invoice.id,
        customer_id=invoice.customer_id,
        amount_minor=minor,
        currency=invoice.currency,
        reference=reference,
        settled_minor=settlement.settled_minor,
        credited_minor=settlement.credited_minor,
        created_at=when,
    )


def unbilled(
    customer_id: str = "cus_42", day: date = date(2026, 4, 5), *, first_event_id: str = "evt-1"
) -> NewEvent:
    return on_unbilled_usage(
        TENANT,
        customer_id,
        day,
        first_event_id=first_event_id,
        first_event_type="api.call",
        first_timestamp=at("2026-04-05T09:59:58Z"),
        stored_at=STORED_AT,
    )


def new_event(
    kind: EventType = EventType.INVOICE_PAID,
    *,
    source: str = "inv_1",
    customer_id: str = "cus_42",
    data: dict[str, Any] | None = None,
) -> NewEvent:
    return NewEvent(
        id=event_id(TENANT, kind, source),
        type=kind,
        customer_id=customer_id,
        created_at=FINALIZED_AT,
        data={"invoice_id": source} if data is None else data,
    )


def webhook_event(data: dict[str, Any] | None = None, *, created_at: datetime = FINALIZED_AT) -> WebhookEvent:
    return WebhookEvent(
        id="evt_0123456789abcdef0123456789abcdef",
        type=EventType.INVOICE_FINALIZED,
        customer_id="cus_42",
        sequence=7,
        created_at=created_at,
        data=invoice_data(issued()) if data is None else data,
    )


def outboxed(event: NewEvent, last_sequence: int = 0) -> WebhookEvent:
    """The event as the outbox holds it once numbered."""
    return number([event], last_sequence)[0]


def types(events: Sequence[NewEvent]) -> list[str]:
    return [event.type.value for event in events]


# --- event_id ----------------------------------------------------------------------------------------


def test_an_event_id_is_evt_and_32_hex_digits_of_sha256_over_the_fact() -> None:
    expected = hashlib.sha256(b'["acme","invoice.paid","inv_1"]').hexdigest()[:32]
    assert (
        event_id(TENANT, EventType.INVOICE_PAID, "inv_1") == EVENT_ID_PREFIX + expected == "evt_" + expected
    )


@given(tenant=texts, kind=event_types, source=st.lists(texts, max_size=3))
def test_the_same_fact_always_gives_the_same_event_id(
    tenant: str, kind: EventType, source: list[str]
) -> None:
    first = event_id(tenant, kind, *source)
    assert first == event_id(tenant, kind, *list(source))
    assert re.fullmatch(r"evt_[0-9a-f]{32}", first)


@given(
    first=st.tuples(texts, event_types, st.lists(texts, max_size=3)),
    second=st.tuples(texts, event_types, st.lists(texts, max_size=3)),
)
def test_distinct_facts_give_distinct_event_ids(
    first: tuple[str, EventType, list[str]], second: tuple[str, EventType, list[str]]
) -> None:
    assume(first != second)
    (tenant_a, kind_a, source_a), (tenant_b, kind_b, source_b) = first, second
    assert event_id(tenant_a, kind_a, *source_a) != event_id(tenant_b, kind_b, *source_b)


def test_the_parts_of_a_source_are_never_run_together() -> None:
    kind = EventType.USAGE_LATE_EVENT
    assert event_id(TENANT, kind, "inv_a", "inv_b") != event_id(TENANT, kind, "inv_ai", "nv_b")
    assert event_id(TENANT, kind, "inv_a", "inv_b") != event_id(TENANT, kind, "inv_ainv_b")
    assert event_id("acme", kind, "x") != event_id("acm", kind, "ex")


def test_the_same_fact_of_two_tenants_has_two_ids() -> None:
    assert event_id("acme", EventType.INVOICE_PAID, "inv_1") != event_id(
        "globex", EventType.INVOICE_PAID, "inv_1"
    )


# --- number ------------------------------------------------------------------------------------------


def test_numbering_continues_the_customers_sequence_in_the_given_order() -> None:
    events = [new_event(source="inv_1"), new_event(EventType.INVOICE_FINALIZED, source="inv_2"), new_event()]
    numbered = number(events, last_sequence=41)
    assert [event.sequence for event in numbered] == [42, 43, 44]
    assert [(event.id, event.type, event.customer_id, event.created_at) for event in numbered] == [
        (event.id, event.type, event.customer_id, event.created_at) for event in events
    ]
    assert [dict(event.data) for event in numbered] == [dict(event.data) for event in events]


def test_a_customers_first_event_is_number_one() -> None:
    assert [event.sequence for event in number([new_event()], last_sequence=0)] == [1]


def test_numbering_nothing_gives_nothing() -> None:
    assert number([], last_sequence=12) == []


@given(count=st.integers(min_value=1, max_value=20), last_sequence=st.integers(min_value=0, max_value=10**12))
def test_numbered_events_follow_the_last_sequence_with_no_gap_and_no_repeat(
    count: int, last_sequence: int
) -> None:
    numbered = number([new_event(source=f"inv_{n}") for n in range(count)], last_sequence)
    assert [event.sequence for event in numbered] == list(range(last_sequence + 1, last_sequence + count + 1))


def test_numbering_refuses_events_of_two_customers() -> None:
    with pytest.raises(ValueError, match="one customer"):
        number([new_event(customer_id="cus_1"), new_event(customer_id="cus_2")], last_sequence=0)


# --- on_invoice_finalized ----------------------------------------------------------------------------


def test_an_invoice_with_something_due_is_announced_finalized_only() -> None:
    invoice = issued()
    (finalized,) = on_invoice_finalized(TENANT, invoice)
    assert finalized.type is EventType.INVOICE_FINALIZED
    assert finalized.id == event_id(TENANT, EventType.INVOICE_FINALIZED, invoice.id)
    assert (finalized.customer_id, finalized.created_at) == ("cus_42", FINALIZED_AT)
    assert dict(finalized.data) == {
        "invoice_id": invoice.id,
        "subscription_id": "sub_1",
        "status": "finalized",
        "currency": "USD",
        "period": {"start": "2026-03-01T00:00:00Z", "end": "2026-04-01T00:00:00Z"},
        "subtotal": "51.50",
        "tax": "4.57",
        "total": "56.07",
        "credit_applied": "0.00",
        "amount_paid": "0.00",
        "amount_due": "56.07",
        "finalized_at": "2026-04-01T00:05:00Z",
    }


def test_credit_covering_only_part_of_the_invoice_is_not_announced_paid() -> None:
    events = on_invoice_finalized(TENANT, issued(credit=1000))
    assert types(events) == ["invoice.finalized"]
    assert (events[0].data["credit_applied"], events[0].data["amount_due"]) == ("10.00", "46.07")


def test_credit_covering_the_whole_invoice_announces_it_paid_too_after_finalized() -> None:
    invoice = issued(credit=10_000)
    finalized, paid_event = on_invoice_finalized(TENANT, invoice)
    assert types([finalized, paid_event]) == ["invoice.finalized", "invoice.paid"]
    assert paid_event.id == event_id(TENANT, EventType.INVOICE_PAID, invoice.id)
    assert (paid_event.customer_id, paid_event.created_at) == ("cus_42", FINALIZED_AT)
    assert dict(paid_event.data) == dict(finalized.data)
    assert paid_event.data["status"] == "paid"
    assert (paid_event.data["credit_applied"], paid_event.data["amount_due"]) == ("56.07", "0.00")


def test_an_invoice_of_zero_is_announced_paid_at_finalize() -> None:
    invoice = issued(rated(base_fee="0", unit_price="0"), tax_minor=0)
    assert types(on_invoice_finalized(TENANT, invoice)) == ["invoice.finalized", "invoice.paid"]
    assert on_invoice_finalized(TENANT, invoice)[1].data["total"] == "0.00"


def test_a_credit_note_is_announced_paid_at_finalize_nothing_being_due() -> None:
    # Late events of February were billed 80.00 too much: more than March's 51.50.
    invoice = issued(rated(late_lines=[late("inv_february", -8000)]), tax_minor=0)
    events = on_invoice_finalized(TENANT, invoice)
    assert types(events) == ["invoice.finalized", "usage.late_event", "invoice.paid"]
    assert (events[-1].data["total"], events[-1].data["amount_due"]) == ("-28.50", "0.00")


def test_each_earlier_invoice_that_late_events_changed_gets_one_late_usage_event_in_sorted_order() -> None:
    draft = rated(
        late_lines=[
            late("inv_january", 120, meter="tokens", period=JANUARY, quantity="6000"),
            late("inv_february", -35, quantity="-35"),
            late("inv_january", 40, meter="calls", period=JANUARY, quantity="40"),
        ]
    )
    invoice = issued(draft)
    finalized, february, january = on_invoice_finalized(TENANT, invoice)
    assert types([finalized, february, january]) == [
        "invoice.finalized",
        "usage.late_event",
        "usage.late_event",
    ]
    assert february.id == event_id(TENANT, EventType.USAGE_LATE_EVENT, invoice.id, "inv_february")
    assert january.id == event_id(TENANT, EventType.USAGE_LATE_EVENT, invoice.id, "inv_january")
    assert plain(january.data) == {
        "invoice_id": invoice.id,
        "adjusted_invoice_id": "inv_january",
        "period": {"start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z"},
        "currency": "USD",
        "amount": "1.60",
        "lines": [
            {"meter": "calls", "adjusts": "usage", "quantity": "40", "amount": "0.40"},
            {"meter": "tokens", "adjusts": "usage", "quantity": "6000", "amount": "1.20"},
        ],
    }
    assert plain(february.data) == {
        "invoice_id": invoice.id,
        "adjusted_invoice_id": "inv_february",
        "period": {"start": "2026-02-01T00:00:00Z", "end": "2026-03-01T00:00:00Z"},
        "currency": "USD",
        "amount": "-0.35",
        "lines": [{"meter": "calls", "adjusts": "usage", "quantity": "-35", "amount": "-0.35"}],
    }
    for late_event in (february, january):
        assert (late_event.customer_id, late_event.created_at) == ("cus_42", FINALIZED_AT)


def test_late_usage_events_come_between_finalized_and_paid() -> None:
    draft = rated(late_lines=[late("inv_february", 100), late("inv_january", 100, period=JANUARY)])
    events = on_invoice_finalized(TENANT, issued(draft, credit=100_000))
    assert types(events) == ["invoice.finalized", "usage.late_event", "usage.late_event", "invoice.paid"]


def test_an_adjustment_naming_no_earlier_invoice_makes_no_late_usage_event() -> None:
    events = on_invoice_finalized(TENANT, issued(rated(late_lines=[late(None, 100)])))
    assert types(events) == ["invoice.finalized"]


@settings(max_examples=40)
@given(
    adjustments=st.lists(
        st.tuples(st.sampled_from(["inv_a", "inv_b", "inv_c", "inv_d"]), st.integers(-5000, 5000)),
        max_size=8,
    )
)
def test_late_usage_events_are_one_per_adjusted_invoice_totalling_its_lines(
    adjustments: list[tuple[str, int]],
) -> None:
    draft = rated(calls_made=1, late_lines=[late(of, minor) for of, minor in adjustments])
    invoice = issued(draft)
    late_events = [
        event for event in on_invoice_finalized(TENANT, invoice) if event.type == "usage.late_event"
    ]
    adjusted = sorted({of for of, _ in adjustments})
    assert [event.data["adjusted_invoice_id"] for event in late_events] == adjusted
    for event in late_events:
        mine = [minor for of, minor in adjustments if of == event.data["adjusted_invoice_id"]]
        assert event.data["amount"] == invoice.major(sum(mine))
        assert sorted(line["amount"] for line in event.data["lines"]) == sorted(map(invoice.major, mine))
    assert len({event.id for event in late_events}) == len(late_events)


def test_the_finalize_announcements_recomputed_have_the_same_ids_and_data() -> None:
    draft = rated(late_lines=[late("inv_february", 100)])
    once = on_invoice_finalized(TENANT, issued(draft, credit=100_000))
    again = on_invoice_finalized(TENANT, issued(draft, credit=100_000))
    assert [event.id for event in once] == [event.id for event in again]
    assert once == again
    assert len({event.id for event in once}) == len(once) == 3


def test_the_finalize_announcements_of_another_tenant_have_other_ids() -> None:
    invoice = issued(rated(late_lines=[late("inv_february", 100)]), credit=100_000)
    ours = {event.id for event in on_invoice_finalized("acme", invoice)}
    theirs = {event.id for event in on_invoice_finalized("globex", invoice)}
    assert not ours & theirs


# --- on_payment --------------------------------------------------------------------------------------


def test_a_partial_payment_announces_payment_succeeded_then_invoice_partially_paid() -> None:
    invoice = issued()
    after, payment = paid(invoice, "pay_1", 2000)
    succeeded, partially = on_payment(TENANT, after, payment)
    assert types([succeeded, partially]) == ["payment.succeeded", "invoice.partially_paid"]
    assert succeeded.id == event_id(TENANT, EventType.PAYMENT_SUCCEEDED, "pay_1")
    assert partially.id == event_id(TENANT, EventType.INVOICE_PARTIALLY_PAID, "pay_1")
    for event in (succeeded, partially):
        assert (event.customer_id, event.created_at) == ("cus_42", PAID_AT)
    assert dict(succeeded.data) == {
        "payment_id": "pay_1",
        "invoice_id": invoice.id,
        "amount": "20.00",
        "settled": "20.00",
        "credited": "0.00",
        "currency": "USD",
        "reference_sha256": hashlib.sha256(b"wire-2026-04-03").hexdigest(),
        "created_at": "2026-04-03T09:00:00Z",
    }
    assert dict(partially.data) == {**invoice_data(after), "payment_id": "pay_1"}
    assert (partially.data["status"], partially.data["amount_paid"], partially.data["amount_due"]) == (
        "partially_paid",
        "20.00",
        "36.07",
    )


def test_two_partial_payments_are_two_partially_paid_events() -> None:
    first_state, first = paid(issued(), "pay_1", 1000)
    second_state, second = paid(first_state, "pay_2", 1000, when=PAID_AT + timedelta(days=1))
    _, one = on_payment(TENANT, first_state, first)
    _, two = on_payment(TENANT, second_state, second)
    assert one.type is two.type is EventType.INVOICE_PARTIALLY_PAID
    assert one.id != two.id
    assert (one.data["payment_id"], two.data["payment_id"]) == ("pay_1", "pay_2")


def test_a_payment_that_settles_the_invoice_announces_it_paid_under_the_invoices_id() -> None:
    invoice = issued()
    after, payment = paid(invoice, "pay_1", 5607)
    succeeded, settled = on_payment(TENANT, after, payment)
    assert types([succeeded, settled]) == ["payment.succeeded", "invoice.paid"]
    assert settled.id == event_id(TENANT, EventType.INVOICE_PAID, invoice.id)
    assert dict(settled.data) == {**invoice_data(after), "payment_id": "pay_1"}
    assert (settled.data["status"], settled.data["amount_due"]) == ("paid", "0.00")


def test_invoice_paid_is_one_event_per_invoice_whichever_payment_or_credit_settles_it() -> None:
    invoice = issued()
    by_first, first = paid(invoice, "pay_1", 5607)
    partly, part = paid(invoice, "pay_2", 1000)
    by_last, last = paid(partly, "pay_3", 4607)
    paid_ids = {
        on_payment(TENANT, by_first, first)[1].id,
        on_payment(TENANT, by_last, last)[1].id,
        on_invoice_finalized(TENANT, issued(credit=10_000))[1].id,
    }
    assert paid_ids == {event_id(TENANT, EventType.INVOICE_PAID, invoice.id)}
    assert on_payment(TENANT, partly, part)[1].id not in paid_ids


def test_an_overpayment_says_what_it_settled_and_what_became_credit() -> None:
    after, payment = paid(issued(), "pay_1", 6000)
    succeeded, settled = on_payment(TENANT, after, payment)
    assert (succeeded.data["amount"], succeeded.data["settled"], succeeded.data["credited"]) == (
        "60.00",
        "56.07",
        "3.93",
    )
    assert settled.type is EventType.INVOICE_PAID
    assert settled.data["amount_paid"] == "60.00"


def test_a_payment_in_a_currency_without_minor_units_is_written_in_whole_units() -> None:
    invoice = issued(rated(), tax_minor=0)
    jpy = RecordedPayment(
        id="pay_1",
        invoice_id=invoice.id,
        customer_id="cus_42",
        amount_minor=1200,
        currency=Currency.of("JPY"),
        reference="furikomi",
        settled_minor=1200,
        credited_minor=0,
        created_at=PAID_AT,
    )
    succeeded, _ = on_payment(TENANT, invoice, jpy)
    assert (succeeded.data["amount"], succeeded.data["currency"]) == ("1200", "JPY")


def test_the_payment_announcements_recomputed_have_the_same_ids() -> None:
    after, payment = paid(issued(), "pay_1", 2000)
    assert on_payment(TENANT, after, payment) == on_payment(TENANT, after, payment)


@pytest.mark.parametrize(
    "reference",
    [
        "jane@example.com",
        "paid by jane.doe@example.org",
        "4111111111111111",
        "card 4111-1111-1111-1111",
        "+1 212 555 0100",
        "Wire from Jane Doe, ACME Ltd",
        "wire-2026-04-03",
    ],
)
def test_the_clients_reference_is_never_repeated_only_its_sha256(reference: str) -> None:
    """A reference is free text (it may name a person): the application matches it by its hash."""
    after, payment = paid(issued(), "pay_1", 2000, reference=reference)
    succeeded, partially = on_payment(TENANT, after, payment)
    assert succeeded.data["reference_sha256"] == hashlib.sha256(reference.encode()).hexdigest()
    assert reference not in outboxed(succeeded).body().decode()
    assert reference not in outboxed(partially).body().decode()


# --- on_unbilled_usage -------------------------------------------------------------------------------


def test_unbilled_usage_is_announced_with_the_customers_first_event_of_the_day() -> None:
    event = unbilled()
    assert event.type is EventType.USAGE_UNBILLED
    assert event.id == event_id(TENANT, EventType.USAGE_UNBILLED, "cus_42", "2026-04-05")
    assert (event.customer_id, event.created_at) == ("cus_42", STORED_AT)
    assert dict(event.data) == {
        "date": "2026-04-05",
        "first_event_id": "evt-1",
        "first_event_type": "api.call",
        "first_event_timestamp": "2026-04-05T09:59:58Z",
    }


def test_unbilled_usage_is_one_event_per_customer_and_day_whichever_event_came_first() -> None:
    assert unbilled(first_event_id="evt-1").id == unbilled(first_event_id="evt-2").id


@given(
    first=st.tuples(st.sampled_from(["cus_1", "cus_2", "cus_3"]), st.dates()),
    second=st.tuples(st.sampled_from(["cus_1", "cus_2", "cus_3"]), st.dates()),
)
def test_unbilled_usage_ids_differ_exactly_when_the_customer_or_the_day_does(
    first: tuple[str, date], second: tuple[str, date]
) -> None:
    assert (unbilled(*first).id == unbilled(*second).id) == (first == second)


# --- WebhookEvent: what a delivery sends -------------------------------------------------------------


def test_the_payload_holds_exactly_type_id_customer_sequence_created_at_and_data() -> None:
    event = webhook_event()
    payload = event.payload()
    assert set(payload) == {"type", "id", "customer_id", "sequence", "created_at", "data"}
    assert payload["type"] == "invoice.finalized"
    assert (payload["id"], payload["customer_id"], payload["sequence"]) == (event.id, "cus_42", 7)
    assert payload["created_at"] == "2026-04-01T00:05:00Z"
    assert payload["data"] == dict(event.data)


def test_the_body_is_canonical_json_of_the_payload() -> None:
    event = webhook_event({"b": "1.00", "a": {"z": 1, "y": [None, True]}})
    assert event.body() == canonical_json.dumps(event.payload()).encode()
    assert event.body() == (
        b'{"created_at":"2026-04-01T00:05:00Z","customer_id":"cus_42",'
        b'"data":{"a":{"y":[null,true],"z":1},"b":"1.00"},'
        b'"id":"evt_0123456789abcdef0123456789abcdef","sequence":7,"type":"invoice.finalized"}'
    )


def test_the_same_event_always_sends_the_same_bytes() -> None:
    data = invoice_data(issued())
    reordered = dict(reversed(list(data.items())))
    assert webhook_event(data).body() == webhook_event(reordered).body() == webhook_event(data).body()


def test_the_body_sorts_keys_at_every_depth_and_writes_amounts_as_strings() -> None:
    invoice = issued(rated(late_lines=[late("inv_february", 100)]))
    late_event = on_invoice_finalized(TENANT, invoice)[1]
    body = outboxed(late_event).body()

    def keys_sorted(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        assert keys == sorted(keys)
        return dict(pairs)

    sent = json.loads(body, object_pairs_hook=keys_sorted)
    assert b" " not in body
    assert sent["data"]["amount"] == "1.00"
    assert sent["data"]["lines"][0]["amount"] == "1.00"


def test_the_created_at_is_sent_in_utc_whatever_zone_it_was_given_in() -> None:
    in_new_york = FINALIZED_AT.astimezone(timezone(timedelta(hours=-4)))
    assert webhook_event(created_at=in_new_york).body() == webhook_event().body()
    with_millis = webhook_event(created_at=FINALIZED_AT + timedelta(milliseconds=5)).payload()
    assert with_millis["created_at"] == "2026-04-01T00:05:00.005000Z"


def test_an_event_read_back_from_its_stored_text_sends_the_same_bytes() -> None:
    event = webhook_event()
    stored = json.loads(event.body())
    read_back = WebhookEvent(
        id=stored["id"],
        type=stored["type"],  # storage gives the type back as text
        customer_id=stored["customer_id"],
        sequence=stored["sequence"],
        created_at=datetime.fromisoformat(stored["created_at"]),
        data=stored["data"],
    )
    assert read_back.type is EventType.INVOICE_FINALIZED
    assert read_back.body() == event.body()


def test_an_events_data_is_read_only_and_its_type_an_event_type() -> None:
    event = NewEvent(id="evt_1", type="invoice.paid", customer_id="cus_42", created_at=FINALIZED_AT)  # type: ignore[arg-type]
    assert event.type is EventType.INVOICE_PAID
    assert dict(event.data) == {}
    numbered = number([new_event()], 0)[0]
    with pytest.raises(TypeError):
        numbered.data["invoice_id"] = "inv_2"  # type: ignore[index]


def test_changing_the_dict_handed_in_does_not_change_the_event() -> None:
    data = {"invoice_id": "inv_1"}
    event = webhook_event(data)
    data["invoice_id"] = "inv_2"
    assert event.data["invoice_id"] == "inv_1"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)


@given(data=st.dictionaries(st.text(max_size=8), json_values, max_size=5))
def test_any_events_body_reads_back_as_its_payload(data: dict[str, Any]) -> None:
    event = webhook_event(data)
    assert json.loads(event.body()) == event.payload()
    assert event.body() == webhook_event(dict(reversed(list(data.items())))).body()


@given(
    instant=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    )
)
def test_any_created_at_is_sent_as_utc_text_of_the_same_instant(instant: datetime) -> None:
    sent = webhook_event({}, created_at=instant).payload()["created_at"]
    assert sent.endswith("Z")
    assert datetime.fromisoformat(sent) == instant


# --- no personal data: only the documented ids and amounts ------------------------------------------


def test_no_announcement_says_anything_but_its_documented_ids_amounts_and_instants() -> None:
    invoice = issued(rated(late_lines=[late("inv_february", 100)]), credit=100_000)
    finalized, late_event, paid_event = on_invoice_finalized(TENANT, invoice)
    after, payment = paid(issued(), "pay_1", 2000)
    succeeded, partially = on_payment(TENANT, after, payment)
    assert set(finalized.data) == set(paid_event.data) == INVOICE_KEYS
    assert set(late_event.data) == LATE_USAGE_KEYS
    assert all(set(line) == LATE_LINE_KEYS for line in late_event.data["lines"])
    assert set(succeeded.data) == PAYMENT_KEYS
    assert set(partially.data) == INVOICE_KEYS | {"payment_id"}
    assert set(unbilled().data) == UNBILLED_KEYS


def test_no_announcement_holds_a_value_that_looks_like_personal_data() -> None:
    invoice = issued(rated(late_lines=[late("inv_february", 100)]), credit=100_000)
    after, payment = paid(issued(), "pay_1", 2000, reference="jane@example.com")
    events = [*on_invoice_finalized(TENANT, invoice), *on_payment(TENANT, after, payment), unbilled()]

    def leaves(value: Any) -> list[Any]:
        if isinstance(value, dict):
            return [leaf for item in value.values() for leaf in leaves(item)]
        if isinstance(value, list):
            return [leaf for item in value for leaf in leaves(item)]
        return [value]

    for event in events:
        payload = outboxed(event).payload()
        assert [leaf for leaf in leaves(payload) if classify_value(leaf)] == []
