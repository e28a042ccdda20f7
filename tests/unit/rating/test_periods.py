"""Billing periods in the customer's timezone: anchors, DST, far-east and far-west zones, boundaries."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from billing.domain.rating.errors import InvalidCatalog
from billing.domain.rating.periods import (
    BillingCycle,
    BillingPeriod,
    billing_timezone,
    format_instant,
    period_containing,
    periods_between,
)
from tests.unit.rating.builders import at

HOUR = 3600
DAY = 24 * HOUR
MICROSECOND = timedelta(microseconds=1)


def test_a_dst_change_inside_a_period_shortens_it_in_utc_but_keeps_membership() -> None:
    # New York springs forward on 2026-03-08 at 02:00 local: the March period is 31 days minus an hour.
    period = period_containing(at("2026-03-15T12:00:00Z"), "America/New_York", 1)
    assert period == BillingPeriod(at("2026-03-01T05:00:00Z"), at("2026-04-01T04:00:00Z"))
    assert period.seconds == 31 * DAY - HOUR
    for moment in ("2026-03-08T06:59:59Z", "2026-03-08T07:00:00Z"):  # 01:59:59 EST and 03:00:00 EDT
        assert period_containing(at(moment), "America/New_York", 1) == period


def test_falling_back_lengthens_the_november_period_by_an_hour() -> None:
    period = period_containing(at("2026-11-15T00:00:00Z"), "America/New_York", 1)
    assert period == BillingPeriod(at("2026-11-01T04:00:00Z"), at("2026-12-01T05:00:00Z"))
    assert period.seconds == 30 * DAY + HOUR


def test_a_customer_in_tongatapu_utc_plus_13_starts_its_month_the_previous_utc_day() -> None:
    march = period_containing(at("2026-03-01T10:00:00Z"), "Pacific/Tongatapu", 1)  # 23:00 on March 1 in Tonga
    assert march == BillingPeriod(at("2026-02-28T11:00:00Z"), at("2026-03-31T11:00:00Z"))
    # 23:59:59 on February 28 in Tonga is still February there
    february = period_containing(at("2026-02-28T10:59:59Z"), "Pacific/Tongatapu", 1)
    assert february.end_utc == march.start_utc


def test_a_customer_in_honolulu_utc_minus_10_is_still_in_february_on_the_utc_morning_of_march_1() -> None:
    february = period_containing(at("2026-03-01T09:59:59Z"), "Pacific/Honolulu", 1)  # 23:59:59 Feb 28 HST
    assert february == BillingPeriod(at("2026-02-01T10:00:00Z"), at("2026-03-01T10:00:00Z"))
    assert period_containing(at("2026-03-01T10:00:00Z"), "Pacific/Honolulu", 1).start_utc == february.end_utc


def test_an_instant_exactly_at_a_boundary_belongs_to_the_period_that_starts_there() -> None:
    boundary = at("2026-03-01T05:00:00Z")  # midnight, March 1, New York
    assert period_containing(boundary, "America/New_York", 1).start_utc == boundary
    assert period_containing(boundary - MICROSECOND, "America/New_York", 1).end_utc == boundary


@pytest.mark.parametrize(
    ("anchor", "instant", "start", "end", "days"),
    [
        (28, "2026-02-15T00:00:00Z", "2026-01-28T00:00:00Z", "2026-02-28T00:00:00Z", 31),
        (28, "2026-02-28T00:00:00Z", "2026-02-28T00:00:00Z", "2026-03-28T00:00:00Z", 28),
        (1, "2026-02-15T00:00:00Z", "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z", 28),
        (1, "2028-02-15T00:00:00Z", "2028-02-01T00:00:00Z", "2028-03-01T00:00:00Z", 29),  # leap year
        (15, "2026-12-31T23:59:59Z", "2026-12-15T00:00:00Z", "2027-01-15T00:00:00Z", 31),  # across a year
    ],
)
def test_february_and_anchor_days(anchor: int, instant: str, start: str, end: str, days: int) -> None:
    period = period_containing(at(instant), "UTC", anchor)
    assert period == BillingPeriod(at(start), at(end))
    assert period.seconds == days * DAY


def test_where_local_midnight_does_not_exist_the_period_starts_when_the_day_does() -> None:
    # Santiago skips from 24:00 on 5 September 2026 to 01:00 on the 6th.
    period = period_containing(at("2026-09-10T00:00:00Z"), "America/Santiago", 6)
    assert period.start_utc == at("2026-09-06T04:00:00Z")  # 01:00 -03, the first instant of the 6th
    assert (
        period_containing(period.start_utc - MICROSECOND, "America/Santiago", 6).end_utc == period.start_utc
    )


def test_periods_between_lists_every_period_overlapping_the_half_open_span() -> None:
    spans = periods_between(at("2026-01-15T00:00:00Z"), at("2026-04-15T00:00:00Z"), "UTC", 1)
    assert [p.to_json()["start"] for p in spans] == [
        "2026-01-01T00:00:00Z",
        "2026-02-01T00:00:00Z",
        "2026-03-01T00:00:00Z",
        "2026-04-01T00:00:00Z",
    ]
    assert periods_between(at("2026-03-01T00:00:00Z"), at("2026-04-01T00:00:00Z"), "UTC", 1) == [
        BillingPeriod(at("2026-03-01T00:00:00Z"), at("2026-04-01T00:00:00Z"))
    ]
    assert periods_between(at("2026-03-01T00:00:00Z"), at("2026-03-01T00:00:00Z"), "UTC", 1) == []


@pytest.mark.parametrize(
    "name",
    ["Mars/Olympus_Mons", "america/new_york", "America/New_York ", "", "localtime", "../etc/passwd", 5],
)
def test_an_unknown_timezone_is_refused(name: object) -> None:
    with pytest.raises(InvalidCatalog) as caught:
        billing_timezone(name)
    assert caught.value.code == "unknown_timezone"


@pytest.mark.parametrize("anchor", [0, 29, 31, -1, True, "1", None])
def test_anchor_days_outside_1_to_28_are_refused(anchor: object) -> None:
    with pytest.raises(InvalidCatalog) as caught:
        BillingCycle("UTC", anchor)  # type: ignore[arg-type]
    assert caught.value.code == "invalid_anchor_day"


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(TypeError):
        period_containing(datetime(2026, 3, 1), "UTC", 1)


def test_period_json_uses_rfc_3339_utc() -> None:
    period = period_containing(at("2026-03-15T12:00:00Z"), "America/New_York", 1)
    assert period.to_json() == {"start": "2026-03-01T05:00:00Z", "end": "2026-04-01T04:00:00Z"}
    assert format_instant(at("2026-03-01T05:00:00.000250Z")) == "2026-03-01T05:00:00.000250Z"


ZONES = [
    # half-hour DST (Lord Howe), 45-minute offsets (Kathmandu, Chatham), DST at midnight (Santiago, Havana)
    *("UTC", "America/New_York", "Pacific/Tongatapu", "Pacific/Honolulu", "Europe/London"),
    *("Australia/Lord_Howe", "America/Santiago", "Asia/Kathmandu", "Pacific/Chatham", "America/Havana"),
]
instants = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2060, 1, 1), timezones=st.just(UTC)
)  # fmt: skip


@given(instants, st.sampled_from(ZONES), st.integers(min_value=1, max_value=28))
@example(datetime(2029, 3, 12, tzinfo=UTC), "America/Havana", 11)  # DST gap at local midnight
def test_every_instant_is_in_exactly_one_period_and_periods_tile_time(
    instant: datetime, zone: str, anchor: int
) -> None:
    cycle = BillingCycle(zone, anchor)
    period = cycle.period_containing(instant)
    assert period.start_utc <= instant < period.end_utc
    # no overlap and no gap on either side
    assert cycle.period_containing(period.start_utc - MICROSECOND).end_utc == period.start_utc
    assert cycle.period_containing(period.end_utc).start_utc == period.end_utc
    assert cycle.period_containing(period.end_utc - MICROSECOND) == period
    # and the period starts on the anchor day, on the local calendar
    local_start = period.start_utc.astimezone(cycle.zone)
    assert local_start.day == anchor
    # The instant before the start is on another local day. (Step back in UTC: Python's arithmetic on
    # aware local datetimes is wall-clock arithmetic, which lands inside a DST gap at midnight.)
    assert (period.start_utc - MICROSECOND).astimezone(cycle.zone).day != anchor


@given(instants, st.integers(min_value=0, max_value=800 * DAY), st.sampled_from(ZONES), st.integers(1, 28))
def test_periods_between_are_contiguous(start: datetime, span: int, zone: str, anchor: int) -> None:
    end = start + timedelta(seconds=span)
    periods = periods_between(start, end, zone, anchor)
    for earlier, later in pairwise(periods):
        assert earlier.end_utc == later.start_utc
    if span:
        assert periods[0].contains(start)
        assert periods[-1].contains(end - MICROSECOND)


@pytest.mark.parametrize(
    ("timezone", "instant", "last_day"),
    [
        # New York's March ends at April 1 04:00 UTC: an April date in UTC, March 31 where the customer is.
        ("America/New_York", "2026-03-15T12:00:00Z", date(2026, 3, 31)),
        ("UTC", "2026-12-15T12:00:00Z", date(2026, 12, 31)),
        # Tongatapu (UTC+13): January runs from December 31 11:00 UTC to January 31 11:00 UTC.
        ("Pacific/Tongatapu", "2026-01-15T00:00:00Z", date(2026, 1, 31)),
    ],
)
def test_the_last_day_of_a_period_is_a_date_of_the_customers_calendar(
    timezone: str, instant: str, last_day: date
) -> None:
    cycle = BillingCycle(timezone, 1)

    assert cycle.last_day(cycle.period_containing(at(instant))) == last_day
