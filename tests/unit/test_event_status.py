"""What became of a stored usage event (counted, late, unbilled), and the windows no subscription covers."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone
from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.domain.catalog import SubscriptionSpan
from billing.domain.event_status import EventStatus, StoredEvent, Window, event_status, uncovered_windows

JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)
MAR = datetime(2026, 3, 1, tzinfo=UTC)
APR = datetime(2026, 4, 1, tzinfo=UTC)
MAY = datetime(2026, 5, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
FINALIZED = datetime(2026, 4, 1, 0, 5, tzinfo=UTC)  # March's invoice was finalized five minutes into April
RUNNING = SubscriptionSpan("sub_1", JAN)


def span(start: datetime, end: datetime | None = None, span_id: str = "sub_1") -> SubscriptionSpan:
    return SubscriptionSpan(span_id, start, end)


def in_window(instant: datetime, window: Window) -> bool:
    start, end = window
    return (start is None or start <= instant) and (end is None or instant < end)


# --- event_status -------------------------------------------------------------------------------------


def test_an_event_no_subscription_covers_is_unbilled() -> None:
    assert event_status(MAR, None, None) is EventStatus.UNBILLED


def test_an_uncovered_event_stays_unbilled_whatever_was_finalized() -> None:
    assert event_status(MAR, None, FINALIZED) is EventStatus.UNBILLED
    assert event_status(MAY, None, FINALIZED) is EventStatus.UNBILLED


def test_a_covered_event_of_a_period_not_yet_finalized_is_counted() -> None:
    assert event_status(MAR, RUNNING, None) is EventStatus.COUNTED
    assert event_status(MAY, RUNNING, None) is EventStatus.COUNTED


def test_a_covered_event_stored_before_its_period_was_finalized_is_counted() -> None:
    assert event_status(FINALIZED - MICROSECOND, RUNNING, FINALIZED) is EventStatus.COUNTED
    assert event_status(MAR, RUNNING, FINALIZED) is EventStatus.COUNTED


def test_an_event_stored_at_the_very_instant_of_finalize_is_counted_not_late() -> None:
    assert event_status(FINALIZED, RUNNING, FINALIZED) is EventStatus.COUNTED


def test_an_event_stored_after_its_period_was_finalized_is_late() -> None:
    assert event_status(FINALIZED + MICROSECOND, RUNNING, FINALIZED) is EventStatus.LATE
    assert event_status(MAY, RUNNING, FINALIZED) is EventStatus.LATE


def test_late_is_decided_on_instants_whatever_their_offsets() -> None:
    paris = timezone(timedelta(hours=2))
    # 02:05 at +02:00 is the instant of finalize: counted; one second later is late.
    same_instant = datetime(2026, 4, 1, 2, 5, tzinfo=paris)
    assert event_status(same_instant, RUNNING, FINALIZED) is EventStatus.COUNTED
    assert event_status(same_instant + timedelta(seconds=1), RUNNING, FINALIZED) is EventStatus.LATE
    # Later on the wall clock, but earlier in time than finalize: counted.
    new_york = timezone(timedelta(hours=-4))
    assert event_status(datetime(2026, 3, 31, 20, 4, tzinfo=new_york), RUNNING, FINALIZED) is (
        EventStatus.COUNTED
    )


def test_a_naive_instant_is_refused() -> None:
    with pytest.raises(TypeError, match="timezone-aware"):
        event_status(datetime(2026, 4, 2), RUNNING, FINALIZED)


def test_the_status_of_a_stored_event_comes_from_when_it_was_stored_not_when_it_happened() -> None:
    event = StoredEvent(
        tenant_id="acme",
        customer_id="cus_42",
        event_id="evt_1",
        type="api.call",
        timestamp=datetime(2026, 3, 31, 23, 59, tzinfo=UTC),  # in March
        received_at=datetime(2026, 4, 1, 0, 10, tzinfo=UTC),
        stored_at=datetime(2026, 4, 1, 0, 11, tzinfo=UTC),  # after March was finalized
        properties={},
    )
    covering = span(JAN) if span(JAN).covers(event.timestamp) else None
    assert event_status(event.stored_at, covering, FINALIZED) is EventStatus.LATE
    assert event_status(event.timestamp, covering, FINALIZED) is EventStatus.COUNTED


def test_event_statuses_are_their_api_names() -> None:
    assert [status.value for status in EventStatus] == ["counted", "late", "unbilled"]


# --- uncovered_windows: by hand -----------------------------------------------------------------------


def test_without_any_subscription_all_of_time_is_one_unbounded_window() -> None:
    assert uncovered_windows([]) == [(None, None)]


def test_a_running_subscription_leaves_only_the_time_before_it() -> None:
    assert uncovered_windows([span(FEB)]) == [(None, FEB)]


def test_a_cancelled_subscription_leaves_the_time_before_and_after_it() -> None:
    assert uncovered_windows([span(FEB, APR)]) == [(None, FEB), (APR, None)]


def test_consecutive_subscriptions_leave_no_gap_between_them() -> None:
    assert uncovered_windows([span(FEB, MAR, "sub_1"), span(MAR, None, "sub_2")]) == [(None, FEB)]
    assert uncovered_windows([span(FEB, MAR, "sub_1"), span(MAR, APR, "sub_2")]) == [(None, FEB), (APR, None)]


def test_a_gap_between_subscriptions_is_a_window() -> None:
    spans = [span(JAN, FEB, "sub_1"), span(MAR, APR, "sub_2"), span(MAY, None, "sub_3")]
    assert uncovered_windows(spans) == [(None, JAN), (FEB, MAR), (APR, MAY)]


def test_the_order_the_subscriptions_are_given_in_does_not_matter() -> None:
    spans = [span(MAY, None, "sub_3"), span(JAN, FEB, "sub_1"), span(MAR, APR, "sub_2")]
    assert uncovered_windows(spans) == [(None, JAN), (FEB, MAR), (APR, MAY)]


def test_overlapping_subscriptions_cover_their_union() -> None:
    assert uncovered_windows([span(JAN, MAR, "sub_1"), span(FEB, APR, "sub_2")]) == [(None, JAN), (APR, None)]


def test_a_subscription_inside_another_adds_nothing() -> None:
    assert uncovered_windows([span(JAN, MAY, "sub_1"), span(FEB, MAR, "sub_2")]) == [(None, JAN), (MAY, None)]


def test_a_running_subscription_covers_everything_after_it_starts_whatever_follows() -> None:
    spans = [span(FEB, None, "sub_1"), span(MAR, APR, "sub_2"), span(JAN, FEB, "sub_0")]
    assert uncovered_windows(spans) == [(None, JAN)]


def test_a_subscription_cancelled_at_its_start_covers_nothing() -> None:
    assert not span(FEB, FEB).covers(FEB)
    assert uncovered_windows([span(FEB, FEB)]) == [(None, None)]
    assert uncovered_windows([span(FEB, FEB, "sub_1"), span(FEB, None, "sub_2")]) == [(None, FEB)]
    assert uncovered_windows([span(JAN, FEB, "sub_1"), span(MAR, MAR, "sub_2")]) == [(None, JAN), (FEB, None)]


def test_a_subscription_starts_inclusive_and_ends_exclusive() -> None:
    cancelled = span(FEB, APR)
    before, after = uncovered_windows([cancelled])
    assert cancelled.covers(FEB)
    assert not in_window(FEB, before)
    assert not cancelled.covers(FEB - MICROSECOND)
    assert in_window(FEB - MICROSECOND, before)
    assert not cancelled.covers(APR)
    assert in_window(APR, after)
    assert cancelled.covers(APR - MICROSECOND)
    assert not in_window(APR - MICROSECOND, after)


def test_overlapping_subscriptions_with_the_same_start_cover_their_union() -> None:
    assert uncovered_windows([span(FEB, None, "sub_1"), span(FEB, MAR, "sub_2")]) == [(None, FEB)]


# --- uncovered_windows: properties --------------------------------------------------------------------

BASE = datetime(2026, 1, 1, tzinfo=UTC)
HOURS = 24
OFFSETS = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]


def hour(n: int, zone: timezone = UTC) -> datetime:
    return (BASE + timedelta(hours=n)).astimezone(zone)


@st.composite
def spans(draw: st.DrawFn) -> list[SubscriptionSpan]:
    """Up to five spans on an hourly grid, some running, some cancelled at their start, some overlapping;
    starts are distinct (the catalog never holds two subscriptions starting at the same instant)."""
    starts = draw(st.lists(st.integers(min_value=0, max_value=HOURS), unique=True, max_size=5))
    drawn = []
    for n, start in enumerate(starts):
        zone = draw(st.sampled_from(OFFSETS))
        length = draw(st.one_of(st.none(), st.integers(min_value=0, max_value=10)))
        end = None if length is None else hour(start + length, zone)
        drawn.append(SubscriptionSpan(f"sub_{n}", hour(start, zone), end))
    return drawn


def probes() -> list[datetime]:
    """Every grid instant, and the instants just before, between and after them."""
    instants = []
    for n in range(-2, HOURS + 13):
        instants += [hour(n) - MICROSECOND, hour(n), hour(n) + timedelta(minutes=30)]
    return instants


PROBES = probes()


@settings(max_examples=100)
@given(spans())
def test_the_uncovered_windows_and_the_subscriptions_partition_time(drawn: list[SubscriptionSpan]) -> None:
    windows = uncovered_windows(drawn)
    for instant in PROBES:
        covered = any(one.covers(instant) for one in drawn)
        containing = [window for window in windows if in_window(instant, window)]
        assert int(covered) + len(containing) == 1, (instant, windows)


@settings(max_examples=100)
@given(spans())
def test_the_uncovered_windows_are_sorted_disjoint_and_not_empty(drawn: list[SubscriptionSpan]) -> None:
    windows = uncovered_windows(drawn)
    assert windows
    assert windows[0][0] is None  # before the first subscription nothing is covered
    assert all(start is not None for start, _ in windows[1:])
    assert all(end is not None for _, end in windows[:-1])
    for start, end in windows:
        assert start is None or end is None or start < end
    for (_, end), (start, _) in itertools.pairwise(windows):
        assert end is not None
        assert start is not None
        assert end < start  # some subscription covers the time between two windows
    # The last window runs on for ever unless some subscription does.
    assert (windows[-1][1] is None) == all(one.end is not None for one in drawn)


@settings(max_examples=100)
@given(spans())
def test_each_window_is_bounded_by_a_subscription_end_and_the_next_start(
    drawn: list[SubscriptionSpan],
) -> None:
    ends = {one.end for one in drawn if one.end is not None}
    starts = {one.start for one in drawn}
    for start, end in uncovered_windows(drawn):
        assert start is None or start in ends
        assert end is None or end in starts


@settings(max_examples=60)
@given(spans(), st.randoms())
def test_the_uncovered_windows_do_not_depend_on_the_order_of_the_subscriptions(
    drawn: list[SubscriptionSpan], random: Random
) -> None:
    shuffled = list(drawn)
    random.shuffle(shuffled)
    assert uncovered_windows(shuffled) == uncovered_windows(drawn)


@settings(max_examples=60)
@given(spans())
def test_subscriptions_cancelled_at_their_start_change_no_window(drawn: list[SubscriptionSpan]) -> None:
    effective = [one for one in drawn if one.end is None or one.end > one.start]
    assert uncovered_windows(drawn) == uncovered_windows(effective)


# --- event_status: properties -------------------------------------------------------------------------

instants = st.builds(
    lambda minutes, zone: (BASE + timedelta(minutes=minutes)).astimezone(zone),
    st.integers(min_value=0, max_value=60 * 24 * 3),
    st.sampled_from(OFFSETS),
)


@settings(max_examples=100)
@given(instants, st.one_of(st.none(), st.just(RUNNING)), st.one_of(st.none(), instants))
def test_late_iff_covered_and_stored_strictly_after_finalize(
    stored_at: datetime, covering: SubscriptionSpan | None, finalized_at: datetime | None
) -> None:
    status = event_status(stored_at, covering, finalized_at)
    if covering is None:
        assert status is EventStatus.UNBILLED
    elif finalized_at is not None and stored_at > finalized_at:
        assert status is EventStatus.LATE
    else:
        assert status is EventStatus.COUNTED
