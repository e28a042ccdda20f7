"""Plans, plan versions, subscriptions (start, change plan, cancel) and the customer's billing settings."""

from __future__ import annotations

from typing import Any

import pytest

from billing.domain.rating.customers import Customer
from billing.domain.rating.errors import InvalidCatalog
from billing.domain.rating.money import Currency
from billing.domain.rating.plans import Plan, Subscription, SubscriptionSegment
from billing.domain.rating.pricing import ChargeModel
from tests.unit.rating.builders import API_PLAN, METERS, at, d, plan


def test_the_api_example_plan_is_accepted_as_written() -> None:
    pro = Plan.from_json(API_PLAN, version=3)
    assert (pro.id, pro.version, pro.currency.code, pro.base_fee, pro.minimum_commitment, pro.tax_code) == (
        "pro", 3, "USD", d("49.00"), d("100.00"), "saas"
    )  # fmt: skip
    assert [c.model for c in pro.charges] == [
        ChargeModel.GRADUATED, ChargeModel.PER_UNIT, ChargeModel.VOLUME, ChargeModel.PACKAGE
    ]  # fmt: skip
    pro.check_meters(meter.key for meter in METERS)
    again = Plan.from_json(pro.to_json())
    assert again == pro


@pytest.mark.parametrize(
    ("overrides", "code", "field"),
    [
        ({"currency": "XXX"}, "unknown_currency", "currency"),
        ({"currency": "usd"}, "unknown_currency", "currency"),
        ({"base_fee": "-1"}, "invalid_amount", "base_fee"),
        ({"base_fee": 49.0}, "invalid_amount", "base_fee"),
        ({"minimum_commitment": "lots"}, "invalid_amount", "minimum_commitment"),
        ({"interval": "fortnight"}, "invalid_plan", "interval"),
        ({"id": ""}, "invalid_plan", "id"),
        ({"trial_days": 14}, "invalid_plan", "trial_days"),
        ({"charges": [{"meter": "calls", "model": "per_unit", "unit_price": "1"},
                      {"meter": "calls", "model": "per_unit", "unit_price": "2"}]},
         "invalid_plan", "charges"),
        ({"charges": [{"meter": "calls", "model": "graduated", "tiers": [{"up_to": 5, "unit_price": "1"}]}]},
         "invalid_tiers", "tiers"),
    ],
)  # fmt: skip
def test_invalid_plans_are_refused_with_a_code_and_field(
    overrides: dict[str, Any], code: str, field: str
) -> None:
    with pytest.raises(InvalidCatalog) as caught:
        plan(**overrides)
    assert (caught.value.code, caught.value.field) == (code, field)


def test_a_charge_on_an_unknown_meter_is_refused() -> None:
    with pytest.raises(InvalidCatalog) as caught:
        plan().check_meters(["tokens", "calls", "seats"])
    assert (caught.value.code, caught.value.field) == ("unknown_meter", "charges[3].meter")


def test_a_plan_change_ends_the_old_segment_where_the_new_one_starts() -> None:
    v1, v2 = plan(version=1), plan(version=2, base_fee="59.00")
    subscription = Subscription.start("sub_1", "cus_42", v1, at("2026-03-01T00:00:00Z"))
    changed = subscription.change_plan(v2, at("2026-03-11T00:00:00Z"))
    assert changed.segments == (
        SubscriptionSegment(v1, at("2026-03-01T00:00:00Z"), at("2026-03-11T00:00:00Z")),
        SubscriptionSegment(v2, at("2026-03-11T00:00:00Z")),
    )
    assert subscription.segments == (SubscriptionSegment(v1, at("2026-03-01T00:00:00Z")),)  # unchanged


def test_a_plan_change_at_the_instant_the_plan_started_replaces_it() -> None:
    v1, v2 = plan(version=1), plan(version=2)
    subscription = Subscription.start("sub_1", "cus_42", v1, at("2026-03-01T00:00:00Z"))
    assert subscription.change_plan(v2, at("2026-03-01T00:00:00Z")).segments == (
        SubscriptionSegment(v2, at("2026-03-01T00:00:00Z")),
    )


def test_cancelling_ends_the_running_segment_and_nothing_can_follow() -> None:
    subscription = Subscription.start("sub_1", "cus_42", plan(), at("2026-03-01T00:00:00Z"))
    cancelled = subscription.cancel(at("2026-03-20T12:00:00Z"))
    assert cancelled.active is None
    assert cancelled.segments[-1].end == at("2026-03-20T12:00:00Z")
    with pytest.raises(InvalidCatalog) as caught:
        cancelled.change_plan(plan(version=2), at("2026-03-25T00:00:00Z"))
    assert caught.value.code == "invalid_subscription"


def test_changes_before_the_current_plan_started_or_across_currencies_are_refused() -> None:
    subscription = Subscription.start("sub_1", "cus_42", plan(), at("2026-03-10T00:00:00Z"))
    with pytest.raises(InvalidCatalog):
        subscription.change_plan(plan(version=2), at("2026-03-09T00:00:00Z"))
    with pytest.raises(InvalidCatalog):
        subscription.change_plan(plan(version=2, currency="EUR"), at("2026-03-12T00:00:00Z"))
    with pytest.raises(InvalidCatalog):
        SubscriptionSegment(plan(), at("2026-03-10T00:00:00Z"), at("2026-03-10T00:00:00Z"))


def test_the_api_customer_shape_gives_currency_timezone_and_anchor() -> None:
    data = {"id": "cus_42", "name": "Ada", "email": "ada@example.com", "currency": "USD",
            "timezone": "America/New_York", "billing_anchor_day": 1,
            "tax": {"country": "US", "region": "NY", "postal_code": "10001", "tax_id": None, "exempt": False},
            "payment_method": {"token": "tok_1", "gateway": "sandbox"}}  # fmt: skip
    assert Customer.from_json(data) == Customer("cus_42", Currency.of("USD"), "America/New_York", 1)
    with pytest.raises(InvalidCatalog) as caught:
        Customer.from_json({**data, "timezone": "Mars/Olympus_Mons"})
    assert caught.value.code == "unknown_timezone"
    with pytest.raises(InvalidCatalog) as caught:
        Customer.from_json({**data, "billing_anchor_day": 31})
    assert caught.value.code == "invalid_anchor_day"
