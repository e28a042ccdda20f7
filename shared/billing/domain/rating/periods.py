"""Billing periods: half-open UTC intervals computed in the customer's IANA timezone from an anchor day.

Rules:
- A period starts at local midnight (the first instant of the local day) of the anchor day and ends
  where the next one starts: [start, end). An instant exactly at a boundary belongs to the period that
  starts there, so every instant is in exactly one period and periods tile time without gap or overlap.
- The anchor day is 1 to 28, so that every month has it: each period runs from one anchor day to the
  same day of the next month (anchor 28: Jan 28 -> Feb 28 -> Mar 28; anchor 1: Feb 1 -> Mar 1). There is
  no month-end anchoring (a day 29-31 would need a rule for short months; we chose not to invent one).
- Boundaries are placed on the local calendar, so a DST change inside a period changes its length in
  UTC (a March period in New York is one hour short) but never which period an instant belongs to.
  Where local midnight does not exist (a DST gap at 00:00) the period starts at the first local instant
  of that day; where it happens twice, at the first of the two.
- The interval is monthly. Intervals are counted in months (`Interval.months`), so a yearly interval
  is one enum member plus an anchor month away.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from billing.domain.rating.errors import InvalidCatalog

MIN_ANCHOR_DAY = 1
MAX_ANCHOR_DAY = 28

# Keys that load without error but are not a place: "localtime" is whatever the machine is set to.
_NOT_A_BILLING_ZONE = frozenset({"localtime", "posixrules", "Factory"})
_ZONE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$")


class Interval(StrEnum):
    MONTH = "month"

    @property
    def months(self) -> int:
        return {Interval.MONTH: 1}[self]


def billing_timezone(name: Any) -> ZoneInfo:
    """An IANA timezone by name (e.g. "America/New_York"); anything else raises InvalidCatalog."""
    if isinstance(name, str) and _ZONE_NAME.match(name) and name not in _NOT_A_BILLING_ZONE:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    raise InvalidCatalog(
        f"unknown timezone {str(name)[:64]!r}: expected an IANA name such as America/New_York",
        code="unknown_timezone",
        field="timezone",
    )


def check_anchor_day(anchor_day: Any) -> int:
    if isinstance(anchor_day, bool) or not isinstance(anchor_day, int):
        raise InvalidCatalog(
            "billing_anchor_day must be an integer", code="invalid_anchor_day", field="billing_anchor_day"
        )
    if not MIN_ANCHOR_DAY <= anchor_day <= MAX_ANCHOR_DAY:
        raise InvalidCatalog(
            f"billing_anchor_day must be {MIN_ANCHOR_DAY} to {MAX_ANCHOR_DAY} so that every month has it",
            code="invalid_anchor_day",
            field="billing_anchor_day",
        )
    return anchor_day


def utc(instant: datetime) -> datetime:
    """An aware instant in UTC; a naive datetime is a programming error (its zone is unknowable)."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise TypeError("instants must be timezone-aware datetimes")
    return instant.astimezone(UTC)


def format_instant(instant: datetime) -> str:
    """RFC 3339 in UTC with `Z`; fractional seconds only when there are some: 2026-03-01T05:00:00Z."""
    moment = utc(instant)
    text = f"{moment.year:04d}-{moment.strftime('%m-%dT%H:%M:%S')}"
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    return text + "Z"


def seconds_between(start: datetime, end: datetime) -> Decimal:
    """Elapsed seconds from start to end, exactly (to the microsecond), as a Decimal."""
    microseconds = (utc(end) - utc(start)) // timedelta(microseconds=1)
    return Decimal(microseconds).scaleb(-6)


@dataclass(frozen=True)
class BillingPeriod:
    """A half-open interval of time [start_utc, end_utc)."""

    start_utc: datetime
    end_utc: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start_utc", utc(self.start_utc))
        object.__setattr__(self, "end_utc", utc(self.end_utc))
        if self.end_utc <= self.start_utc:
            raise ValueError("a period ends after it starts")

    def contains(self, instant: datetime) -> bool:
        return self.start_utc <= utc(instant) < self.end_utc

    @property
    def seconds(self) -> Decimal:
        return seconds_between(self.start_utc, self.end_utc)

    def intersect(self, start: datetime | None, end: datetime | None) -> BillingPeriod | None:
        """The part of this period inside [start, end) (None: unbounded), or None when it is empty."""
        low = self.start_utc if start is None else max(self.start_utc, utc(start))
        high = self.end_utc if end is None else min(self.end_utc, utc(end))
        return BillingPeriod(low, high) if low < high else None

    def to_json(self) -> dict[str, str]:
        return {"start": format_instant(self.start_utc), "end": format_instant(self.end_utc)}


@dataclass(frozen=True)
class BillingCycle:
    """How a customer's time is cut into periods: IANA timezone, anchor day, interval."""

    timezone: str
    anchor_day: int
    interval: Interval = Interval.MONTH

    def __post_init__(self) -> None:
        billing_timezone(self.timezone)
        check_anchor_day(self.anchor_day)
        object.__setattr__(self, "interval", Interval(self.interval))

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def period_containing(self, instant: datetime) -> BillingPeriod:
        """The one period with start <= instant < end."""
        moment = utc(instant)
        local = moment.astimezone(self.zone)
        index = local.year * 12 + local.month - 1
        if local.day < self.anchor_day:
            index -= 1
        # The local-calendar guess above is exact except in pathological zone histories; the UTC
        # comparisons below make the half-open rule the single source of truth.
        while moment < self._start(index):
            index -= self.interval.months
        while moment >= self._start(index + self.interval.months):
            index += self.interval.months
        return BillingPeriod(self._start(index), self._start(index + self.interval.months))

    def next_period(self, period: BillingPeriod) -> BillingPeriod:
        return self.period_containing(period.end_utc)

    def last_day(self, period: BillingPeriod) -> date:
        """The local calendar date of the period's last instant: its end is the next period's first local
        midnight, so this is the day before that, in this cycle's timezone (March in New York ends on
        March 31 even though its exclusive end, April 1 04:00 UTC, is an April date in UTC)."""
        return (period.end_utc - timedelta(microseconds=1)).astimezone(self.zone).date()

    def periods_between(self, start: datetime, end: datetime) -> list[BillingPeriod]:
        """Every period that overlaps [start, end), in order; empty when end <= start."""
        if utc(end) <= utc(start):
            return []
        periods = [self.period_containing(start)]
        while periods[-1].end_utc < utc(end):
            periods.append(self.next_period(periods[-1]))
        return periods

    def _start(self, month_index: int) -> datetime:
        year, month = divmod(month_index, 12)
        # fold=0 maps a local midnight that does not exist (DST gap) to the instant the day begins, and
        # one that happens twice to its first occurrence: both are the first instant of the local day.
        local_midnight = datetime(year, month + 1, self.anchor_day, tzinfo=self.zone)
        return local_midnight.astimezone(UTC)


def period_containing(instant: datetime, timezone: str, anchor_day: int) -> BillingPeriod:
    """The monthly billing period containing an instant, for a customer's timezone and anchor day."""
    return BillingCycle(timezone, anchor_day).period_containing(instant)


def periods_between(start: datetime, end: datetime, timezone: str, anchor_day: int) -> list[BillingPeriod]:
    """The monthly billing periods overlapping [start, end) for a customer's timezone and anchor day."""
    return BillingCycle(timezone, anchor_day).periods_between(start, end)
