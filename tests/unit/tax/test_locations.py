"""A customer moving mid-period: each part of a line taxed where the customer was, exact to the cent."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from billing.domain.rating.money import Currency
from billing.domain.tax.errors import TaxError
from billing.domain.tax.locations import (
    LineWindow,
    LocationChange,
    allocate_largest_remainder,
    source_ref,
    split_by_location,
)
from billing.domain.tax.model import TaxCustomer, TaxLocation, TaxRequest
from billing.domain.tax.reconciliation import reconcile_estimated
from tests.unit.tax.builders import ENGINE, TAX_DATE, US_SELLER, quote, where

MARCH_START = datetime(2026, 3, 1, tzinfo=UTC)
MARCH_END = datetime(2026, 4, 1, tzinfo=UTC)  # 31 days
MOVED = datetime(2026, 3, 11, tzinfo=UTC)  # 10 days in New York, then 21 in Texas
NEW_YORK, TEXAS = where("US", "NY"), where("US", "TX")
HISTORY = [LocationChange(datetime(2025, 1, 1, tzinfo=UTC), NEW_YORK), LocationChange(MOVED, TEXAS)]
BASE_FEE = LineWindow("L1", 4900, MARCH_START, MARCH_END, "saas")


def test_a_line_is_split_at_the_move_and_shared_by_time() -> None:
    parts = split_by_location([BASE_FEE], HISTORY)
    # 49.00 x 10/31 = 15.806..., 49.00 x 21/31 = 33.193...: floors 15.80 + 33.19 leave one cent, which
    # goes to the larger remainder (0.645 of a cent against 0.354): New York.
    assert [(p.ref, p.location.code, p.start.day, p.end.day, p.amount_minor) for p in parts] == [
        ("L1#1", "US-NY", 1, 11, 1581),
        ("L1#2", "US-TX", 11, 1, 3319),
    ]
    assert sum(p.amount_minor for p in parts) == 4900


def test_each_part_is_taxed_in_its_own_jurisdiction() -> None:
    parts = split_by_location([BASE_FEE], HISTORY)
    request = TaxRequest(
        US_SELLER,
        TaxCustomer(TEXAS),
        Currency.of("USD"),
        TAX_DATE,
        tuple(part.taxable_line() for part in parts),
    )
    result = ENGINE.quote(request)
    # New York 15.81 x 4% = 0.6324 -> 0.63; Texas 33.19 x 80% x 6.25% = 1.6595 -> 1.66
    assert [(t.line_ref, t.jurisdiction, t.tax_minor) for t in result.lines] == [
        ("L1#1", "US-NY", 63),
        ("L1#2", "US-TX", 166),
    ]


def test_a_finalized_period_is_corrected_by_the_difference_per_jurisdiction() -> None:
    billed = quote(NEW_YORK, ("L1", 4900)).lines  # billed before the move was known: 49.00 x 4% = 1.96
    parts = split_by_location([BASE_FEE], HISTORY)
    actual = ENGINE.quote(
        TaxRequest(
            US_SELLER,
            TaxCustomer(TEXAS),
            Currency.of("USD"),
            TAX_DATE,
            tuple(p.taxable_line() for p in parts),
        )
    ).lines
    adjustments = reconcile_estimated(billed, actual)
    assert [(a.line_ref, a.jurisdiction, a.difference_minor) for a in adjustments] == [
        ("L1", "US-NY", -133),  # 0.63 - 1.96
        ("L1", "US-TX", 166),
    ]


def test_a_line_inside_one_location_is_not_split_and_keeps_its_ref() -> None:
    (part,) = split_by_location([LineWindow("L2", 100, MOVED, MARCH_END)], HISTORY)
    assert (part.ref, part.location, part.amount_minor) == ("L2", TEXAS, 100)


def test_a_change_to_the_same_location_is_no_change() -> None:
    history = [*HISTORY, LocationChange(datetime(2026, 3, 20, tzinfo=UTC), TEXAS)]
    assert len(split_by_location([BASE_FEE], history)) == 2


def test_moving_back_and_forth_makes_three_parts() -> None:
    history: list[LocationChange | tuple[datetime, TaxLocation]] = [
        *HISTORY,
        (datetime(2026, 3, 21, tzinfo=UTC), NEW_YORK),
    ]
    parts = split_by_location([BASE_FEE], history)
    assert [(p.location.code, p.amount_minor) for p in parts] == [
        ("US-NY", 1581),  # 10 days: 1580.645...
        ("US-TX", 1580),  # 10 days: 1580.645... (ties with the first part: the earlier part wins)
        ("US-NY", 1739),  # 11 days: 1738.709... the largest remainder
    ]  # floors 1580 + 1580 + 1738 leave 2 cents, one each to the two largest remainders


def test_a_credit_line_splits_like_the_charge_it_undoes() -> None:
    parts = split_by_location([LineWindow("ADJ", -4900, MARCH_START, MARCH_END)], HISTORY)
    assert [p.amount_minor for p in parts] == [-1581, -3319]


def test_a_window_before_any_known_location_is_an_error() -> None:
    with pytest.raises(TaxError) as raised:
        split_by_location([BASE_FEE], [LocationChange(MOVED, TEXAS)])
    assert raised.value.code == "no_location"


def test_largest_remainder_allocation() -> None:
    assert allocate_largest_remainder(100, [1, 1, 1]) == [34, 33, 33]  # ties go to the earlier part
    assert allocate_largest_remainder(-100, [1, 1, 1]) == [-34, -33, -33]
    assert allocate_largest_remainder(5, [0, 3, 0]) == [0, 5, 0]
    with pytest.raises(TaxError):
        allocate_largest_remainder(5, [0, 0])


def test_source_ref_of_a_part() -> None:
    assert (source_ref("L1#2"), source_ref("L1")) == ("L1", "L1")
