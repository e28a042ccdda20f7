"""Proration by seconds: full and empty coverage are exact; partial coverage rounds once, correctly."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.domain.rating.errors import RatingFailed
from billing.domain.rating.money import Currency, to_minor
from billing.domain.rating.periods import BillingPeriod
from billing.domain.rating.proration import prorate, prorate_over
from tests.unit.rating.builders import at, d

USD = Currency.of("USD")
DAY = 86400
MARCH = BillingPeriod(at("2026-03-01T00:00:00Z"), at("2026-04-01T00:00:00Z"))


@pytest.mark.parametrize(
    ("amount", "covered", "whole", "usd"),
    [
        ("49.00", 14 * DAY, 28 * DAY, "24.50"),  # half of February
        ("49.00", 31 * DAY, 31 * DAY, "49.00"),  # all of March: no division at all
        ("49.00", 0, 31 * DAY, "0.00"),
        ("49.00", 1, 31 * DAY, "0.00"),  # one second of March: 0.0000183 USD
        ("49.00", 10 * DAY, 31 * DAY, "15.81"),  # 15.806451...
        ("100.00", 31 * DAY - 1, 31 * DAY, "100.00"),  # all but the last second: 99.99996...
        ("0.03", DAY, 2 * DAY, "0.02"),  # 0.015 exactly: a tie, half-even gives 0.02
        ("0.05", DAY, 2 * DAY, "0.02"),  # 0.025 exactly: a tie, half-even gives 0.02
    ],
)
def test_prorating_by_seconds(amount: str, covered: int, whole: int, usd: str) -> None:
    minor = to_minor(prorate(d(amount), covered, whole), USD)
    assert Decimal(minor).scaleb(-2) == d(usd)


def test_a_window_is_prorated_against_its_period() -> None:
    first_ten_days = BillingPeriod(at("2026-03-01T00:00:00Z"), at("2026-03-11T00:00:00Z"))
    assert to_minor(prorate_over(d("49.00"), first_ten_days, MARCH), USD) == 1581
    assert prorate_over(d("49.00"), MARCH, MARCH) == d("49.00")


@pytest.mark.parametrize(("covered", "whole"), [(-1, 10), (11, 10), (0, 0), (1, -5)])
def test_impossible_coverage_is_refused(covered: int, whole: int) -> None:
    with pytest.raises(RatingFailed) as caught:
        prorate(d("1"), covered, whole)
    assert caught.value.code == "invalid_proration"


fees = st.decimals(min_value=0, max_value=10**9, places=4)
periods = st.integers(min_value=1, max_value=32 * DAY * 10**6).map(lambda us: Decimal(us).scaleb(-6))


@given(fees, periods)
def test_proration_of_a_full_period_is_the_full_fee(fee: Decimal, whole: Decimal) -> None:
    assert prorate(fee, whole, whole) == fee


@st.composite
def coverages(draw: st.DrawFn) -> tuple[Decimal, Decimal]:
    """(covered, period) seconds to the microsecond, covered <= period."""
    whole = draw(st.integers(min_value=1, max_value=32 * DAY * 10**6))
    covered = draw(st.integers(min_value=0, max_value=whole))
    return Decimal(covered).scaleb(-6), Decimal(whole).scaleb(-6)


@given(fees, coverages())
def test_one_rounding_of_the_prorated_fee_equals_rounding_the_exact_fraction(
    fee: Decimal, coverage: tuple[Decimal, Decimal]
) -> None:
    covered, whole = coverage
    exact = Fraction(fee) * Fraction(covered) / Fraction(whole) * 100
    assert to_minor(prorate(fee, covered, whole), USD) == round(exact)  # round() of a Fraction is half-even
