"""A line whose customer moved mid-period: split it by tax location, prorated by time.

Rule: each window of a line (its billing window) is cut at every location change inside it; each part
is taxed in the jurisdiction of the location in force during it. The line's amount is shared by elapsed
time, counted in microseconds of UTC (the same "by seconds" rule as base-fee proration, to the
microsecond), and allocated in whole minor units with the largest-remainder method: every part gets the
floor of its exact share, and the units left over go one each to the parts with the largest remainders
(ties to the earlier part). The parts therefore sum exactly to the line amount, each part is within one
minor unit of its exact share, and the result is deterministic.

A change takes effect at its `effective_at` instant (inclusive): the part before ends there, the next
starts there. Consecutive parts with the same location are one part. A window that starts before the
first known location is an error: there is no place to tax it in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from billing.domain.tax.errors import TaxError
from billing.domain.tax.model import TaxableLine, TaxLocation

PART_SEPARATOR = "#"
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class LocationChange:
    effective_at: datetime
    location: TaxLocation


@dataclass(frozen=True)
class LineWindow:
    """An invoice line over the window of time it bills for, e.g. a base fee over the period."""

    ref: str
    amount_minor: int
    start: datetime
    end: datetime
    tax_code: str | None = None


@dataclass(frozen=True)
class LocatedPart:
    """A part of a line: its share of the amount, the time it covers and where it is taxed."""

    ref: str  # the line's ref when it was not split, else "<ref>#<n>" (n from 1)
    source_ref: str
    location: TaxLocation
    start: datetime
    end: datetime
    amount_minor: int
    tax_code: str | None = None

    def taxable_line(self) -> TaxableLine:
        return TaxableLine(self.ref, self.amount_minor, self.tax_code, self.location)


def source_ref(line_ref: str) -> str:
    """The ref of the line a part was split from ("L1#2" -> "L1"); a ref that was not split is its own."""
    return line_ref.split(PART_SEPARATOR, 1)[0]


def split_by_location(
    windows: Sequence[LineWindow], history: Sequence[LocationChange | tuple[datetime, TaxLocation]]
) -> list[LocatedPart]:
    """The parts of every window, in window order then time order."""
    changes = _normalized(history)
    parts: list[LocatedPart] = []
    for window in windows:
        parts.extend(_split(window, changes))
    return parts


def allocate_largest_remainder(total: int, weights: Sequence[int]) -> list[int]:
    """Share an integer total in proportion to non-negative integer weights, summing exactly to it.

    A negative total is shared as its magnitude and negated, so a credit splits like the charge it undoes.
    """
    if any(isinstance(w, bool) or not isinstance(w, int) or w < 0 for w in weights) or sum(weights) <= 0:
        raise TaxError(
            "allocation weights are non-negative integers, not all zero", code="invalid_tax_request"
        )
    if total < 0:
        return [-share for share in allocate_largest_remainder(-total, weights)]
    whole = sum(weights)
    floors = [total * weight // whole for weight in weights]
    remainders = [total * weight % whole for weight in weights]
    leftover = total - sum(floors)
    # leftover < len(weights): each floor loses less than one unit.
    for index in sorted(range(len(weights)), key=lambda i: (-remainders[i], i))[:leftover]:
        floors[index] += 1
    return floors


def _split(window: LineWindow, changes: list[LocationChange]) -> list[LocatedPart]:
    start, end = _aware(window.start), _aware(window.end)
    if end < start:
        raise TaxError(f"line {window.ref} ends before it starts", code="invalid_tax_request")
    if PART_SEPARATOR in window.ref:
        raise TaxError(f"a line ref may not contain {PART_SEPARATOR!r}", code="invalid_tax_request")
    segments: list[tuple[datetime, datetime, TaxLocation]] = []
    cursor, location = start, _location_at(changes, start, window.ref)
    for change in changes:
        if start < change.effective_at < end and change.location != location:
            segments.append((cursor, change.effective_at, location))
            cursor, location = change.effective_at, change.location
    segments.append((cursor, end, location))
    if len(segments) == 1:
        return [
            LocatedPart(window.ref, window.ref, location, start, end, window.amount_minor, window.tax_code)
        ]
    weights = [(seg_end - seg_start) // _MICROSECOND for seg_start, seg_end, _ in segments]
    amounts = allocate_largest_remainder(window.amount_minor, weights)
    return [
        LocatedPart(
            f"{window.ref}{PART_SEPARATOR}{number}",
            window.ref,
            where,
            seg_start,
            seg_end,
            amount,
            window.tax_code,
        )
        for number, ((seg_start, seg_end, where), amount) in enumerate(zip(segments, amounts, strict=True), 1)
    ]


def _location_at(changes: list[LocationChange], instant: datetime, ref: str) -> TaxLocation:
    current = None
    for change in changes:
        if change.effective_at > instant:
            break
        current = change.location
    if current is None:
        raise TaxError(f"no tax location is known at the start of line {ref}", code="no_location")
    return current


def _normalized(history: Sequence[LocationChange | tuple[datetime, TaxLocation]]) -> list[LocationChange]:
    changes = [
        item if isinstance(item, LocationChange) else LocationChange(item[0], item[1]) for item in history
    ]
    changes = [LocationChange(_aware(change.effective_at), change.location) for change in changes]
    changes.sort(key=lambda change: change.effective_at)
    for earlier, later in pairwise(changes):
        if earlier.effective_at == later.effective_at and earlier.location != later.location:
            raise TaxError(
                "two different locations take effect at the same instant", code="invalid_tax_request"
            )
    return changes


def _aware(instant: datetime) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise TaxError("instants must be timezone-aware", code="invalid_tax_request")
    return instant.astimezone(UTC)
