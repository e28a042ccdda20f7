"""The webhook queue's messages (pure): lane kicks and replays as text and back, what is not one of ours,
and how long a timer message is delayed (the queue delays 15 minutes at most: longer timers are chained)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.domain.errors import PoisonMessage
from billing.domain.webhooks.messages import (
    MAX_QUEUE_DELAY_SECONDS,
    LaneKick,
    ReplayRequest,
    decode,
    queue_delay,
)

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
KICK = LaneKick("acme", "we_1", "cus_42")
REPLAY = ReplayRequest("acme", "whd_0123456789abcdef0123456789abcdef")

# The characters of the ids the system makes (and of every id): printable ASCII but / ? # % and spaces.
key_ids = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="/?#%"),
    min_size=1,
    max_size=128,
)
zones = st.one_of(
    st.just(UTC),
    st.timezones(),
    st.integers(-14 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes))),
)
instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=zones)


def lane_message(**fields: object) -> str:
    return json.dumps(
        {"kind": "lane", "tenant_id": "acme", "endpoint_id": "we_1", "customer_id": "cus_42", **fields}
    )


def replay_message(**fields: object) -> str:
    return json.dumps({"kind": "replay", "tenant_id": "acme", "delivery_id": "whd_1", **fields})


def poison(body: str) -> PoisonMessage:
    with pytest.raises(PoisonMessage) as refused:
        decode(body)
    return refused.value


def in_utc(kick: LaneKick) -> LaneKick:
    return LaneKick(kick.tenant_id, kick.endpoint_id, kick.customer_id, kick.due and kick.due.astimezone(UTC))


# --- bodies ------------------------------------------------------------------------------------------


def test_a_lane_kick_is_compact_json_with_sorted_keys() -> None:
    assert KICK.body() == '{"customer_id":"cus_42","endpoint_id":"we_1","kind":"lane","tenant_id":"acme"}'


def test_a_timer_kick_carries_its_due_time_in_utc_to_the_microsecond() -> None:
    due = datetime(2026, 3, 1, 13, 0, 0, 250, tzinfo=timezone(timedelta(hours=1)))
    kick = LaneKick("acme", "we_1", "cus_42", due)
    assert kick.body() == (
        '{"customer_id":"cus_42","due":"2026-03-01T12:00:00.000250Z","endpoint_id":"we_1",'
        '"kind":"lane","tenant_id":"acme"}'
    )


def test_a_replay_request_is_compact_json_with_sorted_keys() -> None:
    assert (
        REPLAY.body()
        == '{"delivery_id":"whd_0123456789abcdef0123456789abcdef","kind":"replay","tenant_id":"acme"}'
    )


def test_a_kick_names_its_lane() -> None:
    assert KICK.lane == ("acme", "we_1", "cus_42")
    assert LaneKick("acme", "we_1", "cus_42", NOW).lane == KICK.lane


# --- decode: round trips -----------------------------------------------------------------------------


def test_a_lane_kick_reads_back_as_itself() -> None:
    assert decode(KICK.body()) == KICK
    timer = LaneKick("acme", "we_1", "cus_42", NOW + timedelta(microseconds=1))
    assert decode(timer.body()) == timer


def test_a_replay_request_reads_back_as_itself() -> None:
    assert decode(REPLAY.body()) == REPLAY


@given(tenant_id=key_ids, endpoint_id=key_ids, customer_id=key_ids, due=st.none() | instants)
def test_any_lane_kick_reads_back_as_the_same_lane_and_instant(
    tenant_id: str, endpoint_id: str, customer_id: str, due: datetime | None
) -> None:
    kick = LaneKick(tenant_id, endpoint_id, customer_id, due)
    decoded = decode(kick.body())
    assert decoded == in_utc(kick)
    assert isinstance(decoded, LaneKick)
    assert decoded.due is None or decoded.due.tzinfo is UTC
    assert decoded.body() == kick.body()


@given(tenant_id=key_ids, delivery_id=key_ids)
def test_any_replay_request_reads_back_as_itself(tenant_id: str, delivery_id: str) -> None:
    request = ReplayRequest(tenant_id, delivery_id)
    assert decode(request.body()) == request


def test_a_digest_id_whose_digits_pass_the_luhn_check_is_still_read() -> None:
    # Ids the system makes are hex digests: a run of their digits may look like a card number.
    request = ReplayRequest("acme", "whd_4111111111111111")
    assert decode(request.body()) == request


def test_fields_a_message_does_not_need_are_ignored() -> None:
    assert decode(lane_message(delivery_id="whd_1", extra=[1, 2])) == KICK
    assert decode(replay_message(endpoint_id="we_1", due="nonsense")) == ReplayRequest("acme", "whd_1")


def test_a_due_time_with_an_offset_is_read_as_the_same_instant_in_utc() -> None:
    kick = decode(lane_message(due="2026-03-01T13:00:00+01:00"))
    assert isinstance(kick, LaneKick)
    assert kick.due == NOW
    assert kick.due is not None
    assert kick.due.tzinfo is UTC


def test_a_due_of_null_is_a_plain_kick() -> None:
    assert decode(lane_message(due=None)) == KICK


# --- decode: what is not one of ours -----------------------------------------------------------------


@pytest.mark.parametrize("body", ["", "not json", "{", "{'kind': 'lane'}", '{"kind": "lane",}'])
def test_a_message_that_is_not_json_is_poison(body: str) -> None:
    refused = poison(body)
    assert refused.code == "undecodable"
    assert refused.message == "webhook queue message is not JSON"


@pytest.mark.parametrize("body", ["[]", "[1]", "1", "null", '"lane"', "true"])
def test_a_message_that_is_not_an_object_is_poison(body: str) -> None:
    refused = poison(body)
    assert refused.code == "schema_invalid"
    assert refused.message == "webhook queue message is not an object"


@pytest.mark.parametrize(
    "body",
    [
        "{}",
        lane_message(kind="replays"),
        lane_message(kind="LANE"),
        lane_message(kind=None),
        lane_message(kind=["lane"]),
        json.dumps({"tenant_id": "acme", "endpoint_id": "we_1", "customer_id": "cus_42"}),
    ],
)
def test_a_message_of_an_unknown_kind_is_poison(body: str) -> None:
    refused = poison(body)
    assert refused.code == "schema_invalid"
    assert refused.message == "webhook queue message names no lane, delivery or endpoint"


@pytest.mark.parametrize("name", ["tenant_id", "endpoint_id", "customer_id"])
@pytest.mark.parametrize("bad", [None, "", "a/b", "a b", "a?b", "a#b", "50%", "é", "x" * 129, 42, ["acme"]])
def test_a_lane_kick_without_a_valid_id_is_poison(name: str, bad: object) -> None:
    assert poison(lane_message(**{name: bad})).code == "schema_invalid"


@pytest.mark.parametrize("name", ["tenant_id", "endpoint_id", "customer_id"])
def test_a_lane_kick_missing_an_id_is_poison(name: str) -> None:
    message = json.loads(lane_message())
    del message[name]
    assert poison(json.dumps(message)).code == "schema_invalid"


@pytest.mark.parametrize("name", ["tenant_id", "delivery_id"])
@pytest.mark.parametrize("bad", [None, "", "a/b", "x" * 129, 7])
def test_a_replay_without_a_valid_id_is_poison(name: str, bad: object) -> None:
    assert poison(replay_message(**{name: bad})).code == "schema_invalid"


def test_a_replay_naming_a_lane_instead_of_a_delivery_is_poison() -> None:
    assert poison(lane_message(kind="replay")).code == "schema_invalid"


def test_an_id_of_128_characters_is_still_read() -> None:
    assert decode(lane_message(customer_id="c" * 128)) == LaneKick("acme", "we_1", "c" * 128)


@pytest.mark.parametrize(
    "due",
    [
        "tomorrow",
        "",
        "2026-03-01",
        "2026-03-01T12:00:00",  # no offset
        "2026-02-30T12:00:00Z",
        "2026-03-01T12:00:00+25:00",
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
        1767225600,
        ["2026-03-01T12:00:00Z"],
    ],
)
def test_a_lane_kick_with_an_unreadable_due_time_is_poison(due: object) -> None:
    refused = poison(lane_message(due=due))
    assert refused.code == "schema_invalid"
    assert refused.message == "webhook queue message has an unreadable due time"


def test_a_deeply_nested_message_is_poison_not_a_crash() -> None:
    # Not one of ours: it must be dropped as poison, not fail (and be redelivered) again and again.
    # Well-formed JSON of 4 KB, far below the queue's 256 KB: json.loads raises RecursionError on it.
    nested = "[" * 2_000 + "]" * 2_000
    assert poison(nested).code in ("undecodable", "schema_invalid")
    assert poison('{"kind": "lane", "x": ' + nested + "}").code in ("undecodable", "schema_invalid")


@given(body=st.text(max_size=50))
def test_any_text_is_read_as_a_message_or_refused_as_poison(body: str) -> None:
    try:
        decoded = decode(body)
    except PoisonMessage:
        return
    assert isinstance(decoded, LaneKick | ReplayRequest)


# --- queue_delay -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("due", "delay"),
    [
        (NOW, 0),
        (NOW - timedelta(hours=1), 0),
        (NOW + timedelta(microseconds=1), 1),
        (NOW + timedelta(seconds=10), 10),
        (NOW + timedelta(seconds=10, milliseconds=200), 11),
        (NOW + timedelta(seconds=899, microseconds=999_999), 900),
        (NOW + timedelta(seconds=900), 900),
        (NOW + timedelta(seconds=901), 900),
        (NOW + timedelta(days=1), 900),
    ],
)
def test_a_timer_is_delayed_until_its_due_time_rounded_up_at_most_fifteen_minutes(
    due: datetime, delay: int
) -> None:
    assert queue_delay(due, NOW) == delay


def test_the_queues_limit_is_fifteen_minutes() -> None:
    assert MAX_QUEUE_DELAY_SECONDS == 900


def test_the_delay_does_not_depend_on_the_zones_of_the_two_instants() -> None:
    due = (NOW + timedelta(seconds=42)).astimezone(timezone(timedelta(hours=-5)))
    assert queue_delay(due, NOW.astimezone(timezone(timedelta(hours=9)))) == 42


@given(due=instants, now=instants)
def test_a_delay_is_within_the_queues_limit_and_never_early(due: datetime, now: datetime) -> None:
    delay = queue_delay(due, now)
    assert 0 <= delay <= MAX_QUEUE_DELAY_SECONDS
    arrival, due_utc = now.astimezone(UTC) + timedelta(seconds=delay), due.astimezone(UTC)
    if delay == 0:
        assert due_utc <= arrival
    elif delay < MAX_QUEUE_DELAY_SECONDS:
        # Not held back by the limit: the message arrives at its due time, less than a second late.
        assert due_utc <= arrival < due_utc + timedelta(seconds=1)
    else:
        assert due_utc > arrival - timedelta(seconds=1)


@given(
    now=instants,
    wait=st.one_of(
        st.integers(0, 86400 * 3).map(lambda seconds: timedelta(seconds=seconds)),
        st.integers(1, 86400 * 3 * 10**6).map(lambda micros: timedelta(microseconds=micros)),
    ),
)
def test_chaining_delays_reaches_the_due_time(now: datetime, wait: timedelta) -> None:
    now = now.astimezone(UTC)  # instants the clock gives
    due = now + wait
    hops, at = 0, now
    while (delay := queue_delay(due, at)) > 0:
        at += timedelta(seconds=delay)
        hops += 1
    assert at >= due
    assert at - due < timedelta(seconds=1)
    if wait % timedelta(seconds=1) == timedelta(0):
        assert at == due  # a whole number of seconds away: reached exactly
    assert hops == math.ceil(wait / timedelta(seconds=MAX_QUEUE_DELAY_SECONDS))
