"""Meters: filtering by type and properties, the five aggregations, dedupe, order independence."""

from __future__ import annotations

from decimal import Decimal
from random import Random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.domain.rating.errors import InvalidCatalog
from billing.domain.rating.meters import Aggregation, Meter, aggregate, numeric_value
from billing.domain.usage_events import UsageEvent
from tests.unit.rating.builders import d, usage

TOKENS = Meter("tokens", "api.call", Aggregation.SUM, "tokens", {"region": "eu"})


def test_sum_adds_the_value_property_of_matching_events_only() -> None:
    events = [
        usage("e1", tokens=1200, region="eu"),
        usage("e2", tokens=Decimal("0.5"), region="eu"),
        usage("e3", tokens="300", region="eu"),  # numeric strings are accepted
        usage("e4", tokens=1000, region="us"),  # filtered out by region
        usage("e5", type="other", tokens=1000, region="eu"),  # other event type
        usage("e6", region="eu"),  # missing value: skipped, reported
        usage("e7", tokens="lots", region="eu"),  # not numeric: skipped, reported
        usage("e8", tokens=True, region="eu"),  # a boolean is not a number
    ]
    total = aggregate(TOKENS, events)
    assert total.quantity == d("1500.5")
    assert total.events == 6
    assert total.skipped == 3


def test_count_counts_matching_events() -> None:
    meter = Meter("calls", "api.call", Aggregation.COUNT)
    events = [usage("a"), usage("b"), usage("c", type="login")]
    assert aggregate(meter, events).quantity == 2


def test_max_takes_the_largest_value_and_zero_when_there_is_none() -> None:
    meter = Meter("seats", "seats.set", Aggregation.MAX, "seats")
    events = [usage("a", type="seats.set", seats=3), usage("b", type="seats.set", seats="12"),
              usage("c", type="seats.set", seats=7)]  # fmt: skip
    assert aggregate(meter, events).quantity == 12
    assert aggregate(meter, []).quantity == 0


def test_unique_count_counts_distinct_values_by_type() -> None:
    meter = Meter("users", "api.call", Aggregation.UNIQUE_COUNT, "user")
    events = [usage("a", user="u1"), usage("b", user="u2"), usage("c", user="u1"), usage("d", user=1),
              usage("e", user=Decimal("1.0")), usage("f", user="1"), usage("g")]  # fmt: skip
    total = aggregate(meter, events)
    # "u1", "u2", the number 1 (1 and 1.0 are one number), the string "1"
    assert total.quantity == 4
    assert total.skipped == 1


def test_latest_is_the_value_of_the_greatest_timestamp_then_event_id() -> None:
    meter = Meter("storage", "storage.snapshot", Aggregation.LATEST, "gb")
    events = [
        usage("s1", "2026-03-01T00:00:00Z", type="storage.snapshot", gb=10),
        usage("s3", "2026-03-05T00:00:00Z", type="storage.snapshot", gb=30),
        usage("s2", "2026-03-05T00:00:00Z", type="storage.snapshot", gb=20),  # same instant: s3 wins
        usage("s4", "2026-03-09T00:00:00Z", type="storage.snapshot", gb="n/a"),  # unusable: skipped
    ]
    total = aggregate(meter, events)
    assert total.quantity == 30
    assert total.skipped == 1
    assert aggregate(meter, list(reversed(events))).quantity == 30


def test_duplicates_of_one_event_id_count_once() -> None:
    meter = Meter("calls", "api.call", Aggregation.COUNT)
    assert aggregate(meter, [usage("a"), usage("a"), usage("a", customer_id="cus_7")]).quantity == 2


def test_filters_compare_by_type_so_true_is_not_one_and_one_is_not_the_string() -> None:
    flagged = Meter("premium", "api.call", Aggregation.COUNT, filters={"premium": True})
    tier_one = Meter("tier1", "api.call", Aggregation.COUNT, filters={"tier": 1})
    events = [usage("a", premium=True), usage("b", premium=1), usage("c", tier=1), usage("d", tier=True),
              usage("e", tier="1"), usage("f", tier=Decimal("1.00"))]  # fmt: skip
    assert aggregate(flagged, events).quantity == 1
    assert aggregate(tier_one, events).quantity == 2


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"key": "t", "event_type": "api.call", "aggregation": "sum"}, "value_property"),
        ({"key": "t", "event_type": "api.call", "aggregation": "avg", "value_property": "x"}, "aggregation"),
        (
            {"key": "t", "event_type": "api.call", "aggregation": "count", "value_property": "x"},
            "value_property",
        ),
        ({"key": "", "event_type": "api.call", "aggregation": "count"}, "key"),
        ({"key": "t", "event_type": "api.call", "aggregation": "count", "filters": {"r": 0.5}}, "filters"),
        ({"key": "t", "event_type": "api.call", "aggregation": "count", "filter": {}}, "filter"),
    ],
)
def test_invalid_meters_are_refused_naming_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidCatalog) as caught:
        Meter.from_json(data)
    assert caught.value.code == "invalid_meter"
    assert caught.value.field == field


def test_a_meter_round_trips_through_the_api_shape() -> None:
    data = {"key": "tokens", "event_type": "api.call", "aggregation": "sum", "value_property": "tokens",
            "filters": {"region": "eu"}}  # fmt: skip
    assert Meter.from_json(data).to_json() == data


@pytest.mark.parametrize(
    ("value", "number"),
    [(3, d("3")), (d("2.5"), d("2.5")), ("12.5", d("12.5")), ("1e3", d("1E+3")), ("-4", d("-4")),
     ("NaN", None), ("Infinity", None), (" 1", None), ("", None), (None, None), ([1], None), (False, None),
     ("1e200", None)],
)  # fmt: skip
def test_numeric_values(value: object, number: Decimal | None) -> None:
    assert numeric_value(value) == number


values = st.one_of(
    st.integers(min_value=0, max_value=10**9),
    st.decimals(min_value=0, max_value=10**6, places=3),
    st.sampled_from(["7", "2.50", "oops", None]),
)
event_lists = st.lists(
    st.builds(
        lambda n, v, r, minute: usage(f"e{n}", f"2026-03-04T10:{minute:02d}:00Z", tokens=v, region=r),
        st.integers(0, 30),
        values,
        st.sampled_from(["eu", "us"]),
        st.integers(0, 59),
    ),
    max_size=25,
    unique_by=lambda e: e.event_id,
)


@given(event_lists, st.randoms(use_true_random=False), st.sampled_from(list(Aggregation)))
def test_aggregation_ignores_event_order_and_duplicates(
    events: list[UsageEvent], random: Random, aggregation: Aggregation
) -> None:
    meter = Meter("m", "api.call", aggregation, None if aggregation is Aggregation.COUNT else "tokens",
                  {"region": "eu"})  # fmt: skip
    shuffled = events + random.sample(events, k=len(events) // 2)
    random.shuffle(shuffled)
    assert aggregate(meter, shuffled) == aggregate(meter, events)
