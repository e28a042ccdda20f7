"""Late events: the old period is re-rated and the difference is billed as adjustment lines, once."""

from __future__ import annotations

import pytest

from billing.domain.rating.errors import RatingFailed
from billing.domain.rating.invoices import InvoiceLine, LineType, adjustment_for
from billing.domain.rating.plans import Subscription, SubscriptionSegment
from billing.domain.usage_events import UsageEvent
from tests.unit.rating.builders import at, customer, invoice_for, period_of, plan, seats, summary, tokens

WHO = customer("UTC")
MARCH = period_of(WHO, "2026-03-15T00:00:00Z")
APRIL = WHO.cycle.next_period(MARCH)
PAY_AS_YOU_GO = plan(minimum_commitment=None)  # the API.md plan without its commitment
SEGMENTS = [SubscriptionSegment(PAY_AS_YOU_GO, at("2026-01-01T00:00:00Z"))]
RECEIVED_LATE = at("2026-04-03T09:00:00Z")  # after March was closed


def late_tokens(event_id: str, count: int) -> UsageEvent:
    return tokens(event_id, "2026-03-31T23:00:00Z", count, received_at=RECEIVED_LATE)


def test_a_late_event_that_crosses_a_tier_boundary_is_billed_at_the_tier_difference() -> None:
    on_time = [tokens("t1", "2026-03-10T00:00:00Z", 99_000)]
    billed = invoice_for(WHO, MARCH, SEGMENTS, on_time)
    assert billed.lines[1].amount.major == "0.00"  # all 99,000 tokens in the free tier

    re_rated = invoice_for(WHO, MARCH, SEGMENTS, [*on_time, late_tokens("late", 2_000)])
    (adjustment,) = adjustment_for(billed.lines, re_rated)
    # 101,000 tokens: only 1,000 are above the free tier -> 0.02 (not 2,000 x 0.00002 = 0.04)
    assert adjustment.to_json() == {
        "type": "adjustment",
        "adjusts": "usage",
        "adjusted_invoice_id": billed.id,
        "meter": "tokens",
        "quantity": "2000",
        "amount": "0.02",
        "amount_minor": 2,
        "description": "Adjustment of usage tokens, pro v1, 2026-03-01T00:00:00Z to 2026-04-01T00:00:00Z: "
        "re-rated 0.02, billed 0.00",
        "plan_id": "pro",
        "plan_version": 1,
        "period": {"start": "2026-03-01T00:00:00Z", "end": "2026-04-01T00:00:00Z"},
        "tax_code": "saas",
    }

    april = invoice_for(WHO, APRIL, SEGMENTS, [], adjustments=[adjustment])
    assert summary(april)[-1] == ("adjustment", "tokens", "0.02")
    assert april.subtotal.major == "49.02"


def test_a_late_event_that_drops_the_volume_price_is_credited() -> None:
    on_time = [seats("s1", "2026-03-02T00:00:00Z", 10)]
    billed = invoice_for(WHO, MARCH, SEGMENTS, on_time)  # 10 seats x 8 = 80.00
    late = seats("s2", "2026-03-20T00:00:00Z", 11)  # 11 seats x 6 = 66.00
    (credit,) = adjustment_for(billed.lines, invoice_for(WHO, MARCH, SEGMENTS, [*on_time, late]))
    assert (credit.meter, credit.quantity, credit.amount.major) == ("seats", 1, "-14.00")


def test_successive_late_events_are_each_billed_once_and_re_rating_again_bills_nothing() -> None:
    on_time = [tokens("t1", "2026-03-10T00:00:00Z", 99_000)]
    billed = list(invoice_for(WHO, MARCH, SEGMENTS, on_time).lines)

    first_events = [*on_time, late_tokens("late-1", 2_000)]
    first = adjustment_for(billed, invoice_for(WHO, MARCH, SEGMENTS, first_events))
    assert [line.amount.major for line in first] == ["0.02"]
    billed += first  # adjustments issued for March count as billed for March

    second_events = [*first_events, late_tokens("late-2", 500)]
    second = adjustment_for(billed, invoice_for(WHO, MARCH, SEGMENTS, second_events))
    assert [(line.quantity, line.amount.major) for line in second] == [
        (500, "0.01")
    ]  # 101,500 -> 0.03 in all
    billed += second

    # The same events again (a retried close, a redelivered late event): nothing more.
    assert adjustment_for(billed, invoice_for(WHO, MARCH, SEGMENTS, [*second_events, *second_events])) == []


def test_late_usage_lowers_the_commitment_true_up_so_the_net_is_right() -> None:
    committed = [SubscriptionSegment(plan(), at("2026-01-01T00:00:00Z"))]  # 100.00 commitment
    billed = invoice_for(WHO, MARCH, committed, [])  # 49.00 base + 51.00 true-up
    re_rated = invoice_for(WHO, MARCH, committed, [late_tokens("late", 1_100_000)])  # 20.00 of usage
    adjustments = adjustment_for(billed.lines, re_rated)
    assert [(line.adjusts, line.meter, line.amount.major) for line in adjustments] == [
        (LineType.USAGE, "tokens", "20.00"),
        (LineType.MINIMUM_COMMITMENT, None, "-20.00"),
    ]
    assert sum(line.amount.minor for line in adjustments) == 0


def test_a_late_event_in_a_plan_change_period_adjusts_the_segment_it_fell_in() -> None:
    enterprise = plan(
        id="enterprise",
        base_fee="99.00",
        minimum_commitment=None,
        charges=[{"meter": "tokens", "model": "per_unit", "unit_price": "0.00001"}],
    )
    subscription = Subscription.start("sub_1", "cus_42", PAY_AS_YOU_GO, at("2026-01-01T00:00:00Z"))
    segments = subscription.change_plan(enterprise, at("2026-03-11T00:00:00Z")).segments
    on_time = [tokens("t1", "2026-03-05T00:00:00Z", 150_000), tokens("t2", "2026-03-15T00:00:00Z", 100_000)]
    billed = invoice_for(WHO, MARCH, segments, on_time)
    late = tokens("late", "2026-03-10T23:59:59Z", 50_000, received_at=RECEIVED_LATE)  # before the change
    (adjustment,) = adjustment_for(billed.lines, invoice_for(WHO, MARCH, segments, [*on_time, late]))
    assert (adjustment.plan_id, adjustment.amount.major) == ("pro", "1.00")  # 50,000 more at 0.00002
    assert adjustment.period.end_utc == at("2026-03-11T00:00:00Z")


def test_adjustments_are_computed_from_stored_invoice_json_too() -> None:
    on_time = [tokens("t1", "2026-03-10T00:00:00Z", 99_000)]
    billed = invoice_for(WHO, MARCH, SEGMENTS, on_time)
    stored = [InvoiceLine.from_json(line, billed.currency) for line in billed.to_dict()["lines"]]
    assert stored == list(billed.lines)
    re_rated = invoice_for(WHO, MARCH, SEGMENTS, [*on_time, late_tokens("late", 2_000)])
    assert adjustment_for(stored, re_rated) == adjustment_for(billed.lines, re_rated)


def test_an_adjustment_issued_for_another_period_is_refused_as_billed() -> None:
    february = period_of(WHO, "2026-02-15T00:00:00Z")
    february_billed = invoice_for(WHO, february, SEGMENTS, [])
    february_fix = adjustment_for(
        february_billed.lines,
        invoice_for(WHO, february, SEGMENTS, [tokens("late", "2026-02-10T00:00:00Z", 200_000)]),
    )
    march = invoice_for(WHO, MARCH, SEGMENTS, [])
    with pytest.raises(RatingFailed) as caught:
        adjustment_for([*march.lines, *february_fix], march)
    assert caught.value.code == "invalid_adjustment"
