"""Client events as the edge reads them (the request models, CloudEvents mapping) and the domain's
limits, timestamps and shards."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.api.models.events import validate_event
from billing.domain.errors import InvalidEvent
from billing.domain.usage_events import (
    EventLimits,
    UsageEvent,
    check_limits,
    format_timestamp,
    parse_timestamp,
    shard_for,
)

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
LIMITS = EventLimits()


def parse(raw: object, received_at: datetime = NOW) -> UsageEvent:
    """What POST /v1/events does with one raw event: the request model, then the domain's limits."""
    event = validate_event(raw, cloudevent=False).to_event("acme", received_at)
    check_limits(event, received_at, LIMITS)
    return event


def problem(raw: object) -> tuple[str, str | None]:
    with pytest.raises(InvalidEvent) as caught:
        parse(raw)
    return caught.value.code, caught.value.field


def test_a_full_event_is_normalized_to_utc() -> None:
    event = parse(
        {
            "id": "evt_1",
            "customer_id": "cus_42",
            "type": "api.call",
            "timestamp": "2026-11-25T10:00:00+02:00",
            "properties": {"tokens": 1200, "cost": Decimal("0.00002")},
        }
    )
    assert event.timestamp == datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    assert event.properties == {"tokens": 1200, "cost": Decimal("0.00002")}
    assert event.to_message()["timestamp"] == "2026-11-25T08:00:00.000000Z"


@pytest.mark.parametrize(
    ("raw", "code", "field"),
    [
        ("not an object", "invalid_event", None),
        ({"customer_id": "c", "type": "t"}, "missing_field", "id"),
        ({"id": "", "customer_id": "c", "type": "t"}, "invalid_field", "id"),
        ({"id": "x" * 129, "customer_id": "c", "type": "t"}, "invalid_field", "id"),
        ({"id": 7, "customer_id": "c", "type": "t"}, "invalid_field", "id"),
        ({"id": "a\nb", "customer_id": "c", "type": "t"}, "invalid_field", "id"),
        ({"id": " a", "customer_id": "c", "type": "t"}, "invalid_field", "id"),
        ({"id": "a", "type": "t"}, "missing_field", "customer_id"),
        ({"id": "a", "customer_id": "c"}, "missing_field", "type"),
        ({"id": "a", "customer_id": "c", "type": "t", "timestmp": "x"}, "unknown_field", "timestmp"),
        (
            {"id": "a", "customer_id": "c", "type": "t", "timestamp": "2026-11-25"},
            "invalid_field",
            "timestamp",
        ),
        (
            {"id": "a", "customer_id": "c", "type": "t", "timestamp": "2026-11-25T09:00:00"},
            "invalid_field",
            "timestamp",
        ),
        ({"id": "a", "customer_id": "c", "type": "t", "timestamp": 1795597200}, "invalid_field", "timestamp"),
        ({"id": "a", "customer_id": "c", "type": "t", "properties": []}, "invalid_field", "properties"),
        (
            {"id": "a", "customer_id": "c", "type": "t", "properties": {"x": Decimal("1E+200")}},
            "invalid_field",
            "properties.x",
        ),
        (
            {"id": "a", "customer_id": "c", "type": "t", "properties": {"x": 10**40 + 1}},
            "invalid_field",
            "properties.x",
        ),
        (
            {"id": "a", "customer_id": "c", "type": "t", "properties": {"x": 1.5}},
            "invalid_field",
            "properties",
        ),
        ({"id": "a", "customer_id": "c", "type": "t", "properties": {"": 1}}, "invalid_field", "properties"),
        (
            {"id": "a", "customer_id": "c", "type": "t", "properties": {"p": "x" * 40000}},
            "event_too_large",
            None,
        ),
    ],
)
def test_invalid_events_name_their_problem(raw: object, code: str, field: str | None) -> None:
    assert problem(raw) == (code, field)


def test_deeply_nested_properties_are_refused() -> None:
    nested: dict = {"leaf": 1}
    for _ in range(10):
        nested = {"n": nested}
    assert problem({"id": "a", "customer_id": "c", "type": "t", "properties": nested})[0] == "invalid_field"


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [
        (timedelta(days=-35), True),
        (timedelta(days=-35, microseconds=-1), False),
        (timedelta(minutes=5), True),
        (timedelta(minutes=5, microseconds=1), False),
    ],
)
def test_the_timestamp_window_is_35_days_back_and_5_minutes_ahead(offset: timedelta, accepted: bool) -> None:
    raw = {"id": "a", "customer_id": "c", "type": "t", "timestamp": format_timestamp(NOW + offset)}
    if accepted:
        assert parse(raw).timestamp == NOW + offset
    else:
        assert problem(raw)[0] in {"timestamp_too_old", "timestamp_in_future"}


def test_missing_or_null_timestamp_means_the_time_of_receipt() -> None:
    assert parse({"id": "a", "customer_id": "c", "type": "t"}).timestamp == NOW
    assert parse({"id": "a", "customer_id": "c", "type": "t", "timestamp": None}).timestamp == NOW


def test_nanosecond_fractions_are_truncated_to_microseconds() -> None:
    assert parse_timestamp("2026-11-25T09:00:00.123456789Z") == datetime(
        2026, 11, 25, 9, 0, 0, 123456, tzinfo=UTC
    )


def test_cloudevent_maps_subject_type_time_and_data() -> None:
    event = validate_event(
        {
            "specversion": "1.0",
            "id": "ce-1",
            "source": "/app",
            "type": "api.call",
            "subject": "cus_1",
            "time": "2026-11-25T08:00:00Z",
            "data": {"tokens": 3},
            "traceparent": "00-abc",  # an extension attribute: allowed, ignored
        },
        cloudevent=True,
    )
    assert (event.id, event.customer_id, event.type, event.timestamp, event.properties) == (
        "ce-1",
        "cus_1",
        "api.call",
        datetime(2026, 11, 25, 8, 0, tzinfo=UTC),
        {"tokens": 3},
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"specversion": "0.3"}, "specversion"),
        ({"source": None}, "source"),
        ({"subject": None}, "subject"),
        ({"data_base64": "AAAA"}, "data_base64"),
        ({"datacontenttype": "text/plain"}, "datacontenttype"),
    ],
)
def test_invalid_cloudevents_are_rejected(change: dict, field: str) -> None:
    base = {"specversion": "1.0", "id": "ce-1", "source": "/app", "type": "t", "subject": "c"}
    with pytest.raises(InvalidEvent) as caught:
        validate_event(base | change, cloudevent=True)
    assert caught.value.field == field


def test_message_form_round_trips() -> None:
    event = parse({"id": "a", "customer_id": "c", "type": "t", "properties": {"n": {"x": [1, "two", None]}}})
    assert UsageEvent.from_message("acme", event.to_message()) == event


def test_content_hash_ignores_receipt_time_but_not_content() -> None:
    raw = {
        "id": "a",
        "customer_id": "c",
        "type": "t",
        "timestamp": "2026-11-25T08:00:00Z",
        "properties": {"n": 1},
    }
    first = parse(raw)
    later = parse(raw, received_at=NOW + timedelta(hours=1))
    other = parse(raw | {"properties": {"n": 2}})
    assert first.content_hash == later.content_hash != other.content_hash


@given(st.text(min_size=1, max_size=128), st.integers(min_value=1, max_value=64))
def test_shard_is_stable_and_in_range(event_id: str, shards: int) -> None:
    shard = shard_for(event_id, shards)
    assert 0 <= shard < shards
    assert shard == shard_for(event_id, shards)


def test_shards_spread_ids_evenly() -> None:
    counts = [0] * 8
    for index in range(8000):
        counts[shard_for(f"evt_{index}", 8)] += 1
    assert min(counts) > 850  # 1000 expected per shard


@given(st.datetimes(timezones=st.just(UTC)))
def test_formatted_timestamps_parse_back_and_sort_like_instants(moment: datetime) -> None:
    text = format_timestamp(moment)
    assert parse_timestamp(text) == moment
    assert len(text) == 27


json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=40) | st.decimals(allow_nan=False)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
event_like = st.dictionaries(
    st.sampled_from(["id", "customer_id", "type", "timestamp", "properties", "extra"]),
    json_values,
    max_size=6,
)


@given(event_like | json_values)
def test_parse_event_answers_any_json_with_an_event_or_invalid_event(raw: object) -> None:
    with contextlib.suppress(InvalidEvent):
        assert isinstance(parse(raw), UsageEvent)


@pytest.mark.parametrize(
    "number",
    [
        Decimal("1E-131"),  # boto3 would send it; DynamoDB refuses anything below 1E-130
        Decimal("1E+126"),  # and anything above 9.99E+125
        Decimal("-1E-131"),
        Decimal("0E-500"),  # zero, but with an exponent DynamoDB clamps
        Decimal("0E+500"),
        Decimal("1." + "0" * 42),  # 43 digits: trailing zeros are digits DynamoDB must keep
        Decimal("1E+127"),
        Decimal("1" * 39),
    ],
)
def test_numbers_dynamodb_cannot_store_exactly_are_rejected_at_the_door(number: Decimal) -> None:
    assert problem({"id": "a", "customer_id": "c", "type": "t", "properties": {"v": number}}) == (
        "invalid_field",
        "properties.v",
    )


@pytest.mark.parametrize("number", [Decimal("0"), Decimal("1E-130"), Decimal("9.99E+125"), Decimal("1" * 38)])
def test_numbers_at_dynamodbs_limits_are_accepted(number: Decimal) -> None:
    assert (
        parse({"id": "a", "customer_id": "c", "type": "t", "properties": {"v": number}}).properties["v"]
        == number
    )


@pytest.mark.parametrize("properties", [{"x": "\ud800"}, {"\udfff": 1}, {"n": ["ok", {"y": "a\ud800b"}]}])
def test_text_that_is_not_valid_unicode_is_rejected(properties: dict) -> None:
    assert (
        problem({"id": "a", "customer_id": "c", "type": "t", "properties": properties})[0] == "invalid_field"
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "4242424242424242"),  # a Luhn-valid card number
        ("id", "4242-4242-4242-4242"),
        ("customer_id", "jane@example.com"),
        ("customer_id", "+1 (555) 123-4567"),
        ("type", "+15551234567"),
        ("id", "evt/1"),
        ("id", "evt?1"),
        ("id", "evt#1"),
        ("id", "evt%201"),
        ("customer_id", "café"),
        ("type", "api call"),
    ],
)
def test_ids_that_are_personal_data_or_that_a_url_would_mangle_are_refused(field: str, value: str) -> None:
    raw = {"id": "a", "customer_id": "c", "type": "t", field: value}

    assert problem(raw) == ("invalid_field", field)


@pytest.mark.parametrize(
    "value", ["evt_1", "cus:42", "A-Z.0-9~!$&'()*+,;=@[]^`{|}<>\"\\", "x" * 128, "2026-03-01"]
)
def test_ids_of_printable_ascii_without_url_delimiters_are_accepted(value: str) -> None:
    assert parse({"id": value, "customer_id": value, "type": value}).event_id == value
