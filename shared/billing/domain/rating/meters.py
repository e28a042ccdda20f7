"""Meters: which usage events count for a billable quantity, and how they aggregate into it.

`aggregate` is a pure function of the *set* of events: the same events in any order, with any number
of duplicates of the same (tenant, customer, event id), give the same quantity.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from billing.domain import canonical_json
from billing.domain.numbers import storable_problem
from billing.domain.rating._fields import identifier, reject_unknown, require_object
from billing.domain.rating.errors import InvalidCatalog
from billing.domain.rating.money import decimal_text, exact_arithmetic
from billing.domain.usage_events import UsageEvent

FilterValue = str | int | Decimal | bool

_NUMERIC_TEXT = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


class Aggregation(StrEnum):
    COUNT = "count"  # matching events
    SUM = "sum"  # sum of value_property
    MAX = "max"  # largest value_property (0 when there is none)
    UNIQUE_COUNT = "unique_count"  # distinct values of value_property
    LATEST = "latest"  # value_property of the event with the greatest (timestamp, event id); 0 if none


@dataclass(frozen=True)
class Meter:
    """A billable quantity: events of one type, optionally filtered by property equality, aggregated."""

    key: str
    event_type: str
    aggregation: Aggregation
    value_property: str | None = None
    filters: Mapping[str, FilterValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        identifier(self.key, "key", code="invalid_meter")
        identifier(self.event_type, "event_type", code="invalid_meter")
        try:
            aggregation = Aggregation(self.aggregation)
        except ValueError:
            raise InvalidCatalog(
                f"aggregation must be one of {', '.join(a.value for a in Aggregation)}",
                code="invalid_meter",
                field="aggregation",
            ) from None
        object.__setattr__(self, "aggregation", aggregation)
        if aggregation is Aggregation.COUNT:
            if self.value_property is not None:
                # Refused rather than ignored: a count meter with a value property was almost
                # certainly meant to be a sum.
                raise InvalidCatalog(
                    "value_property is not used by a count meter (did you mean sum?)",
                    code="invalid_meter",
                    field="value_property",
                )
        else:
            identifier(self.value_property, "value_property", code="invalid_meter")
        if not isinstance(self.filters, Mapping):
            raise InvalidCatalog("filters must be an object", code="invalid_meter", field="filters")
        for name, value in self.filters.items():
            identifier(name, "filters", code="invalid_meter")
            if not _is_filter_value(value):
                raise InvalidCatalog(
                    f"filter {name!r} must be a string, a number or a boolean",
                    code="invalid_meter",
                    field="filters",
                )
        object.__setattr__(self, "filters", dict(self.filters))

    @classmethod
    def from_json(cls, data: Any) -> Meter:
        """A meter from the API shape `{"key", "event_type", "aggregation", "value_property", "filters"}`."""
        data = require_object(data, "a meter", code="invalid_meter")
        reject_unknown(
            data,
            ("key", "event_type", "aggregation", "value_property", "filters"),
            "meter",
            code="invalid_meter",
        )
        return cls(
            key=data.get("key"),
            event_type=data.get("event_type"),
            aggregation=data.get("aggregation"),
            value_property=data.get("value_property"),
            filters=data.get("filters") or {},
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "event_type": self.event_type,
            "aggregation": self.aggregation.value,
            "value_property": self.value_property,
            "filters": dict(self.filters),
        }

    def matches(self, event: UsageEvent) -> bool:
        """The event is of the meter's type and every filter property equals its filter value."""
        if event.type != self.event_type:
            return False
        return all(
            name in event.properties and _filter_equal(event.properties[name], expected)
            for name, expected in self.filters.items()
        )


@dataclass(frozen=True)
class MeterTotal:
    """The aggregated quantity of one meter over some events, with what was counted and skipped."""

    meter: str
    quantity: Decimal
    events: int  # distinct matching events
    skipped: int  # matching events whose value was missing or unusable (not numeric, for sum/max/latest)


def aggregate(meter: Meter, events: Iterable[UsageEvent]) -> MeterTotal:
    """Aggregate the events of a window for one meter; the caller chooses the window."""
    matching = [event for event in dedupe(events) if meter.matches(event)]
    skipped = 0
    quantity = Decimal(0)
    with exact_arithmetic():
        if meter.aggregation is Aggregation.COUNT:
            quantity = Decimal(len(matching))
        elif meter.aggregation is Aggregation.UNIQUE_COUNT:
            seen: set[tuple[str, str]] = set()
            for event in matching:
                key = _distinct_key(event.properties.get(meter.value_property or ""))
                if key is None:
                    skipped += 1
                else:
                    seen.add(key)
            quantity = Decimal(len(seen))
        else:
            valued: list[tuple[UsageEvent, Decimal]] = []
            for event in matching:
                value = numeric_value(event.properties.get(meter.value_property or ""))
                if value is None:
                    skipped += 1
                else:
                    valued.append((event, value))
            if meter.aggregation is Aggregation.SUM:
                quantity = sum((value for _, value in valued), Decimal(0))
            elif meter.aggregation is Aggregation.MAX:
                quantity = max((value for _, value in valued), default=Decimal(0))
            elif valued:  # LATEST; ties on timestamp broken by event id so any order gives one answer
                quantity = max(valued, key=lambda pair: (pair[0].timestamp, pair[0].event_id))[1]
    return MeterTotal(meter=meter.key, quantity=_canonical(quantity), events=len(matching), skipped=skipped)


def dedupe(events: Iterable[UsageEvent]) -> list[UsageEvent]:
    """One event per (tenant, customer, event id), as the events table guarantees, repeated here to be safe.

    Should two stored copies differ, the one received first (then the smaller content hash) wins, as the
    conditional Put at ingest would have kept it; the choice does not depend on the input order.
    """
    chosen: dict[tuple[str, str, str], UsageEvent] = {}
    for event in events:
        key = (event.tenant_id, event.customer_id, event.event_id)
        kept = chosen.get(key)
        if kept is None or (event.received_at, event.content_hash) < (kept.received_at, kept.content_hash):
            chosen[key] = event
    return [chosen[key] for key in sorted(chosen)]


def numeric_value(value: Any) -> Decimal | None:
    """A property value as a number, or None: ints, finite Decimals and numeric strings ("12.5", "1e3")."""
    number: Decimal
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, Decimal):
        number = value
    elif isinstance(value, str) and _NUMERIC_TEXT.match(value):
        number = Decimal(value)
    else:
        return None
    if not number.is_finite():
        return None
    if number.is_zero():
        return Decimal(0)
    # Values outside DynamoDB's exact number range are not usage, whatever the client meant.
    return None if storable_problem(number) is not None else number


def _canonical(number: Decimal) -> Decimal:
    # One representation per value (2.0 and 2.00 are the same quantity), so `max` over equal values
    # written differently cannot depend on the order of the events.
    return Decimal(decimal_text(number))


def _distinct_key(value: Any) -> tuple[str, str] | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return ("bool", "true" if value else "false")
    if isinstance(value, int | Decimal):
        number = numeric_value(value)
        return None if number is None else ("number", decimal_text(number))
    if isinstance(value, str):
        return ("string", value)
    try:
        return ("json", canonical_json.dumps(value))
    except (TypeError, ValueError):
        return None


def _is_filter_value(value: Any) -> bool:
    if isinstance(value, bool | str | int):
        return True
    return isinstance(value, Decimal) and value.is_finite()


def _filter_equal(actual: Any, expected: FilterValue) -> bool:
    # Type-aware equality: Python says True == 1 and "1" != 1; a filter on a flag must not match a count.
    if isinstance(expected, bool) or isinstance(actual, bool):
        return isinstance(expected, bool) and isinstance(actual, bool) and actual is expected
    if isinstance(expected, str):
        return isinstance(actual, str) and actual == expected
    return isinstance(actual, int | Decimal) and Decimal(actual) == Decimal(expected)
