"""The taxation service: provider behind a circuit breaker, last-known-good estimates, rules engine otherwise.

In-memory stores and a scripted provider stand in for DynamoDB and HTTP (both have their own tests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from billing.adapters.tax_provider import TaxProviderRejected, TaxProviderUnavailable
from billing.domain.errors import TransientFailure
from billing.domain.rating.money import Currency
from billing.domain.tax.errors import TaxUnavailable
from billing.domain.tax.model import SellerConfig, TaxLine, TaxLocation, TaxQuote, TaxReason, TaxRequest
from billing.domain.tax.resilience import FALLBACK_ENGINE, BreakerState, CircuitBreaker, LastKnownGoodRates
from billing.services import taxation
from billing.services.taxation import TaxationService
from tests.unit.tax.builders import ENGINE, request, where

NYC = TaxLocation("US", "NY", "10001")
NY_RATE = Decimal("0.08875")
COOL_DOWN = timedelta(seconds=30)
BREAKER = CircuitBreaker(failure_threshold=3, cool_down_ns=30 * 1_000_000_000)


# ---- fakes ---------------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class ScriptedProvider:
    """Answers every line at `rate` in the line's location, or raises what `failure` says."""

    name: str = "faketax"
    rate: Decimal = NY_RATE
    failure: Exception | None = None
    calls: int = 0

    def quote(self, request: TaxRequest) -> TaxQuote:
        self.calls += 1
        if self.failure is not None:
            raise self.failure
        lines = []
        for line in request.lines:
            location = request.location_of(line)
            tax = int((line.amount_minor * self.rate).quantize(Decimal(1)))
            lines.append(
                TaxLine(line.ref, location.code, self.rate, line.amount_minor, tax, TaxReason.TAXABLE, "p:1")
            )
        decisions = [{"engine": self.name, "line_ref": line.line_ref, "call": self.calls} for line in lines]
        return TaxQuote(request.currency, tuple(lines), tuple(decisions), self.name)


@dataclass
class MemoryBreakers:
    """A versioned breaker store; `steal` makes the next saves lose to a concurrent writer."""

    items: dict[str, tuple[CircuitBreaker, int]] = field(default_factory=dict)
    steal: list[Callable[[CircuitBreaker], CircuitBreaker]] = field(default_factory=list)
    failing: bool = False

    def load(self, provider: str, template: CircuitBreaker) -> tuple[CircuitBreaker, int]:
        if self.failing:
            raise TransientFailure("billing table: ThrottlingException")
        return self.items.get(provider, (template, 0))

    def save(self, provider: str, breaker: CircuitBreaker, expected_version: int, now: datetime) -> bool:
        if self.failing:
            raise TransientFailure("billing table: ThrottlingException")
        stored, version = self.items.get(provider, (breaker, 0))
        if self.steal:  # another container writes first
            self.items[provider] = (self.steal.pop(0)(stored), version + 1)
            return False
        if version != expected_version:
            return False
        self.items[provider] = (breaker, version + 1)
        return True

    def state(self, provider: str, clock: Clock) -> BreakerState:
        breaker, _ = self.items.get(provider, (BREAKER, 0))
        return breaker.state_at(epoch_ns(clock()))


@dataclass
class MemoryRates:
    rates: LastKnownGoodRates = field(default_factory=LastKnownGoodRates)
    saves: int = 0

    def load(self, provider: str, request: TaxRequest) -> LastKnownGoodRates:
        return self.rates

    def save(self, provider: str, seller: SellerConfig, learned: LastKnownGoodRates, now: datetime) -> None:
        self.saves += 1
        self.rates = LastKnownGoodRates({**self.rates.rates, **learned.rates})


class RecordedMetrics:
    def __init__(self) -> None:
        self.counts: dict[str, float] = {}

    def add_metric(self, name: str, unit: Any, value: float) -> None:
        self.counts[name] = self.counts.get(name, 0) + value


def epoch_ns(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000


@dataclass
class World:
    provider: ScriptedProvider
    breakers: MemoryBreakers
    rates: MemoryRates
    clock: Clock
    metrics: RecordedMetrics
    service: TaxationService

    def fail_with(self, failure: Exception | None) -> None:
        self.provider.failure = failure

    @property
    def breaker_state(self) -> BreakerState:
        return self.breakers.state("faketax", self.clock)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    recorded = RecordedMetrics()
    monkeypatch.setattr(taxation, "metrics", recorded)
    provider, breakers, rates, clock = ScriptedProvider(), MemoryBreakers(), MemoryRates(), Clock()
    service = TaxationService(provider, ENGINE, breakers, rates, clock=clock, breaker=BREAKER)
    return World(provider, breakers, rates, clock, recorded, service)


def unavailable() -> TaxProviderUnavailable:
    return TaxProviderUnavailable("tax provider faketax: no answer within 2 s", code="provider_timeout")


def nyc(*lines: tuple[str, int] | tuple[str, int, str]) -> TaxRequest:
    return request(NYC, *(lines or (("api", 10_000),)))


def fail_times(world: World, times: int) -> list[TaxQuote]:
    world.fail_with(unavailable())
    return [world.service.quote(nyc()) for _ in range(times)]


# ---- no provider ---------------------------------------------------------------------------------------


def test_without_a_provider_the_rules_engine_answers_directly() -> None:
    service = TaxationService(None, ENGINE, None, None, clock=Clock())
    ask = request(where("DE"), ("api", 10_000), seller=SellerConfig("DE", frozenset({"DE"})))

    assert service.quote(ask) == ENGINE.quote(ask)


def test_a_provider_needs_both_stores_and_taxation_needs_some_engine() -> None:
    with pytest.raises(ValueError, match="store"):
        TaxationService(ScriptedProvider(), ENGINE, MemoryBreakers(), None, clock=Clock())
    with pytest.raises(ValueError, match="provider or a fallback"):
        TaxationService(None, None, None, None, clock=Clock())


# ---- the provider answers ------------------------------------------------------------------------------


def test_a_providers_answer_is_returned_untouched_and_teaches_the_last_known_good_rates(world: World) -> None:
    quote = world.service.quote(nyc(("api", 10_000)))

    assert quote.engine == "faketax"
    assert quote.tax_minor == 888
    assert [dict(d) for d in quote.decisions] == [{"engine": "faketax", "line_ref": "api", "call": 1}]
    assert world.rates.rates.lookup(NYC, "saas", business=False) is not None
    assert world.breakers.items == {}  # a closed breaker that stays closed is not rewritten


def test_when_the_provider_fails_the_last_known_good_rate_answers_flagged_estimated(world: World) -> None:
    world.service.quote(nyc(("api", 10_000)))  # learns 8.875 % for NYC

    [estimate] = fail_times(world, 1)

    assert estimate.engine == FALLBACK_ENGINE
    assert [(t.jurisdiction, t.rate, t.tax_minor, t.reason, t.estimated) for t in estimate.lines] == [
        ("US-NY", NY_RATE, 888, TaxReason.ESTIMATED, True)
    ]
    assert estimate.decisions[0]["fallback_cause"] == "provider_timeout"
    assert world.metrics.counts == {"TaxProviderFailures": 1, "TaxEstimated": 1}


def test_a_line_with_no_known_rate_is_estimated_by_the_rules_engine(world: World) -> None:
    [estimate] = fail_times(world, 1)

    rules = ENGINE.quote(nyc())
    assert [(t.jurisdiction, t.tax_minor, t.estimated) for t in estimate.lines] == [
        (t.jurisdiction, t.tax_minor, True) for t in rules.lines
    ]
    assert all(d["estimated"] for d in estimate.decisions)


def test_with_no_known_rate_and_no_fallback_engine_tax_is_unavailable_rather_than_invented() -> None:
    provider = ScriptedProvider(failure=unavailable())
    service = TaxationService(provider, None, MemoryBreakers(), MemoryRates(), clock=Clock())

    with pytest.raises(TaxUnavailable):
        service.quote(nyc())


# ---- the breaker ---------------------------------------------------------------------------------------


def test_the_breaker_opens_after_n_consecutive_failures_and_then_the_provider_is_not_called(
    world: World,
) -> None:
    world.service.quote(nyc())  # learn
    fail_times(world, BREAKER.failure_threshold)
    assert world.breaker_state is BreakerState.OPEN
    calls = world.provider.calls

    world.clock.advance(COOL_DOWN - timedelta(seconds=1))
    quote = world.service.quote(nyc())

    assert world.provider.calls == calls
    assert quote.estimated
    assert quote.decisions[0]["fallback_cause"] == "breaker_open"
    assert world.metrics.counts["BreakerOpen"] == 1


def test_after_the_cool_down_one_trial_call_goes_out_and_its_success_closes_the_breaker(world: World) -> None:
    fail_times(world, BREAKER.failure_threshold)
    world.fail_with(None)
    world.clock.advance(COOL_DOWN)
    assert world.breaker_state is BreakerState.HALF_OPEN

    quote = world.service.quote(nyc())

    assert not quote.estimated
    assert quote.engine == "faketax"
    assert world.breaker_state is BreakerState.CLOSED
    breaker, _ = world.breakers.items["faketax"]
    assert breaker.consecutive_failures == 0


def test_a_failed_trial_reopens_the_breaker_for_another_cool_down(world: World) -> None:
    fail_times(world, BREAKER.failure_threshold)
    world.clock.advance(COOL_DOWN)
    calls = world.provider.calls

    assert world.service.quote(nyc()).estimated  # the trial, failed
    world.clock.advance(COOL_DOWN - timedelta(seconds=1))
    assert world.service.quote(nyc()).estimated  # refused: open again

    assert world.provider.calls == calls + 1
    assert world.breaker_state is BreakerState.OPEN


def test_only_one_trial_goes_out_while_it_is_in_flight(world: World) -> None:
    fail_times(world, BREAKER.failure_threshold)
    world.clock.advance(COOL_DOWN)
    world.fail_with(None)
    other = TaxationService(
        world.provider, ENGINE, world.breakers, world.rates, clock=world.clock, breaker=BREAKER
    )
    in_flight: list[TaxQuote] = []

    class SlowTrial(ScriptedProvider):
        def quote(self, request: TaxRequest) -> TaxQuote:
            in_flight.append(other.quote(request))  # another container asks meanwhile
            return super().quote(request)

    trial = TaxationService(
        SlowTrial(), ENGINE, world.breakers, world.rates, clock=world.clock, breaker=BREAKER
    )
    assert not trial.quote(nyc()).estimated

    assert [quote.estimated for quote in in_flight] == [True]
    assert world.breaker_state is BreakerState.CLOSED


def test_a_success_resets_the_count_so_only_consecutive_failures_open_the_breaker(world: World) -> None:
    for _ in range(3):
        fail_times(world, BREAKER.failure_threshold - 1)
        world.fail_with(None)
        world.service.quote(nyc())

    assert world.breaker_state is BreakerState.CLOSED


def test_a_breaker_write_lost_to_another_container_is_reapplied_to_what_it_wrote(world: World) -> None:
    fail_times(world, 1)
    # Another container records a failure just before this one writes its own.
    world.breakers.steal.append(lambda stored: stored.record_failure(epoch_ns(world.clock())))

    fail_times(world, 1)

    breaker, version = world.breakers.items["faketax"]
    assert breaker.consecutive_failures == 3  # 1 + theirs + ours: none lost
    assert breaker.state_at(epoch_ns(world.clock())) is BreakerState.OPEN
    assert version == 3


def test_when_the_breaker_store_fails_the_provider_is_still_called(world: World) -> None:
    world.breakers.failing = True

    quote = world.service.quote(nyc())
    fail_times(world, 1)

    assert quote.engine == "faketax"
    assert world.provider.calls == 2


# ---- a refusal -----------------------------------------------------------------------------------------


def test_a_request_the_provider_refuses_is_raised_not_estimated_and_does_not_count_as_a_failure(
    world: World,
) -> None:
    fail_times(world, BREAKER.failure_threshold - 1)
    world.fail_with(TaxProviderRejected("tax provider faketax rejected the request: status 422", status=422))

    with pytest.raises(TaxProviderRejected):
        world.service.quote(nyc())

    breaker, _ = world.breakers.items["faketax"]
    assert breaker.consecutive_failures == 0  # the provider answered: it is up
    assert world.metrics.counts["TaxEstimated"] == BREAKER.failure_threshold - 1  # none for the refusal


# ---- reconciliation ------------------------------------------------------------------------------------


def test_the_next_close_reconciles_estimated_lines_against_the_providers_actual_tax(world: World) -> None:
    world.service.quote(nyc())
    [estimated] = fail_times(world, 1)
    world.fail_with(None)
    world.provider.rate = Decimal("0.09")  # the provider's actual rate moved meanwhile

    actual = world.service.quote(nyc())
    adjustments = world.service.reconcile(estimated.lines, actual)

    assert adjustments is not None
    assert [(a.line_ref, a.jurisdiction, a.estimated_minor, a.actual_minor) for a in adjustments] == [
        ("api", "US-NY", 888, 900)
    ]
    assert adjustments[0].to_json(Currency.of("USD"))["amount"] == "0.12"


def test_reconciliation_waits_while_the_actual_tax_is_itself_an_estimate(world: World) -> None:
    world.service.quote(nyc())
    [estimated] = fail_times(world, 1)
    [still_estimated] = fail_times(world, 1)

    assert world.service.reconcile(estimated.lines, still_estimated) is None
