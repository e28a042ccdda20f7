"""Taxing a document: the configured external provider behind a shared circuit breaker, else the rules engine.

With a provider: the breaker (one per provider, stored, shared by every container) decides whether a call
goes out; a good answer closes it and teaches the last-known-good rates; a failure counts against it and
is answered by those rates (lines `estimated=True`; lines with no known rate by the rules engine, also
estimated), which the next close reconciles (`reconcile`). A provider's refusal of the request
(`TaxError`, e.g. `TaxProviderRejected`) is raised as it is: the provider is up, the data must be fixed.
Without a provider the rules engine answers directly. Quotes, audit records included, are returned
untouched.

Clocks: the breaker's times are wall-clock epoch nanoseconds from the injected `clock`, because the breaker
is shared across containers and `time.monotonic_ns()` of one host means nothing on another (a few ms of
NTP skew are noise against a cool-down of seconds). `monotonic_ns` measures call latency only.
The breaker store and the rates store are advisory: if DynamoDB fails them, tax is still computed (the
provider is called as if the breaker were closed; estimates fall back to the rules engine).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from aws_lambda_powertools.metrics import MetricUnit

from billing.domain.errors import TransientFailure
from billing.domain.tax.errors import TaxError, TaxProviderFailed
from billing.domain.tax.model import SellerConfig, TaxEngine, TaxLine, TaxQuote, TaxRequest
from billing.domain.tax.reconciliation import TaxAdjustment, reconcile_estimated
from billing.domain.tax.resilience import CircuitBreaker, LastKnownGoodRates
from billing.runtime import logger, metrics

# Attempts at a conditional breaker write before giving up on it (each loss means another container
# just wrote it; the transition is re-applied to what it wrote).
BREAKER_WRITE_ATTEMPTS = 3
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


# ---- ports -------------------------------------------------------------------------------------------


class NamedTaxEngine(TaxEngine, Protocol):
    """A tax engine with a stable name (an external provider: its breaker and rates are kept by name)."""

    @property
    def name(self) -> str: ...


class BreakerStore(Protocol):
    def load(self, provider: str, template: CircuitBreaker) -> tuple[CircuitBreaker, int]:
        """The provider's breaker (threshold and cool-down from `template`) and its version (0: none)."""
        ...

    def save(self, provider: str, breaker: CircuitBreaker, expected_version: int, now: datetime) -> bool:
        """Write it if the stored version is still `expected_version`; False if another writer won."""
        ...


class LastKnownGoodStore(Protocol):
    def load(self, provider: str, request: TaxRequest) -> LastKnownGoodRates:
        """The known rates the request's lines could be estimated with."""
        ...

    def save(self, provider: str, seller: SellerConfig, learned: LastKnownGoodRates, now: datetime) -> None:
        """Replace the stored rates of every key in `learned`."""
        ...


# ---- the use case ------------------------------------------------------------------------------------


class TaxationService:
    def __init__(
        self,
        primary: NamedTaxEngine | None,
        fallback: TaxEngine | None,
        breaker_store: BreakerStore | None,
        lkg_store: LastKnownGoodStore | None,
        *,
        clock: Callable[[], datetime],
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        """`primary` is the external provider (None: the rules engine `fallback` answers everything);
        `breaker` carries the configured threshold and cool-down (its state comes from the store)."""
        if primary is None and fallback is None:
            raise ValueError("taxation needs a provider or a fallback engine")
        if primary is not None and (breaker_store is None or lkg_store is None):
            raise ValueError("a tax provider needs a breaker store and a last-known-good store")
        self._primary = primary
        self._fallback = fallback
        self._breakers = breaker_store
        self._known = lkg_store
        self._clock = clock
        self._monotonic_ns = monotonic_ns
        self._template = breaker or CircuitBreaker()

    def quote(self, request: TaxRequest) -> TaxQuote:
        if self._primary is None:
            assert self._fallback is not None  # checked in __init__
            return self._fallback.quote(request)
        provider = self._primary.name
        allowed, breaker, version = self._acquire(provider)
        if not allowed:
            metrics.add_metric(name="BreakerOpen", unit=MetricUnit.Count, value=1)
            return self._estimate(provider, request, cause="breaker_open")
        started = self._monotonic_ns()
        try:
            quote = self._primary.quote(request)
        except TaxProviderFailed as failure:
            metrics.add_metric(name="TaxProviderFailures", unit=MetricUnit.Count, value=1)
            logger.warning(
                "tax provider failed",
                extra={
                    "tax_provider": provider,
                    "document_id": request.document_id,
                    "error_code": failure.code,
                    "elapsed_ms": self._elapsed_ms(started),
                },
            )
            self._transition(provider, breaker, version, CircuitBreaker.record_failure)
            return self._estimate(provider, request, cause=failure.code)
        except TaxError as refusal:
            # The provider answered: it is healthy, whatever it thinks of this request.
            logger.warning(
                "tax provider refused the request",
                extra={
                    "tax_provider": provider,
                    "document_id": request.document_id,
                    "error_code": refusal.code,
                },
            )
            self._transition(provider, breaker, version, CircuitBreaker.record_success)
            raise
        self._transition(provider, breaker, version, CircuitBreaker.record_success)
        self._learn(provider, request, quote)
        logger.debug(
            "tax quoted by provider",
            extra={
                "tax_provider": provider,
                "document_id": request.document_id,
                "elapsed_ms": self._elapsed_ms(started),
            },
        )
        return quote

    def reconcile(
        self, previous_estimated_lines: Iterable[TaxLine], actual_quote: TaxQuote
    ) -> list[TaxAdjustment] | None:
        """The adjustments that bring last close's estimated tax lines to the actual tax, or None while
        the actual quote is itself estimated (the provider still fails): keep the lines pending and
        reconcile them at a later close rather than correct one guess with another."""
        if actual_quote.estimated:
            return None
        return reconcile_estimated(previous_estimated_lines, actual_quote.lines)

    # ---- the breaker ---------------------------------------------------------------------------------

    def _acquire(self, provider: str) -> tuple[bool, CircuitBreaker, int | None]:
        """May the call go out? With the breaker as now stored and its version (None: store failing)."""
        for _ in range(BREAKER_WRITE_ATTEMPTS):
            breaker, version = self._load_breaker(provider)
            if version is None:
                return True, breaker, None
            allowed, acquired = breaker.acquire(self._now_ns())
            if not allowed:
                return False, breaker, version
            if acquired == breaker:
                return True, breaker, version
            # A half-open trial: only the container whose write lands makes it.
            if self._save_breaker(provider, acquired, version):
                logger.info("tax provider breaker half-open: trial call", extra={"tax_provider": provider})
                return True, acquired, version + 1
        return False, breaker, None  # others keep claiming it: leave the trial to them

    def _transition(
        self,
        provider: str,
        breaker: CircuitBreaker,
        version: int | None,
        change: Callable[[CircuitBreaker, int], CircuitBreaker],
    ) -> None:
        """Apply `change` to the stored breaker, re-reading and re-applying when another writer won."""
        for attempt in range(BREAKER_WRITE_ATTEMPTS):
            if attempt or version is None:
                breaker, version = self._load_breaker(provider)
                if version is None:
                    return
            now = self._now_ns()
            updated = change(breaker, now)
            if updated == breaker:
                return
            if self._save_breaker(provider, updated, version):
                before, after = breaker.state_at(now), updated.state_at(now)
                if after is not before:
                    logger.info(
                        "tax provider breaker changed",
                        extra={"tax_provider": provider, "from": before.value, "to": after.value},
                    )
                return
        logger.warning(
            "tax provider breaker update lost to concurrent writers", extra={"tax_provider": provider}
        )

    def _load_breaker(self, provider: str) -> tuple[CircuitBreaker, int | None]:
        assert self._breakers is not None
        try:
            return self._breakers.load(provider, self._template)
        except TransientFailure as failure:
            logger.warning(
                "tax provider breaker unreadable: calling as if closed",
                extra={"tax_provider": provider, "error_code": failure.code},
            )
            return self._template, None

    def _save_breaker(self, provider: str, breaker: CircuitBreaker, version: int) -> bool:
        assert self._breakers is not None
        try:
            return self._breakers.save(provider, breaker, version, self._clock())
        except TransientFailure as failure:
            logger.warning(
                "tax provider breaker not saved", extra={"tax_provider": provider, "error_code": failure.code}
            )
            return True  # nothing more to do: a retry would meet the same throttling

    # ---- last-known-good -----------------------------------------------------------------------------

    def _estimate(self, provider: str, request: TaxRequest, *, cause: str) -> TaxQuote:
        assert self._known is not None
        try:
            known = self._known.load(provider, request)
        except TransientFailure as failure:
            logger.warning(
                "last-known-good tax rates unreadable: the rules engine estimates",
                extra={"tax_provider": provider, "error_code": failure.code},
            )
            known = LastKnownGoodRates()
        quote = known.estimate(request, fallback=self._fallback, cause=cause)
        metrics.add_metric(name="TaxEstimated", unit=MetricUnit.Count, value=1)
        logger.info(
            "tax estimated",
            extra={
                "tax_provider": provider,
                "document_id": request.document_id,
                "cause": cause,
                "estimated_lines": sum(1 for line in quote.lines if line.estimated),
            },
        )
        return quote

    def _learn(self, provider: str, request: TaxRequest, quote: TaxQuote) -> None:
        assert self._known is not None
        learned = LastKnownGoodRates().learn(request, quote)
        if not learned.rates:
            return
        try:
            self._known.save(provider, request.seller, learned, self._clock())
        except TransientFailure as failure:
            # The quote is right; only a future estimate is poorer for it.
            logger.warning(
                "last-known-good tax rates not saved",
                extra={"tax_provider": provider, "error_code": failure.code},
            )

    # ---- clocks ---------------------------------------------------------------------------------------

    def _now_ns(self) -> int:
        """Wall-clock epoch nanoseconds (exact to the microsecond: no float)."""
        return (self._clock() - _EPOCH) // _MICROSECOND * 1000

    def _elapsed_ms(self, started_ns: int) -> int:
        return (self._monotonic_ns() - started_ns) // 1_000_000
