"""Tax provider state in the billing table on moto: the breaker and learned rates all containers share."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest

from billing.adapters.tax_provider import HttpTaxProvider
from billing.adapters.tax_state import (
    BREAKER_SK,
    DynamoBreakerStore,
    DynamoLastKnownGoodStore,
    rate_sort_key,
)
from billing.domain.tax.model import SellerConfig, TaxLine, TaxLocation, TaxQuote, TaxReason
from billing.domain.tax.resilience import BreakerState, CircuitBreaker, LastKnownGoodRates
from billing.services.taxation import TaxationService
from billing.settings import Settings
from tests.integration.test_tax_provider import NY_RATE, FakeTaxProvider
from tests.unit.tax.builders import ENGINE, US_SELLER, request

NYC = TaxLocation("US", "NY", "10001")
BROOKLYN = TaxLocation("US", "NY", "11201")
BREAKER = CircuitBreaker(failure_threshold=2, cool_down_ns=30 * 1_000_000_000)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def fake_provider() -> Iterator[FakeTaxProvider]:
    fake = FakeTaxProvider()
    fake.start()
    yield fake
    fake.stop()


def container(settings: Settings, fake: FakeTaxProvider, clock: Clock) -> TaxationService:
    """What one Lambda container builds: its own client, stores and adapter over the same table."""
    client = boto3.client("dynamodb")
    return TaxationService(
        HttpTaxProvider(fake.config(timeout_seconds=0.5)),
        ENGINE,
        DynamoBreakerStore(settings.billing_table, client),
        DynamoLastKnownGoodStore(settings.billing_table, client),
        clock=clock,
        breaker=BREAKER,
    )


def stored_breaker(settings: Settings) -> tuple[CircuitBreaker, int]:
    return DynamoBreakerStore(settings.billing_table).load("faketax", BREAKER)


def state_now(settings: Settings, clock: Clock) -> BreakerState:
    breaker, _ = stored_breaker(settings)
    return breaker.state_at((clock() - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000)


# ---- the service across containers ---------------------------------------------------------------------


def test_a_breaker_opened_by_one_container_keeps_every_container_off_the_failing_provider(
    settings: Settings, fake_provider: FakeTaxProvider
) -> None:
    clock = Clock()
    first, second = container(settings, fake_provider, clock), container(settings, fake_provider, clock)
    first.quote(request(NYC, ("api", 10_000)))  # learns 8.875 % for NYC
    fake_provider.mode, fake_provider.status = "status", 503

    for _ in range(BREAKER.failure_threshold):
        assert first.quote(request(NYC, ("api", 10_000))).estimated
    calls = len(fake_provider.seen)
    estimate = second.quote(request(NYC, ("api", 20_000)))

    assert len(fake_provider.seen) == calls  # the second container never called
    assert state_now(settings, clock) is BreakerState.OPEN
    assert [(t.jurisdiction, t.rate, t.tax_minor, t.estimated) for t in estimate.lines] == [
        ("US-NY", NY_RATE, 1_775, True)  # the rate the first container learned
    ]
    assert estimate.decisions[0]["fallback_cause"] == "breaker_open"


def test_after_the_cool_down_the_breaker_half_opens_and_one_success_closes_it_for_everyone(
    settings: Settings, fake_provider: FakeTaxProvider
) -> None:
    clock = Clock()
    first, second = container(settings, fake_provider, clock), container(settings, fake_provider, clock)
    fake_provider.mode = "garbage"
    for _ in range(BREAKER.failure_threshold):
        first.quote(request(NYC, ("api", 10_000)))
    clock.now += timedelta(seconds=30)
    assert state_now(settings, clock) is BreakerState.HALF_OPEN
    fake_provider.mode = "ok"

    trial = second.quote(request(NYC, ("api", 10_000)))

    assert not trial.estimated
    assert state_now(settings, clock) is BreakerState.CLOSED
    assert not first.quote(request(NYC, ("api", 10_000))).estimated
    breaker, version = stored_breaker(settings)
    assert breaker.consecutive_failures == 0
    assert version == 4  # 2 failures, the trial claimed, its success


def test_a_timeout_counts_as_a_failure_and_is_answered_within_the_budget(
    settings: Settings, fake_provider: FakeTaxProvider
) -> None:
    clock = Clock()
    service = container(settings, fake_provider, clock)
    fake_provider.mode, fake_provider.delay = "slow", 2.0

    quote = service.quote(request(NYC, ("api", 10_000)))

    assert quote.estimated
    assert quote.decisions[0]["fallback_cause"] == "provider_timeout"
    assert stored_breaker(settings)[0].consecutive_failures == 1


# ---- the breaker item ----------------------------------------------------------------------------------


def test_a_breaker_is_stored_with_a_version_and_a_stale_writer_loses(settings: Settings) -> None:
    store = DynamoBreakerStore(settings.billing_table)
    now = datetime(2026, 4, 1, tzinfo=UTC)
    assert store.load("faketax", BREAKER) == (BREAKER, 0)

    opened = BREAKER.record_failure(1_000).record_failure(2_000)
    assert store.save("faketax", opened, 0, now)
    assert not store.save("faketax", BREAKER, 0, now)  # created meanwhile by someone else
    assert store.load("faketax", BREAKER) == (opened, 1)

    _, trial = opened.acquire(2_000 + BREAKER.cool_down_ns)
    assert store.save("faketax", trial, 1, now)
    assert not store.save("faketax", opened.record_success(0), 1, now)  # read version 1, now 2
    assert store.load("faketax", BREAKER) == (trial, 2)


def test_the_configured_threshold_and_cool_down_apply_to_the_stored_state(settings: Settings) -> None:
    store = DynamoBreakerStore(settings.billing_table)
    store.save("faketax", BREAKER.record_failure(5), 0, datetime(2026, 4, 1, tzinfo=UTC))

    breaker, _ = store.load("faketax", CircuitBreaker(failure_threshold=9, cool_down_ns=7))

    assert (breaker.failure_threshold, breaker.cool_down_ns, breaker.consecutive_failures) == (9, 7, 1)


def test_the_breaker_item_is_keyed_by_provider(settings: Settings) -> None:
    DynamoBreakerStore(settings.billing_table).save("faketax", BREAKER, 0, datetime(2026, 4, 1, tzinfo=UTC))

    item = boto3.client("dynamodb").get_item(
        TableName=settings.billing_table, Key={"pk": {"S": "TAXPROVIDER#faketax"}, "sk": {"S": BREAKER_SK}}
    )["Item"]
    assert (item["version"]["N"], item["entity"]["S"]) == ("1", "tax_provider_breaker")


# ---- last-known-good items -----------------------------------------------------------------------------


def provider_quote(ask: Any, rate: Decimal, jurisdiction: str = "US-NY") -> TaxQuote:
    lines = tuple(
        TaxLine(line.ref, jurisdiction, rate, line.amount_minor, 1, TaxReason.TAXABLE, "p:1")
        for line in ask.lines
    )
    return TaxQuote(ask.currency, lines, (), "faketax")


def test_learned_rates_round_trip_by_postal_code_with_the_region_as_second_choice(settings: Settings) -> None:
    store = DynamoLastKnownGoodStore(settings.billing_table)
    ask = request(NYC, ("api", 10_000), ("storage", 500, "data_processing"))
    store.save(
        "faketax", US_SELLER, LastKnownGoodRates().learn(ask, provider_quote(ask, NY_RATE)), datetime.now(UTC)
    )

    same_place = store.load("faketax", request(NYC, ("x", 1), ("y", 1, "data_processing")))
    elsewhere_in_ny = store.load("faketax", request(BROOKLYN, ("x", 1)))

    assert [rate.rate for rate in same_place.lookup(NYC, "saas", False) or ()] == [NY_RATE]
    assert same_place.lookup(NYC, "data_processing", False) is not None
    assert [rate.rate for rate in elsewhere_in_ny.lookup(BROOKLYN, "saas", False) or ()] == [NY_RATE]
    assert elsewhere_in_ny.lookup(BROOKLYN, "saas", True) is None  # B2B is learned apart


def test_a_newer_rate_replaces_the_older_one_last_writer_wins(settings: Settings) -> None:
    store = DynamoLastKnownGoodStore(settings.billing_table)
    ask = request(NYC, ("api", 10_000))
    for rate in (Decimal("0.08"), NY_RATE):
        learned = LastKnownGoodRates().learn(ask, provider_quote(ask, rate))
        store.save("faketax", US_SELLER, learned, datetime.now(UTC))

    known = store.load("faketax", ask).lookup(NYC, "saas", False)

    assert [rate.rate for rate in known or ()] == [NY_RATE]


def test_rates_learned_for_one_seller_are_not_used_for_a_seller_registered_elsewhere(
    settings: Settings,
) -> None:
    store = DynamoLastKnownGoodStore(settings.billing_table)
    ask = request(NYC, ("api", 10_000))
    store.save(
        "faketax", US_SELLER, LastKnownGoodRates().learn(ask, provider_quote(ask, NY_RATE)), datetime.now(UTC)
    )

    other_seller = request(NYC, ("api", 10_000), seller=SellerConfig("US", frozenset({"US-TX"})))

    assert store.load("faketax", other_seller).rates == {}
    assert store.load("otherprovider", ask).rates == {}


def test_key_parts_are_encoded_so_a_postal_code_cannot_forge_another_key(settings: Settings) -> None:
    tricky = TaxLocation("US", "NY", "10001#saas#B2B")
    store = DynamoLastKnownGoodStore(settings.billing_table)
    ask = request(tricky, ("api", 10_000))
    store.save(
        "faketax", US_SELLER, LastKnownGoodRates().learn(ask, provider_quote(ask, NY_RATE)), datetime.now(UTC)
    )

    assert "10001%23saas%23B2B" in rate_sort_key(US_SELLER, ("US", "NY", "10001#saas#B2B", "saas", False))
    assert store.load("faketax", ask).lookup(tricky, "saas", False) is not None
    assert (
        store.load("faketax", request(TaxLocation("US", "NY", "10001"), ("api", 1))).lookup(
            TaxLocation("US", "NY", "10001"), "saas", True
        )
        is None
    )


def test_a_request_with_many_lines_reads_its_rates_in_batches(settings: Settings) -> None:
    store = DynamoLastKnownGoodStore(settings.billing_table)
    lines = [(f"l{i}", 100, f"code{i}") for i in range(120)]  # 240 candidate keys: three batches
    ask = request(NYC, *lines)
    store.save(
        "faketax", US_SELLER, LastKnownGoodRates().learn(ask, provider_quote(ask, NY_RATE)), datetime.now(UTC)
    )

    known = store.load("faketax", ask)

    assert len(known.rates) == 240  # each code at the postal code and at the region


def test_unchanged_rates_are_not_rewritten_so_the_outbox_stream_stays_quiet(settings: Settings) -> None:
    store = DynamoLastKnownGoodStore(settings.billing_table)
    ask = request(TaxLocation("US", "NY"), ("api", 10_000))
    learned = LastKnownGoodRates().learn(ask, provider_quote(ask, NY_RATE))
    first, later = datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 4, 2, tzinfo=UTC)
    key = {
        "pk": {"S": "TAXPROVIDER#faketax"},
        "sk": {"S": rate_sort_key(US_SELLER, next(iter(learned.rates)))},
    }

    store.save("faketax", US_SELLER, learned, first)
    store.save("faketax", US_SELLER, learned, later)

    item = boto3.client("dynamodb").get_item(TableName=settings.billing_table, Key=key)["Item"]
    assert item["updated_at"]["S"] == first.isoformat()
    assert item["entity"]["S"] == "tax_last_known_good"
