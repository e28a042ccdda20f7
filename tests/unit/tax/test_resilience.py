"""External providers: the circuit breaker, the last-known-good fallback, reconciliation at the next close."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from billing.domain.rating.money import Currency
from billing.domain.tax.errors import TaxUnavailable
from billing.domain.tax.model import TaxLine, TaxLocation, TaxQuote, TaxReason, TaxRequest
from billing.domain.tax.reconciliation import adjustment_total, reconcile_estimated
from billing.domain.tax.resilience import SECOND_NS, BreakerState, CircuitBreaker, LastKnownGoodRates
from tests.unit.tax.builders import ENGINE, request, where

T = 1_000 * SECOND_NS  # an arbitrary monotonic origin
NYC = TaxLocation("US", "NY", "10001")


def failing(breaker: CircuitBreaker, times: int, at: int = T) -> CircuitBreaker:
    for _ in range(times):
        breaker = breaker.record_failure(at)
    return breaker


def test_the_breaker_opens_after_n_consecutive_failures() -> None:
    breaker = failing(CircuitBreaker(failure_threshold=3, cool_down_ns=30 * SECOND_NS), 2)
    assert breaker.state_at(T) is BreakerState.CLOSED
    breaker = breaker.record_failure(T)
    assert breaker.state_at(T) is BreakerState.OPEN
    assert breaker.acquire(T + 29 * SECOND_NS)[0] is False


def test_a_success_resets_the_count_of_consecutive_failures() -> None:
    breaker = failing(CircuitBreaker(failure_threshold=3), 2).record_success(T)
    assert failing(breaker, 2).state_at(T) is BreakerState.CLOSED


def test_after_the_cool_down_one_trial_call_goes_out_and_its_success_closes_the_breaker() -> None:
    breaker = failing(CircuitBreaker(failure_threshold=1, cool_down_ns=30 * SECOND_NS), 1)
    later = T + 30 * SECOND_NS
    assert breaker.state_at(later) is BreakerState.HALF_OPEN
    allowed, breaker = breaker.acquire(later)
    assert allowed
    assert breaker.acquire(later + 1)[0] is False  # one trial at a time
    breaker = breaker.record_success(later + 2)
    assert breaker.state_at(later + 2) is BreakerState.CLOSED
    assert breaker.acquire(later + 3)[0]


def test_a_failed_trial_reopens_the_breaker_for_another_cool_down() -> None:
    breaker = failing(CircuitBreaker(failure_threshold=1, cool_down_ns=30 * SECOND_NS), 1)
    trial_at = T + 31 * SECOND_NS
    _, breaker = breaker.acquire(trial_at)
    breaker = breaker.record_failure(trial_at + SECOND_NS)
    assert breaker.state_at(trial_at + 2 * SECOND_NS) is BreakerState.OPEN
    assert breaker.state_at(trial_at + 31 * SECOND_NS) is BreakerState.HALF_OPEN


def test_a_trial_that_never_reports_back_is_presumed_lost_after_a_cool_down() -> None:
    breaker = failing(CircuitBreaker(failure_threshold=1, cool_down_ns=30 * SECOND_NS), 1)
    _, breaker = breaker.acquire(T + 30 * SECOND_NS)
    assert breaker.acquire(T + 59 * SECOND_NS)[0] is False
    assert breaker.acquire(T + 60 * SECOND_NS)[0] is True


def provider_quote(req: TaxRequest, rate: str, jurisdiction: str = "US-NY-NYC") -> TaxQuote:
    """What an external provider answers: a combined New York City rate (state + city + MCTD)."""
    lines = []
    for line in req.lines:
        tax = (Decimal(line.amount_minor) * Decimal(rate)).quantize(Decimal(1))
        lines.append(
            TaxLine(
                line.ref,
                jurisdiction,
                Decimal(rate),
                line.amount_minor,
                int(tax),
                TaxReason.TAXABLE,
                "avalara:NY",
                tax_type="sales_tax",
            )
        )
    return TaxQuote(req.currency, tuple(lines), engine="provider")


def test_when_the_provider_fails_the_last_known_good_rate_is_used_and_flagged_estimated() -> None:
    march = request(NYC, ("L1", 15519), tax_date=date(2026, 3, 31))
    known = LastKnownGoodRates().learn(march, provider_quote(march, "0.08875"))
    april = request(NYC, ("L1", 20000), tax_date=date(2026, 4, 30))
    estimated = known.estimate(april)
    (line,) = estimated.lines
    # 200.00 x 8.875% = 17.75
    assert (line.jurisdiction, line.tax_minor, line.estimated, line.reason) == (
        "US-NY-NYC",
        1775,
        True,
        TaxReason.ESTIMATED,
    )
    assert line.to_json(Currency.of("USD"))["tax_estimated"] is True
    assert estimated.decisions[0]["learned_on"] == "2026-03-31"
    assert estimated.engine == "last_known_good"


def test_estimated_tax_is_reconciled_at_the_next_close() -> None:
    april = request(NYC, ("L1", 20000), tax_date=date(2026, 4, 30))
    known = LastKnownGoodRates().learn(april, provider_quote(april, "0.08875"))
    estimated = known.estimate(april).lines
    assert reconcile_estimated(estimated, provider_quote(april, "0.08875").lines) == []
    # the rate changed meanwhile: 200.00 x 8.5% = 17.00, 0.75 to credit back
    (adjustment,) = reconcile_estimated(estimated, provider_quote(april, "0.085").lines)
    assert (adjustment.line_ref, adjustment.jurisdiction, adjustment.difference_minor) == (
        "L1",
        "US-NY-NYC",
        -75,
    )
    assert adjustment.to_json(Currency.of("USD"))["amount"] == "-0.75"
    assert adjustment_total([adjustment]) == -75


def test_a_new_postal_code_falls_back_to_the_regions_last_rate() -> None:
    march = request(NYC, ("L1", 100))
    known = LastKnownGoodRates().learn(march, provider_quote(march, "0.08875"))
    elsewhere = request(TaxLocation("US", "NY", "14201"), ("L1", 10000))
    assert known.estimate(elsewhere).lines[0].tax_minor == 888  # 887.5 -> 888 (half-even)


def test_business_and_consumer_rates_are_remembered_apart() -> None:
    b2b = request(where("FR"), ("L1", 10000), tax_id="FR40303265045", currency="EUR")
    known = LastKnownGoodRates().learn(b2b, ENGINE.quote(b2b))  # reverse charge: rate 0
    assert known.estimate(b2b).lines[0].tax_minor == 0
    with pytest.raises(TaxUnavailable) as raised:
        known.estimate(request(where("FR"), ("L1", 10000), currency="EUR"))
    assert raised.value.code == "no_known_rate"


def test_with_no_known_rate_the_builtin_rules_estimate() -> None:
    result = LastKnownGoodRates().estimate(request(where("US", "WA"), ("L1", 15519)), fallback=ENGINE)
    (line,) = result.lines
    assert (line.jurisdiction, line.tax_minor, line.estimated) == ("US-WA", 1009, True)
    assert result.decisions[0]["fallback_cause"] == "provider_unavailable"


def test_exempt_customers_need_no_provider() -> None:
    result = LastKnownGoodRates().estimate(request(NYC, ("L1", 100), exempt=True))
    assert (result.lines[0].reason, result.lines[0].estimated) == (TaxReason.CUSTOMER_EXEMPT, False)


def test_known_rates_survive_a_round_trip_through_storage() -> None:
    march = request(NYC, ("L1", 100), ("L2", 100, "services"))
    known = LastKnownGoodRates().learn(march, provider_quote(march, "0.08875"))
    assert LastKnownGoodRates.from_json(known.to_json()) == known
