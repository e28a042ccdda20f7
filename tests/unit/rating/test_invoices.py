"""Invoices: hand-computed lines for the API.md plan, proration, plan changes, boundaries, currencies."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest

from billing.domain.rating.errors import RatingFailed
from billing.domain.rating.invoices import LineType, build_invoice, invoice_id
from billing.domain.rating.meters import Aggregation, Meter
from billing.domain.rating.plans import Subscription, SubscriptionSegment
from billing.domain.usage_events import UsageEvent
from tests.unit.rating.builders import (
    METERS,
    at,
    calls,
    customer,
    gb,
    invoice_for,
    period_of,
    plan,
    seats,
    summary,
    tokens,
    usage,
)

SECOND = timedelta(seconds=1)
NEW_YORK = customer("America/New_York")
MARCH_NY = period_of(NEW_YORK, "2026-03-15T12:00:00Z")  # [03-01T05:00Z, 04-01T04:00Z): 31 days less an hour
UTC_CUSTOMER = customer("UTC")
MARCH = period_of(UTC_CUSTOMER, "2026-03-15T00:00:00Z")  # 31 days of 86,400 seconds
PRO = plan()
# An enterprise plan: higher base fee, no commitment, cheaper tokens per unit.
ENTERPRISE = plan(
    id="enterprise",
    base_fee="99.00",
    minimum_commitment=None,
    charges=[{"meter": "tokens", "model": "per_unit", "unit_price": "0.00001"}],
)


def busy_march() -> list[UsageEvent]:
    return [
        tokens("t1", "2026-03-02T10:00:00Z", 1_000_000),
        tokens("t2", "2026-03-20T10:00:00Z", 234_567),
        *calls(2_500, "2026-03-10T10:00:00Z"),
        seats("s1", "2026-03-03T10:00:00Z", 4),
        seats("s2", "2026-03-12T10:00:00Z", 11),
        seats("s3", "2026-03-25T10:00:00Z", 9),
        gb("g1", "2026-03-04T10:00:00Z", 120),
        gb("g2", "2026-03-24T10:00:00Z", 130),
    ]


def test_a_full_month_on_the_api_example_plan() -> None:
    invoice = invoice_for(
        NEW_YORK, MARCH_NY, [SubscriptionSegment(PRO, at("2026-01-01T00:00:00Z"))], busy_march()
    )
    assert summary(invoice) == [
        ("base_fee", None, "49.00"),
        ("usage", "tokens", "22.69"),  # 1,134,567 tokens above the free 100,000, at 0.00002: 22.69134
        ("usage", "calls", "2.50"),  # 2,500 x 0.001
        ("usage", "seats", "66.00"),  # max 11 seats: all at the second tier's 6
        ("usage", "gb", "15.00"),  # 250 GB: three started packages of 100 at 5.00
    ]  # 155.19 >= the 100.00 commitment: no true-up
    assert invoice.subtotal.major == "155.19"
    assert invoice.to_dict()["subtotal_minor"] == 15519


def test_usage_lines_carry_meter_quantity_and_tier_breakdown() -> None:
    invoice = invoice_for(
        NEW_YORK, MARCH_NY, [SubscriptionSegment(PRO, at("2026-01-01T00:00:00Z"))], busy_march()
    )
    line = invoice.to_dict()["lines"][1]
    assert line == {
        "type": "usage",
        "meter": "tokens",
        "quantity": "1234567",
        "amount": "22.69",
        "amount_minor": 2269,
        "description": "tokens: 1234567 (graduated), pro v1",
        "plan_id": "pro",
        "plan_version": 1,
        "period": {"start": "2026-03-01T05:00:00Z", "end": "2026-04-01T04:00:00Z"},
        "tax_code": "saas",
        "tier_breakdown": [
            {
                "tier": 1,
                "from": "0",
                "up_to": "100000",
                "quantity": "100000",
                "unit_price": "0",
                "flat_fee": "0",
                "amount": "0",
            },
            {
                "tier": 2,
                "from": "100000",
                "up_to": None,
                "quantity": "1134567",
                "unit_price": "0.00002",
                "flat_fee": "0",
                "amount": "22.69134",
            },
        ],
        "events": 2,
        "skipped_events": 0,
    }


def test_a_zero_usage_period_bills_the_base_fee_and_tops_up_to_the_commitment() -> None:
    invoice = invoice_for(NEW_YORK, MARCH_NY, [SubscriptionSegment(PRO, at("2026-01-01T00:00:00Z"))], [])
    assert summary(invoice) == [
        ("base_fee", None, "49.00"),
        ("usage", "tokens", "0.00"),
        ("usage", "calls", "0.00"),
        ("usage", "seats", "0.00"),
        ("usage", "gb", "0.00"),
        ("minimum_commitment", None, "51.00"),
    ]
    assert invoice.subtotal.major == "100.00"


def test_a_plan_change_mid_period_prorates_base_fees_and_splits_usage_at_the_change() -> None:
    change = at("2026-03-11T00:00:00Z")  # 10 days on pro, 21 days on enterprise
    subscription = Subscription.start("sub_1", "cus_42", PRO, at("2026-01-01T00:00:00Z")).change_plan(
        ENTERPRISE, change
    )
    events = [
        tokens("before", "2026-03-05T00:00:00Z", 150_000),
        tokens("at-change", "2026-03-11T00:00:00Z", 10_000),  # at the change instant: the new plan's
        tokens("after", "2026-03-20T00:00:00Z", 200_000),
    ]
    invoice = invoice_for(UTC_CUSTOMER, MARCH, subscription.segments, events)
    assert summary(invoice) == [
        ("base_fee", None, "15.81"),  # 49 x 10/31 = 15.806...
        ("usage", "tokens", "1.00"),  # 50,000 above the free tier at 0.00002
        ("usage", "calls", "0.00"),
        ("usage", "seats", "0.00"),
        ("usage", "gb", "0.00"),
        ("minimum_commitment", None, "15.45"),  # 100 x 10/31 = 32.26, less 15.81 + 1.00 billed
        ("base_fee", None, "67.06"),  # 99 x 21/31 = 67.064...
        ("usage", "tokens", "2.10"),  # 210,000 x 0.00001
    ]
    assert invoice.subtotal.major == "101.42"
    pro_fee, enterprise_fee = (line for line in invoice.lines if line.type is LineType.BASE_FEE)
    assert pro_fee.to_json()["period"] == {"start": "2026-03-01T00:00:00Z", "end": "2026-03-11T00:00:00Z"}
    assert pro_fee.to_json()["proration"] == {"covered_seconds": "864000", "period_seconds": "2678400"}
    assert (enterprise_fee.plan_id, enterprise_fee.to_json()["period"]["start"]) == (
        "enterprise",
        "2026-03-11T00:00:00Z",
    )


def test_a_plan_change_at_the_first_instant_of_the_period_bills_only_the_new_plan() -> None:
    subscription = Subscription.start("sub_1", "cus_42", PRO, at("2026-01-01T00:00:00Z"))
    changed = subscription.change_plan(ENTERPRISE, MARCH.start_utc)
    invoice = invoice_for(UTC_CUSTOMER, MARCH, changed.segments, [tokens("t", "2026-03-01T00:00:00Z", 100)])
    assert summary(invoice) == [("base_fee", None, "99.00"), ("usage", "tokens", "0.00")]
    assert invoice.lines[1].quantity == 100


def test_a_plan_change_one_second_into_the_period_leaves_the_old_plan_one_second() -> None:
    subscription = Subscription.start("sub_1", "cus_42", PRO, at("2026-01-01T00:00:00Z"))
    changed = subscription.change_plan(ENTERPRISE, MARCH.start_utc + SECOND)
    events = [tokens("first", "2026-03-01T00:00:00Z", 1), tokens("second", "2026-03-01T00:00:01Z", 1_000)]
    invoice = invoice_for(UTC_CUSTOMER, MARCH, changed.segments, events)
    old_fee = invoice.lines[0]
    assert (old_fee.type, old_fee.amount.major, old_fee.proration) == (
        LineType.BASE_FEE,
        "0.00",
        (1, 2678400),
    )
    usage_quantities = [
        (line.plan_id, line.meter, line.quantity) for line in invoice.lines if line.meter == "tokens"
    ]
    assert usage_quantities == [("pro", "tokens", 1), ("enterprise", "tokens", 1_000)]
    assert invoice.lines[-2].amount.major == "99.00"  # 99 x 2678399/2678400 = 98.99996...


def test_a_plan_change_at_the_last_second_gives_the_new_plan_one_second() -> None:
    subscription = Subscription.start("sub_1", "cus_42", PRO, at("2026-01-01T00:00:00Z"))
    last_second = MARCH.end_utc - SECOND
    changed = subscription.change_plan(ENTERPRISE, last_second)
    events = [
        tokens("late-old", last_second - timedelta(microseconds=1), 200_000),
        tokens("late-new", last_second, 1_000_000),
    ]
    invoice = invoice_for(UTC_CUSTOMER, MARCH, changed.segments, events)
    assert summary(invoice) == [
        ("base_fee", None, "49.00"),  # 49 x 2678399/2678400 = 48.99998...
        ("usage", "tokens", "2.00"),  # 100,000 above the free tier
        ("usage", "calls", "0.00"),
        ("usage", "seats", "0.00"),
        ("usage", "gb", "0.00"),
        ("minimum_commitment", None, "49.00"),  # 100 x 2678399/2678400 = 100.00, less 51.00
        ("base_fee", None, "0.00"),  # one second of 99.00
        ("usage", "tokens", "10.00"),  # 1,000,000 x 0.00001
    ]


def test_an_event_exactly_at_the_period_boundary_is_billed_in_the_period_that_starts_there() -> None:
    segments = [SubscriptionSegment(PRO, at("2026-01-01T00:00:00Z"))]
    february = period_of(NEW_YORK, "2026-02-15T00:00:00Z")
    boundary = MARCH_NY.start_utc  # midnight March 1 in New York
    events = [
        tokens("edge", boundary, 200_000),
        tokens("just-before", boundary - timedelta(microseconds=1), 300_000),
        tokens("next-edge", MARCH_NY.end_utc, 400_000),
    ]
    march_tokens = invoice_for(NEW_YORK, MARCH_NY, segments, events).lines[1]
    february_tokens = invoice_for(NEW_YORK, february, segments, events).lines[1]
    assert (march_tokens.quantity, march_tokens.amount.major) == (200_000, "2.00")
    assert (february_tokens.quantity, february_tokens.amount.major) == (300_000, "4.00")


def test_a_subscription_starting_mid_period_pays_its_share_and_only_its_usage() -> None:
    start = at("2026-03-11T00:00:00Z")
    events = [
        tokens("before-start", "2026-03-05T00:00:00Z", 5_000_000),
        tokens("after", "2026-03-12T00:00:00Z", 150_000),
    ]
    invoice = invoice_for(UTC_CUSTOMER, MARCH, [SubscriptionSegment(PRO, start)], events)
    assert summary(invoice)[:2] == [("base_fee", None, "33.19"), ("usage", "tokens", "1.00")]  # 49 x 21/31
    assert summary(invoice)[-1] == ("minimum_commitment", None, "33.55")  # 100 x 21/31 = 67.74, less 34.19


def test_a_cancellation_mid_period_stops_the_base_fee_and_usage_there() -> None:
    subscription = Subscription.start("sub_1", "cus_42", PRO, at("2026-01-01T00:00:00Z")).cancel(
        at("2026-03-11T00:00:00Z")
    )
    events = [
        tokens("before", "2026-03-05T00:00:00Z", 150_000),
        tokens("after-cancel", "2026-03-12T00:00:00Z", 10**7),
    ]
    invoice = invoice_for(UTC_CUSTOMER, MARCH, subscription.segments, events)
    assert summary(invoice)[:2] == [("base_fee", None, "15.81"), ("usage", "tokens", "1.00")]
    assert invoice.subtotal.major == "32.26"  # the commitment's 10/31 share


def test_a_dst_change_inside_the_window_is_prorated_by_real_seconds() -> None:
    # Starting at local midnight March 16 (after the spring-forward) covers 16 x 24 h of a 743-hour March.
    invoice = invoice_for(NEW_YORK, MARCH_NY, [SubscriptionSegment(PRO, at("2026-03-16T04:00:00Z"))], [])
    base = invoice.lines[0]
    assert base.proration == (16 * 86400, 31 * 86400 - 3600)
    assert base.amount.major == "25.32"  # 49 x 1382400/2674800 = 25.3243...


@pytest.mark.parametrize(
    ("currency", "base_fee", "unit_price", "calls_made", "expected"),
    [
        # JPY has no minor unit: 3 calls x 0.5 = 1.5 yen -> 2 (half-even); the base fee stays whole yen
        ("JPY", "4900", "0.5", 3, [("base_fee", None, "4900"), ("usage", "calls", "2")]),
        ("JPY", "4900", "0.5", 5, [("base_fee", None, "4900"), ("usage", "calls", "2")]),  # 2.5 -> 2
        # KWD has three decimals: 7 calls x 0.0015 = 0.0105 -> 0.010; 9 x 0.0015 = 0.0135 -> 0.014
        ("KWD", "15.250", "0.0015", 7, [("base_fee", None, "15.250"), ("usage", "calls", "0.010")]),
        ("KWD", "15.250", "0.0015", 9, [("base_fee", None, "15.250"), ("usage", "calls", "0.014")]),
    ],
)
def test_currencies_with_no_and_with_three_minor_digits(
    currency: str,
    base_fee: str,
    unit_price: str,
    calls_made: int,
    expected: list[tuple[str, str | None, str]],
) -> None:
    who = customer("Asia/Tokyo" if currency == "JPY" else "Asia/Kuwait", currency=currency)
    local_plan = plan(
        currency=currency,
        base_fee=base_fee,
        minimum_commitment=None,
        charges=[{"meter": "calls", "model": "per_unit", "unit_price": unit_price}],
    )
    period = period_of(who, "2026-03-15T00:00:00Z")
    invoice = invoice_for(
        who,
        period,
        [SubscriptionSegment(local_plan, at("2026-01-01T00:00:00Z"))],
        calls(calls_made, "2026-03-10T00:00:00Z"),
    )
    assert summary(invoice) == expected
    assert invoice.to_dict()["currency"] == currency


def test_customers_far_east_and_far_west_are_billed_on_their_own_calendar() -> None:
    segments = [SubscriptionSegment(PRO, at("2026-01-01T00:00:00Z"))]
    # 2026-02-28T12:00Z is already March 1 in Tonga (UTC+13) and still February 28 in Honolulu (UTC-10).
    event = [tokens("edge", "2026-02-28T12:00:00Z", 200_000)]
    tonga, honolulu = customer("Pacific/Tongatapu"), customer("Pacific/Honolulu")
    tonga_march = invoice_for(tonga, period_of(tonga, "2026-03-15T00:00:00Z"), segments, event)
    honolulu_february = invoice_for(honolulu, period_of(honolulu, "2026-02-15T00:00:00Z"), segments, event)
    assert tonga_march.period.to_json() == {"start": "2026-02-28T11:00:00Z", "end": "2026-03-31T11:00:00Z"}
    assert tonga_march.lines[1].quantity == 200_000
    assert honolulu_february.period.to_json() == {
        "start": "2026-02-01T10:00:00Z",
        "end": "2026-03-01T10:00:00Z",
    }
    assert honolulu_february.lines[1].quantity == 200_000


def test_only_the_tenants_and_customers_own_events_count() -> None:
    events = [
        tokens("mine", "2026-03-05T00:00:00Z", 200_000),
        tokens("other-customer", "2026-03-05T00:00:00Z", 10**6, customer_id="cus_7"),
        tokens("other-tenant", "2026-03-05T00:00:00Z", 10**6, tenant_id="globex"),
    ]
    invoice = invoice_for(UTC_CUSTOMER, MARCH, [SubscriptionSegment(PRO, at("2026-01-01T00:00:00Z"))], events)
    assert invoice.lines[1].quantity == 200_000


def test_the_invoice_id_is_sha256_of_canonical_tenant_subscription_and_period_start() -> None:
    payload = json.dumps(
        {"period_start": "2026-03-01T00:00:00.000000Z", "subscription_id": "sub_1", "tenant_id": "acme"},
        separators=(",", ":"),
        sort_keys=True,
    )
    expected = "inv_" + hashlib.sha256(payload.encode()).hexdigest()[:24]
    assert invoice_id("acme", "sub_1", MARCH.start_utc) == expected
    assert invoice_for(UTC_CUSTOMER, MARCH, [], []).id == expected
    assert (
        len(
            {
                expected,
                invoice_id("acme", "sub_2", MARCH.start_utc),
                invoice_id("globex", "sub_1", MARCH.start_utc),
                invoice_id("acme", "sub_1", MARCH.end_utc),
            }
        )
        == 4
    )


def test_rating_refuses_inputs_it_cannot_bill_correctly() -> None:
    segments = [SubscriptionSegment(PRO, at("2026-01-01T00:00:00Z"))]
    not_a_period = MARCH.intersect(at("2026-03-02T00:00:00Z"), None)
    assert not_a_period is not None
    cases = {
        "wrong_period": lambda: invoice_for(UTC_CUSTOMER, not_a_period, segments, []),
        "currency_mismatch": lambda: invoice_for(customer("UTC", currency="EUR"), MARCH, segments, []),
        "unknown_meter": lambda: build_invoice(
            "acme", UTC_CUSTOMER, "sub_1", MARCH, segments, METERS[:2], []
        ),
        "invalid_segments": lambda: invoice_for(
            UTC_CUSTOMER, MARCH, [*segments, SubscriptionSegment(ENTERPRISE, at("2026-03-10T00:00:00Z"))], []
        ),
        "negative_quantity": lambda: invoice_for(
            UTC_CUSTOMER, MARCH, segments, [tokens("refund", "2026-03-05T00:00:00Z", -5)]
        ),
    }
    for code, build in cases.items():
        with pytest.raises(RatingFailed) as caught:
            build()
        assert caught.value.code == code


def test_a_meter_filter_and_unusable_values_show_on_the_line() -> None:
    eu_tokens = Meter("tokens", "llm.completion", Aggregation.SUM, "tokens", {"region": "eu"})
    meters = [eu_tokens, *METERS[1:]]
    events = [
        tokens("eu", "2026-03-05T00:00:00Z", 200_000, region="eu"),
        tokens("us", "2026-03-05T00:00:00Z", 900_000, region="us"),
        usage("broken", "2026-03-05T00:00:00Z", type="llm.completion", tokens="many", region="eu"),
    ]
    segments = [SubscriptionSegment(PRO, at("2026-01-01T00:00:00Z"))]
    line = build_invoice("acme", UTC_CUSTOMER, "sub_1", MARCH, segments, meters, events).lines[1].to_json()
    assert (line["quantity"], line["amount"], line["events"], line["skipped_events"]) == (
        "200000",
        "2.00",
        2,
        1,
    )
