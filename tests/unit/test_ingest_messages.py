"""Packing events into queue messages and batches; decoding them back (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.domain import canonical_json
from billing.domain.errors import PoisonMessage
from billing.domain.ingest_messages import (
    MAX_ENTRIES_PER_BATCH,
    decode_message,
    group_for_batches,
    pack_events,
)
from billing.domain.usage_events import UsageEvent

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def make_event(index: int, padding: int) -> UsageEvent:
    return UsageEvent(
        tenant_id="acme",
        customer_id="cus_1",
        event_id=f"evt_{index}",
        type="api.call",
        timestamp=NOW,
        received_at=NOW,
        properties={"pad": "x" * padding, "n": index},
    )


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=3000), max_size=120),
    st.integers(min_value=4096, max_value=64 * 1024),
)
def test_packing_keeps_every_event_once_in_order_within_the_size_limit(
    paddings: list[int], limit: int
) -> None:
    events = [make_event(index, padding) for index, padding in enumerate(paddings)]
    messages = pack_events("acme", events, limit)

    unpacked = [item for message in messages for item in message.events]
    assert unpacked == [event.to_message() for event in events]
    for message in messages:
        assert len(message.body().encode()) <= limit
        tenant, raw = decode_message(message.body())
        assert tenant == "acme"
        assert [UsageEvent.from_message(tenant, item) for item in raw] == [
            e for e in events if e.to_message() in message.events
        ]


def test_a_thousand_small_events_fit_in_one_message() -> None:
    messages = pack_events("acme", [make_event(i, 10) for i in range(1000)], 256 * 1024)
    assert len(messages) == 1


@given(st.lists(st.integers(min_value=1, max_value=9000), max_size=60))
def test_batches_hold_at_most_ten_entries_and_the_byte_limit(sizes: list[int]) -> None:
    bodies = ["x" * size for size in sizes]
    batches = group_for_batches(bodies, 32 * 1024)

    assert [body for batch in batches for body in batch] == bodies
    for batch in batches:
        assert 1 <= len(batch) <= MAX_ENTRIES_PER_BATCH
        assert len(batch) == 1 or sum(len(body) for body in batch) <= 32 * 1024


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("not json", "undecodable"),
        ("[1]", "unknown_format"),
        ('{"v": 2, "tenant_id": "a", "events": []}', "unknown_format"),
        ('{"v": 1, "events": []}', "schema_invalid"),
        ('{"v": 1, "tenant_id": "a", "events": {}}', "schema_invalid"),
    ],
)
def test_foreign_messages_are_poison(body: str, code: str) -> None:
    with pytest.raises(PoisonMessage) as caught:
        decode_message(body)
    assert caught.value.code == code


def test_canonical_json_keeps_decimals_exact_and_sorts_keys() -> None:
    from decimal import Decimal

    text = canonical_json.dumps({"b": Decimal("0.000020"), "a": [1, True, None, "é"]})
    assert text == '{"a":[1,true,null,"é"],"b":0.000020}'
    assert canonical_json.loads(text) == {"a": [1, True, None, "é"], "b": Decimal("0.000020")}
    with pytest.raises(TypeError):
        canonical_json.dumps({"f": 0.1})
