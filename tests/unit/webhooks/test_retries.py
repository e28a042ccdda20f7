"""The retry schedule of a webhook delivery (pure): delays, jitter, Retry-After, exhaustion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.domain.webhooks.retries import (
    DEFAULT_RETRY_SCHEDULE,
    JITTER_FRACTION,
    MAX_RETRY_AFTER,
    RetryDecision,
    RetrySchedule,
    disables_endpoint,
    is_success,
    jittered_delay,
    next_attempt,
    parse_retry_after,
    parse_schedule,
)

FAILED_AT = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
DELIVERY = "dlv_01JABCDEF0123456789ABCDEFG"

delivery_ids = st.text(min_size=1, max_size=60)
delays = st.integers(min_value=1, max_value=86400 * 7)


def plus_ten_percent(delay_seconds: int) -> timedelta:
    # Exact (whole milliseconds), so a bound compared against cannot be rounded past.
    return timedelta(milliseconds=delay_seconds * 1100)


# --- the schedule ------------------------------------------------------------------------------------------


def test_the_default_schedule_gives_ten_attempts() -> None:
    assert DEFAULT_RETRY_SCHEDULE.max_attempts == 10
    assert DEFAULT_RETRY_SCHEDULE.delays == (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)


def test_the_default_schedule_is_5s_5min_30min_2h_5h_10h_14h_20h_24h() -> None:
    hours = [timedelta(seconds=delay) for delay in DEFAULT_RETRY_SCHEDULE.delays]
    assert hours == [
        timedelta(seconds=5),
        timedelta(minutes=5),
        timedelta(minutes=30),
        timedelta(hours=2),
        timedelta(hours=5),
        timedelta(hours=10),
        timedelta(hours=14),
        timedelta(hours=20),
        timedelta(hours=24),
    ]


def test_the_attempts_count_is_one_more_than_the_delays_the_first_attempt_being_immediate() -> None:
    assert RetrySchedule((60,)).max_attempts == 2
    assert RetrySchedule(tuple(range(1, 31))).max_attempts == 31


@pytest.mark.parametrize(
    "delays",
    [(), tuple(range(1, 32)), (0,), (-5,), (5, 0), (86400 * 7 + 1,)],
)
def test_a_schedule_outside_1_to_30_delays_of_1_s_to_a_week_is_refused(delays: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="retry"):
        RetrySchedule(delays)


def test_a_schedule_of_the_extreme_sizes_and_delays_is_accepted() -> None:
    assert RetrySchedule((1,)).delays == (1,)
    assert RetrySchedule((86400 * 7,) * 30).max_attempts == 31


@pytest.mark.parametrize("delays", [[5, 300], (5.0,), (True,), ("5",)])
def test_a_schedule_of_other_than_a_tuple_of_ints_is_refused(delays: object) -> None:
    with pytest.raises(TypeError):
        RetrySchedule(delays)  # type: ignore[arg-type]


# --- parse_schedule ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "delays"),
    [
        ("1,2,3", (1, 2, 3)),
        (" 5 , 300 ", (5, 300)),
        ("1, 2,5", (1, 2, 5)),
        ("60", (60,)),
        ("5,300,1800,7200,18000,36000,50400,72000,86400", DEFAULT_RETRY_SCHEDULE.delays),
        ("007", (7,)),
        (",".join(["1"] * 30), (1,) * 30),
    ],
)
def test_parse_schedule_reads_comma_separated_seconds(text: str, delays: tuple[int, ...]) -> None:
    assert parse_schedule(text) == RetrySchedule(delays)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("0", "entry 1 ('0') is out of range"),
        ("-1", "entry 1 ('-1') is not a whole number"),
        ("a", "entry 1 ('a') is not a whole number"),
        ("5,a", "entry 2 ('a') is not a whole number"),
        ("1,,2", "entry 2 is empty"),
        ("1,2,", "entry 3 is empty"),
        ("1.5", "entry 1 ('1.5') is not a whole number"),
        ("+5", "entry 1 ('+5') is not a whole number"),
        ("5_0", "entry 1 ('5_0') is not a whole number"),
        ("5 0", "entry 1 ('5 0') is not a whole number"),
        ("\u0665", "is not a whole number"),  # an Arabic-Indic five: int() would read it
        ("604801", "entry 1 ('604801') is out of range"),
        ("5," + "9" * 5000, "entry 2 ('" + "9" * 5000 + "') is out of range"),
        ("000", "entry 1 ('000') is out of range"),
        (",".join(["1"] * 31), "31 entries; at most 30"),
    ],
)
def test_parse_schedule_refuses_naming_the_bad_entry(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="retry schedule") as refused:
        parse_schedule(text)
    assert message in str(refused.value)


@given(st.lists(delays, min_size=1, max_size=30), st.sampled_from([",", ", ", " ,", " , "]))
def test_parse_schedule_reads_back_any_valid_schedule(values: list[int], separator: str) -> None:
    assert parse_schedule(separator.join(map(str, values))).delays == tuple(values)


# --- jitter ------------------------------------------------------------------------------------------------


@given(delay=delays, delivery_id=delivery_ids, attempt=st.integers(min_value=1, max_value=31))
def test_a_jittered_delay_lies_within_the_delay_and_the_delay_plus_ten_percent(
    delay: int, delivery_id: str, attempt: int
) -> None:
    jittered = jittered_delay(delay, delivery_id, attempt)
    assert timedelta(seconds=delay) <= jittered < plus_ten_percent(delay)


@given(delay=delays, delivery_id=delivery_ids, attempt=st.integers(min_value=1, max_value=31))
def test_a_jittered_delay_is_whole_milliseconds(delay: int, delivery_id: str, attempt: int) -> None:
    assert jittered_delay(delay, delivery_id, attempt).microseconds % 1000 == 0


@given(delay=delays, delivery_id=delivery_ids, attempt=st.integers(min_value=1, max_value=31))
def test_the_same_delivery_and_attempt_always_get_the_same_delay(
    delay: int, delivery_id: str, attempt: int
) -> None:
    assert jittered_delay(delay, delivery_id, attempt) == jittered_delay(delay, delivery_id, attempt)


@given(first=delivery_ids, second=delivery_ids)
def test_different_deliveries_get_different_retry_times(first: str, second: str) -> None:
    # A day's delay has 8,640,000 possible jitters: a collision of two ids is a one in millions chance.
    if first != second:
        assert jittered_delay(86400, first, 2) != jittered_delay(86400, second, 2)


def test_the_attempt_number_changes_the_jitter_too() -> None:
    assert jittered_delay(86400, DELIVERY, 2) != jittered_delay(86400, DELIVERY, 3)


def test_many_deliveries_failing_together_spread_over_the_whole_jitter_window() -> None:
    # An endpoint down for a minute fails a thousand deliveries at once; their retries must not be a spike.
    delay = 300
    jitters = [jittered_delay(delay, f"dlv_{n}", 2) - timedelta(seconds=delay) for n in range(1000)]
    window = timedelta(seconds=delay) * 0.1
    assert len(set(jitters)) > 950
    assert min(jitters) < window * 0.01
    assert max(jitters) > window * 0.99
    # Each tenth of the window holds roughly a tenth of them.
    for tenth in range(10):
        count = sum(1 for jitter in jitters if window * tenth / 10 <= jitter < window * (tenth + 1) / 10)
        assert 60 < count < 140


def test_a_zero_delay_has_no_jitter() -> None:
    assert jittered_delay(0, DELIVERY, 1) == timedelta(0)


@pytest.mark.parametrize("delay", [-1, 1.5, True])
def test_a_delay_that_is_not_a_non_negative_int_is_refused(delay: object) -> None:
    with pytest.raises(ValueError, match="non-negative whole number"):
        jittered_delay(delay, DELIVERY, 1)  # type: ignore[arg-type]


def test_the_jitter_fraction_is_a_tenth() -> None:
    assert Decimal("0.1") == JITTER_FRACTION


# --- Retry-After -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "wait"),
    [
        ("120", timedelta(seconds=120)),
        (" 120 ", timedelta(seconds=120)),
        ("0", timedelta(0)),
        ("0120", timedelta(seconds=120)),
        ("86400", timedelta(hours=24)),
    ],
)
def test_retry_after_in_seconds_is_read(value: str, wait: timedelta) -> None:
    assert parse_retry_after(value, FAILED_AT) == wait


@pytest.mark.parametrize(
    "value",
    [
        "Sun, 01 Mar 2026 12:02:00 GMT",  # IMF-fixdate
        "Sunday, 01-Mar-26 12:02:00 GMT",  # obsolete RFC 850 form
        "Sun Mar  1 12:02:00 2026",  # obsolete asctime form: GMT without saying so
        "Sun, 01 Mar 2026 14:02:00 +0200",  # not an HTTP-date, but the instant is unambiguous
    ],
)
def test_retry_after_as_an_http_date_is_the_time_until_then(value: str) -> None:
    assert parse_retry_after(value, FAILED_AT) == timedelta(minutes=2)


def test_retry_after_as_an_http_date_keeps_the_fraction_of_a_second_of_now() -> None:
    now = FAILED_AT + timedelta(milliseconds=250)
    assert parse_retry_after("Sun, 01 Mar 2026 12:00:10 GMT", now) == timedelta(seconds=9, milliseconds=750)


@pytest.mark.parametrize("value", ["Sun, 01 Mar 2026 11:59:00 GMT", "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_retry_after_as_a_date_in_the_past_means_now(value: str) -> None:
    assert parse_retry_after(value, FAILED_AT) == timedelta(0)


@pytest.mark.parametrize(
    "value",
    [None, "", "   ", "-5", "1.5", "soon", "120s", "Sun, 01 Mar 2026 25:00:00 GMT", "0x10", "1e3", "\u0665"],
)
def test_retry_after_unreadable_or_negative_is_none(value: str | None) -> None:
    assert parse_retry_after(value, FAILED_AT) is None


@pytest.mark.parametrize(
    "value",
    ["86401", "999999999", "9" * 5000, "Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 02 Mar 2026 12:00:01 GMT"],
)
def test_retry_after_beyond_a_day_is_capped_at_a_day(value: str) -> None:
    assert parse_retry_after(value, FAILED_AT) == MAX_RETRY_AFTER == timedelta(hours=24)


def test_retry_after_needs_an_aware_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_retry_after("120", datetime(2026, 3, 1, 12, 0, 0))


# --- next_attempt ------------------------------------------------------------------------------------------


def test_the_first_retry_comes_five_seconds_and_a_jitter_after_the_first_failure() -> None:
    decision = next_attempt(DEFAULT_RETRY_SCHEDULE, 1, DELIVERY, FAILED_AT)
    assert decision.reason == "schedule"
    assert decision.next_attempt_at is not None
    assert FAILED_AT + timedelta(seconds=5) <= decision.next_attempt_at < FAILED_AT + plus_ten_percent(5)


@pytest.mark.parametrize("attempts_made", range(1, 10))
def test_each_retry_lands_within_its_delay_and_the_delay_plus_ten_percent(attempts_made: int) -> None:
    delay = DEFAULT_RETRY_SCHEDULE.delays[attempts_made - 1]
    decision = next_attempt(DEFAULT_RETRY_SCHEDULE, attempts_made, DELIVERY, FAILED_AT)
    assert decision.next_attempt_at is not None
    assert timedelta(seconds=delay) <= decision.next_attempt_at - FAILED_AT < plus_ten_percent(delay)
    assert decision.reason == "schedule"


def test_the_retry_time_is_the_failure_time_plus_the_jittered_delay_of_that_step() -> None:
    decision = next_attempt(DEFAULT_RETRY_SCHEDULE, 3, DELIVERY, FAILED_AT)
    assert decision.next_attempt_at == FAILED_AT + jittered_delay(1800, DELIVERY, 4)


@given(delivery_id=delivery_ids, attempts_made=st.integers(min_value=1, max_value=9))
def test_the_same_failure_always_gives_the_same_retry_time(delivery_id: str, attempts_made: int) -> None:
    # A re-run of the workflow step that computed it must wait for the same instant.
    assert next_attempt(DEFAULT_RETRY_SCHEDULE, attempts_made, delivery_id, FAILED_AT) == next_attempt(
        DEFAULT_RETRY_SCHEDULE, attempts_made, delivery_id, FAILED_AT
    )


def test_a_retry_after_the_last_scheduled_attempt_is_none_the_delivery_is_dead_lettered() -> None:
    decision = next_attempt(DEFAULT_RETRY_SCHEDULE, 10, DELIVERY, FAILED_AT)
    assert decision == RetryDecision(None, "schedule exhausted: 10 of 10 attempts made")


def test_a_retry_after_does_not_revive_an_exhausted_delivery() -> None:
    decision = next_attempt(DEFAULT_RETRY_SCHEDULE, 10, DELIVERY, FAILED_AT, timedelta(seconds=1))
    assert decision.next_attempt_at is None
    assert "exhausted" in decision.reason


def test_more_attempts_than_the_schedule_holds_are_exhausted_too() -> None:
    assert next_attempt(RetrySchedule((5,)), 7, DELIVERY, FAILED_AT).next_attempt_at is None


def test_a_one_delay_schedule_retries_once() -> None:
    schedule = RetrySchedule((60,))
    assert next_attempt(schedule, 1, DELIVERY, FAILED_AT).next_attempt_at is not None
    assert next_attempt(schedule, 2, DELIVERY, FAILED_AT).next_attempt_at is None


def test_a_retry_after_longer_than_the_schedule_wins() -> None:
    decision = next_attempt(DEFAULT_RETRY_SCHEDULE, 1, DELIVERY, FAILED_AT, timedelta(seconds=120))
    assert decision == RetryDecision(FAILED_AT + timedelta(seconds=120), "retry-after 120 s")


def test_a_retry_after_with_a_fraction_of_a_second_is_reported_with_it() -> None:
    decision = next_attempt(DEFAULT_RETRY_SCHEDULE, 1, DELIVERY, FAILED_AT, timedelta(seconds=120.5))
    assert decision == RetryDecision(FAILED_AT + timedelta(seconds=120.5), "retry-after 120.5 s")


@pytest.mark.parametrize("retry_after", [timedelta(0), timedelta(seconds=1), timedelta(seconds=5)])
def test_a_retry_after_shorter_than_the_schedule_does_not_shorten_it(retry_after: timedelta) -> None:
    with_header = next_attempt(DEFAULT_RETRY_SCHEDULE, 1, DELIVERY, FAILED_AT, retry_after)
    assert with_header == next_attempt(DEFAULT_RETRY_SCHEDULE, 1, DELIVERY, FAILED_AT)
    assert with_header.reason == "schedule"


def test_a_retry_after_handed_in_beyond_the_cap_is_capped() -> None:
    decision = next_attempt(DEFAULT_RETRY_SCHEDULE, 1, DELIVERY, FAILED_AT, timedelta(days=30))
    assert decision.next_attempt_at == FAILED_AT + MAX_RETRY_AFTER
    assert decision.reason == "retry-after 86400 s"


def test_a_retry_after_read_from_the_header_feeds_the_decision() -> None:
    retry_after = parse_retry_after("Sun, 01 Mar 2026 13:00:00 GMT", FAILED_AT)
    decision = next_attempt(DEFAULT_RETRY_SCHEDULE, 2, DELIVERY, FAILED_AT, retry_after)
    assert decision == RetryDecision(FAILED_AT + timedelta(hours=1), "retry-after 3600 s")


def test_the_retry_time_keeps_the_failure_times_zone() -> None:
    failed_at = FAILED_AT.astimezone(timezone(timedelta(hours=2)))
    in_utc = next_attempt(DEFAULT_RETRY_SCHEDULE, 1, DELIVERY, FAILED_AT).next_attempt_at
    shifted = next_attempt(DEFAULT_RETRY_SCHEDULE, 1, DELIVERY, failed_at).next_attempt_at
    assert shifted is not None
    assert shifted == in_utc
    assert shifted.utcoffset() == timedelta(hours=2)


@pytest.mark.parametrize("attempts_made", [0, -1])
def test_next_attempt_needs_at_least_one_failed_attempt(attempts_made: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        next_attempt(DEFAULT_RETRY_SCHEDULE, attempts_made, DELIVERY, FAILED_AT)


def test_next_attempt_needs_an_aware_failure_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_attempt(DEFAULT_RETRY_SCHEDULE, 1, DELIVERY, datetime(2026, 3, 1, 12, 0, 0))


# --- answers -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_any_2xx_answer_is_a_delivery(status: int) -> None:
    assert is_success(status)


@pytest.mark.parametrize("status", [None, 100, 199, 300, 301, 304, 400, 404, 410, 429, 500, 503])
def test_no_answer_or_any_other_status_is_not_a_delivery(status: int | None) -> None:
    assert not is_success(status)


def test_only_410_gone_disables_the_endpoint() -> None:
    assert disables_endpoint(410)
    for status in (None, 200, 400, 401, 403, 404, 409, 429, 500, 503):
        assert not disables_endpoint(status)
