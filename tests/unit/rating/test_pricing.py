"""Pricing: every charge model against hand-computed amounts, validation, and monotonicity."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.domain.rating.errors import InvalidCatalog, RatingFailed
from billing.domain.rating.money import Currency, format_major, to_minor
from billing.domain.rating.pricing import Charge, ChargeModel, Graduated, PerUnit, Tier, rate
from tests.unit.rating.builders import d

# The example plan of API.md, charge by charge.
TOKENS = {
    "meter": "tokens",
    "model": "graduated",
    "tiers": [
        {"up_to": 100000, "unit_price": "0"},
        {"up_to": None, "unit_price": "0.00002", "flat_fee": "0"},
    ],
}
CALLS = {"meter": "calls", "model": "per_unit", "unit_price": "0.001"}
SEATS = {
    "meter": "seats",
    "model": "volume",
    "tiers": [{"up_to": 10, "unit_price": "8"}, {"up_to": None, "unit_price": "6"}],
}
GB = {"meter": "gb", "model": "package", "package_size": 100, "package_price": "5.00"}
# Flat fees on every tier, to see when each is added.
STEPS = {
    "meter": "m",
    "model": "graduated",
    "tiers": [
        {"up_to": 10, "unit_price": "1", "flat_fee": "5"},
        {"up_to": 20, "unit_price": "0.5", "flat_fee": "2"},
        {"up_to": None, "unit_price": "0.1", "flat_fee": "1"},
    ],
}
BULK = {
    "meter": "m",
    "model": "volume",
    "tiers": [
        {"up_to": 10, "unit_price": "2", "flat_fee": "10"},
        {"up_to": None, "unit_price": "1", "flat_fee": "20"},
    ],
}
SUB_CENT = {"meter": "tokens", "model": "per_unit", "unit_price": "0.00002"}

USD = Currency.of("USD")


@pytest.mark.parametrize(
    ("charge", "quantity", "amount", "usd"),
    [
        # graduated tokens: the first 100,000 are free, then 0.00002 each
        (TOKENS, "0", "0", "0.00"),
        (TOKENS, "100000", "0", "0.00"),
        (TOKENS, "100001", "0.00002", "0.00"),
        (TOKENS, "150000", "1", "1.00"),
        (TOKENS, "1234567", "22.69134", "22.69"),  # 1,134,567 x 0.00002
        # per_unit calls at 0.001
        (CALLS, "1", "0.001", "0.00"),
        (CALLS, "12345", "12.345", "12.34"),  # a tie: half-even keeps the even 4
        (CALLS, "12355", "12.355", "12.36"),  # a tie: half-even goes up to the even 6
        # volume seats: all seats at 8 up to 10 seats, all at 6 above
        (SEATS, "3", "24", "24.00"),
        (SEATS, "10", "80", "80.00"),  # the boundary belongs to the lower tier
        (SEATS, "11", "66", "66.00"),  # one more seat makes the whole bill cheaper
        # package gb: 5.00 per started 100
        (GB, "0", "0", "0.00"),
        (GB, "0.5", "5.00", "5.00"),
        (GB, "100", "5.00", "5.00"),
        (GB, "101", "10.00", "10.00"),
        (GB, "250", "15.00", "15.00"),
        # graduated with flat fees: a tier's fee is added once it is entered
        (STEPS, "5", "10", "10.00"),  # 5 x 1 + 5
        (STEPS, "10", "15", "15.00"),  # 10 x 1 + 5
        (STEPS, "15", "19.5", "19.50"),  # 15 + (5 x 0.5 + 2)
        (STEPS, "25", "23.5", "23.50"),  # 15 + (10 x 0.5 + 2) + (5 x 0.1 + 1)
        # volume with flat fees: only the tier the total falls in
        (BULK, "10", "30", "30.00"),  # 10 x 2 + 10
        (BULK, "11", "31", "31.00"),  # 11 x 1 + 20
        # sub-cent unit price
        (SUB_CENT, "1234567", "24.69134", "24.69"),
    ],
)
def test_charge_models_price_quantities_as_computed_by_hand(
    charge: dict[str, Any], quantity: str, amount: str, usd: str
) -> None:
    rated = rate(Charge.from_json(charge), d(quantity))
    assert rated.amount == d(amount)
    assert format_major(to_minor(rated.amount, USD), USD) == usd
    assert sum((row.amount for row in rated.tiers), Decimal(0)) == rated.amount


@pytest.mark.parametrize(
    ("currency", "unit_price", "quantity", "major"),
    [
        ("JPY", "0.5", "3", "2"),  # 1.5 yen -> 2 (half-even, no minor unit)
        ("JPY", "0.5", "5", "2"),  # 2.5 yen -> 2
        ("JPY", "120", "7", "840"),
        ("KWD", "0.0015", "7", "0.010"),  # 0.0105 -> 0.010 (three decimals, tie to even)
        ("KWD", "0.0015", "9", "0.014"),  # 0.0135 -> 0.014
        ("KWD", "1.2345", "1", "1.234"),
    ],
)
def test_currencies_without_and_with_three_minor_digits(
    currency: str, unit_price: str, quantity: str, major: str
) -> None:
    money = Currency.of(currency)
    rated = rate(PerUnit(d(unit_price)), d(quantity))
    assert format_major(to_minor(rated.amount, money), money) == major


def test_graduated_breakdown_lists_each_entered_tier() -> None:
    rated = rate(Charge.from_json(STEPS), d("25"))
    keys = ("tier", "from", "up_to", "quantity", "unit_price", "flat_fee", "amount")
    assert [row.to_json() for row in rated.tiers] == [
        dict(zip(keys, (1, "0", "10", "10", "1", "5", "15"), strict=True)),
        dict(zip(keys, (2, "10", "20", "10", "0.5", "2", "7"), strict=True)),
        dict(zip(keys, (3, "20", None, "5", "0.1", "1", "1.5"), strict=True)),
    ]


def test_package_breakdown_says_how_many_packages() -> None:
    (row,) = rate(Charge.from_json(GB), d("250")).tiers
    assert row.to_json() == {"tier": 1, "from": "0", "up_to": None, "quantity": "250", "unit_price": None,
                             "flat_fee": "0", "amount": "15", "packages": 3, "package_size": "100",
                             "package_price": "5"}  # fmt: skip


def test_a_zero_quantity_costs_nothing_in_every_model() -> None:
    for charge in (TOKENS, CALLS, SEATS, GB, STEPS, BULK):
        rated = rate(Charge.from_json(charge), Decimal(0))
        assert rated.amount == 0
        assert rated.tiers == ()


def test_a_negative_quantity_cannot_be_rated() -> None:
    with pytest.raises(RatingFailed) as caught:
        rate(Charge.from_json(CALLS), d("-1"))
    assert caught.value.code == "negative_quantity"


def test_charges_round_trip_through_the_api_shape() -> None:
    for charge in (TOKENS, CALLS, SEATS, GB):
        parsed = Charge.from_json(charge)
        assert Charge.from_json(parsed.to_json()) == parsed
    assert Charge.from_json(CALLS).to_json() == CALLS
    assert Charge.from_json(GB).to_json() == GB
    assert Charge.from_json(TOKENS).model is ChargeModel.GRADUATED


def _tiers(*tiers: tuple[object, object]) -> dict[str, Any]:
    return {"meter": "m", "model": "graduated", "tiers": [{"up_to": u, "unit_price": p} for u, p in tiers]}


@pytest.mark.parametrize(
    ("charge", "code", "field"),
    [
        (_tiers((10, "1"), (5, "1"), (None, "1")), "invalid_tiers", "tiers"),  # descending
        (_tiers((10, "1"), (10, "1"), (None, "1")), "invalid_tiers", "tiers"),  # not strictly ascending
        (_tiers((10, "1"), (20, "1")), "invalid_tiers", "tiers"),  # does not end open
        (_tiers((None, "1"), (20, "1"), (None, "1")), "invalid_tiers", "tiers"),  # open tier in the middle
        (_tiers((0, "1"), (None, "1")), "invalid_amount", "tiers.up_to"),  # an empty first tier
        (_tiers((10, "-1"), (None, "1")), "invalid_amount", "tiers.unit_price"),
        (_tiers((10, 0.5), (None, "1")), "invalid_amount", "tiers.unit_price"),  # a float price
        (_tiers(), "invalid_tiers", "tiers"),
        ({"meter": "m", "model": "graduated", "tiers": [{"unit_price": "1"}]}, "invalid_tiers", "up_to"),
        ({"meter": "m", "model": "graduated", "tiers": "0-10"}, "invalid_tiers", "tiers"),
        ({"meter": "m", "model": "volume", "tiers": [{"up_to": None, "unit_price": "1", "flat_fee": "-2"}]},
         "invalid_amount", "tiers.flat_fee"),
        ({"meter": "m", "model": "package", "package_size": 0, "package_price": "5"}, "invalid_amount",
         "package_size"),
        ({"meter": "m", "model": "package", "package_size": -100, "package_price": "5"}, "invalid_amount",
         "package_size"),
        ({"meter": "m", "model": "package", "package_size": 100}, "invalid_charge", "package_price"),
        ({"meter": "m", "model": "per_unit", "unit_price": "-0.001"}, "invalid_amount", "unit_price"),
        ({"meter": "m", "model": "per_unit", "unit_price": "NaN"}, "invalid_amount", "unit_price"),
        ({"meter": "m", "model": "per_unit", "unit_prize": "1"}, "invalid_charge", "unit_prize"),
        ({"meter": "m", "model": "tiered", "unit_price": "1"}, "invalid_charge", "model"),
        ({"model": "per_unit", "unit_price": "1"}, "invalid_charge", "meter"),
    ],
)  # fmt: skip
def test_invalid_charges_are_refused_with_a_code_and_field(
    charge: dict[str, Any], code: str, field: str
) -> None:
    with pytest.raises(InvalidCatalog) as caught:
        Charge.from_json(charge)
    assert (caught.value.code, caught.value.field) == (code, field)


prices = st.decimals(min_value=0, max_value=100, places=5)
quantities = st.decimals(min_value=0, max_value=10**9, places=3)


@st.composite
def graduated(draw: st.DrawFn) -> Graduated:
    bounds = sorted(draw(st.sets(st.integers(min_value=1, max_value=10**6), max_size=5)))
    ups: list[Decimal | None] = [Decimal(b) for b in bounds]
    ups.append(None)
    return Graduated(tuple(Tier(up, draw(prices), draw(prices)) for up in ups))


@given(graduated(), quantities, quantities)
def test_graduated_amount_never_decreases_as_quantity_grows(
    charge: Graduated, a: Decimal, b: Decimal
) -> None:
    low, high = sorted((a, b))
    assert rate(charge, low).amount <= rate(charge, high).amount


@given(prices, quantities, quantities)
def test_per_unit_is_additive(unit_price: Decimal, a: Decimal, b: Decimal) -> None:
    price = PerUnit(unit_price)
    assert rate(price, a).amount + rate(price, b).amount == rate(price, a + b).amount
