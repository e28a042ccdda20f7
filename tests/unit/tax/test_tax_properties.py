"""Properties of tax for any amounts, windows, location histories and provider outcomes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from billing.domain.tax.locations import (
    LineWindow,
    LocationChange,
    allocate_largest_remainder,
    split_by_location,
)
from billing.domain.tax.model import TaxLine, TaxLocation, TaxReason
from billing.domain.tax.reconciliation import adjustment_total, reconcile_estimated
from billing.domain.tax.resilience import BreakerState, CircuitBreaker
from tests.unit.tax.builders import ENGINE, request

START = datetime(2026, 3, 1, tzinfo=UTC)
LOCATIONS = [TaxLocation("US", "NY"), TaxLocation("US", "TX"), TaxLocation("US", "CA"), TaxLocation("DE")]
amounts = st.integers(min_value=-(10**12), max_value=10**12)


@settings(max_examples=300)
@given(amounts, st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=8))
def test_largest_remainder_sums_exactly_and_each_share_is_within_one_unit(
    total: int, weights: list[int]
) -> None:
    if sum(weights) == 0:
        weights = [*weights, 1]
    shares = allocate_largest_remainder(total, weights)
    assert sum(shares) == total
    whole = sum(weights)
    for share, weight in zip(shares, weights, strict=True):
        assert abs(share * whole - total * weight) < whole  # |share - exact| < 1
        if weight == 0:
            assert share == 0


@st.composite
def histories(draw: st.DrawFn) -> list[LocationChange]:
    first = LocationChange(START - timedelta(days=1), draw(st.sampled_from(LOCATIONS)))
    offsets = draw(st.lists(st.integers(min_value=0, max_value=31 * 86_400_000_000), max_size=6))
    return [first] + [
        LocationChange(START + timedelta(microseconds=offset), draw(st.sampled_from(LOCATIONS)))
        for offset in sorted(set(offsets))
    ]


@settings(max_examples=300)
@given(
    amounts,
    st.integers(min_value=0, max_value=31 * 86_400_000_000),
    st.integers(min_value=0, max_value=31 * 86_400_000_000),
    histories(),
)
def test_split_by_location_parts_sum_exactly_and_tile_the_window(
    amount: int, a: int, b: int, history: list[LocationChange]
) -> None:
    start, end = START + timedelta(microseconds=min(a, b)), START + timedelta(microseconds=max(a, b))
    parts = split_by_location([LineWindow("L1", amount, start, end)], history)
    assert sum(part.amount_minor for part in parts) == amount
    assert parts[0].start == start
    assert parts[-1].end == end
    for earlier, later in pairwise(parts):
        assert earlier.end == later.start
        assert earlier.location != later.location  # same-location neighbours are merged
    whole = (end - start) // timedelta(microseconds=1)
    if len(parts) > 1:
        for part in parts:
            weight = (part.end - part.start) // timedelta(microseconds=1)
            assert abs(part.amount_minor * whole - amount * weight) < whole
    assert split_by_location([LineWindow("L1", amount, start, end)], list(reversed(history))) == parts


@settings(max_examples=300)
@given(
    st.sampled_from(
        [TaxLocation("US", r) for r in ("NY", "TX", "WA", "PA", "OH", "CT", "CA")]
        + [TaxLocation(c) for c in ("DE", "FR", "FI", "GB", "AU")]
        + [TaxLocation("CA", p) for p in ("ON", "NS", "QC", "BC")]
    ),
    amounts,
    st.sampled_from(["USD", "EUR", "JPY", "KWD"]),
)
def test_each_tax_line_is_the_exact_tax_rounded_once_and_credits_mirror_charges(
    location: TaxLocation, amount: int, currency_code: str
) -> None:
    result = ENGINE.quote(request(location, ("L1", amount), currency=currency_code))
    mirrored = ENGINE.quote(request(location, ("L1", -amount), currency=currency_code))
    assert [line.tax_minor for line in mirrored.lines] == [-line.tax_minor for line in result.lines]
    assert result.tax_minor == sum(line.tax_minor for line in result.lines)
    assert len(result.decisions) == len(result.lines)
    for line in result.lines:
        exact = Decimal(amount) * line.taxable_fraction * line.rate  # in minor units
        assert abs(Decimal(line.tax_minor) - exact) <= Decimal("0.5")
        if line.reason is not TaxReason.TAXABLE:
            assert line.tax_minor == 0


tax_lines = st.builds(
    TaxLine,
    line_ref=st.sampled_from(["L1", "L2", "L1#1", "L1#2"]),
    jurisdiction=st.sampled_from(["US-NY", "US-TX", "DE"]),
    rate=st.just(Decimal("0.1")),
    taxable_amount_minor=st.just(0),
    tax_minor=st.integers(min_value=-10_000, max_value=10_000),
    reason=st.just(TaxReason.TAXABLE),
    rule_id=st.just("r"),
)


@settings(max_examples=300)
@given(st.lists(tax_lines, max_size=8), st.lists(tax_lines, max_size=8))
def test_estimated_plus_adjustments_is_what_is_due(estimated: list[TaxLine], actual: list[TaxLine]) -> None:
    adjustments = reconcile_estimated(estimated, actual)
    assert sum(t.tax_minor for t in estimated) + adjustment_total(adjustments) == sum(
        t.tax_minor for t in actual
    )
    assert all(adjustment.difference_minor != 0 for adjustment in adjustments)
    assert reconcile_estimated(actual, actual) == []


operations = st.lists(
    st.tuples(st.sampled_from(["acquire", "success", "failure"]), st.integers(min_value=0, max_value=20)),
    max_size=60,
)


@settings(max_examples=300)
@given(st.integers(min_value=1, max_value=5), st.integers(min_value=1, max_value=30), operations)
def test_circuit_breaker_transitions(threshold: int, cool_down: int, script: list[tuple[str, int]]) -> None:
    breaker = CircuitBreaker(failure_threshold=threshold, cool_down_ns=cool_down)
    now = 0
    for operation, elapsed in script:
        now += elapsed  # monotonic time only moves forward
        before = breaker.state_at(now)
        if operation == "acquire":
            allowed, after = breaker.acquire(now)
            if before is BreakerState.OPEN:
                assert not allowed  # never a call while open
            if before is BreakerState.CLOSED:
                assert allowed
            if before is BreakerState.HALF_OPEN and allowed:
                assert after.acquire(now)[0] is False  # one trial at a time
            breaker = after
        elif operation == "success":
            breaker = breaker.record_success(now)
            assert breaker.state_at(now) is BreakerState.CLOSED
            assert breaker.consecutive_failures == 0
        else:
            failures = breaker.consecutive_failures
            breaker = breaker.record_failure(now)
            if before is BreakerState.CLOSED:
                opened = failures + 1 >= threshold
                assert breaker.state_at(now) is (BreakerState.OPEN if opened else BreakerState.CLOSED)
            else:
                assert breaker.state_at(now) is BreakerState.OPEN  # a failed trial reopens; open stays open
