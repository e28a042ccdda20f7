"""What became of a stored usage event, as of the moment it is asked: counted, late or unbilled.

- `unbilled`: no subscription of the customer covers the event's timestamp (an unknown customer, an
  event before the start or after a cancel). Nothing bills it; it is listed so that it is never silently
  dropped, and it becomes `counted` if a subscription covering it is created later.
- `late`: it was stored after the invoice of its period was finalized; the next close re-rates that
  period and bills the difference as an `adjustment` line.
- `counted`: a subscription covers it and it is (or will be) billed in its period.
Pure: the facts (the customer's subscriptions, when its period was finalized) are passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from billing.domain.catalog import SubscriptionSpan
from billing.domain.rating.periods import utc


class EventStatus(StrEnum):
    COUNTED = "counted"
    LATE = "late"
    UNBILLED = "unbilled"


@dataclass(frozen=True)
class StoredEvent:
    """A usage event as the events table holds it (properties already stripped of personal data)."""

    tenant_id: str
    customer_id: str
    event_id: str
    type: str
    timestamp: datetime
    received_at: datetime
    stored_at: datetime
    properties: dict[str, Any]


# A window of time [start, end); None is unbounded on that side.
Window = tuple[datetime | None, datetime | None]


def event_status(
    stored_at: datetime, covering: SubscriptionSpan | None, finalized_at: datetime | None
) -> EventStatus:
    """The status of an event stored at `stored_at`, given the subscription covering its timestamp (if
    any) and when the invoice of its period was finalized (None: not yet)."""
    if covering is None:
        return EventStatus.UNBILLED
    if finalized_at is not None and utc(stored_at) > utc(finalized_at):
        return EventStatus.LATE
    return EventStatus.COUNTED


def uncovered_windows(spans: Iterable[SubscriptionSpan]) -> list[Window]:
    """The windows of time no subscription covers, in order: where unbilled events' timestamps lie."""
    covered = sorted(
        ((span.start, span.end) for span in spans if span.end is None or span.end > span.start),
        key=lambda interval: interval[0],  # a running span's end (None) is never compared
    )
    windows: list[Window] = []
    cursor: datetime | None = None  # everything before `cursor` is accounted for (None: nothing yet)
    for start, end in covered:
        if cursor is None or start > cursor:
            windows.append((cursor, start))
        if end is None:
            return windows
        cursor = end if cursor is None else max(cursor, end)
    windows.append((cursor, None))
    return windows
