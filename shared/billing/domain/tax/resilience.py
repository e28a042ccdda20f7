"""The pure parts of calling an external tax provider: a circuit breaker and a last-known-good fallback.

The service that calls a provider (an adapter raising `TaxProviderFailed` on timeout or error) does:

    allowed, breaker = breaker.acquire(now_ns)
    if allowed:
        try:
            quote = provider.quote(request)
        except TaxProviderFailed:
            breaker = breaker.record_failure(now_ns)
            quote = known.estimate(request)          # estimated=True lines
        else:
            breaker = breaker.record_success(now_ns)
            known = known.learn(request, quote)
    else:
        quote = known.estimate(request)

and reconciles the estimated lines at the next close (`reconciliation`). Times are monotonic
nanoseconds passed in (`time.monotonic_ns()` in the caller): nothing here reads a clock, and a breaker is
a value, so it can be kept per process or stored between invocations.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from billing.domain.rating.money import decimal_text
from billing.domain.tax.errors import TaxError, TaxUnavailable
from billing.domain.tax.model import (
    EXEMPT_TAX_CODE,
    TaxableLine,
    TaxEngine,
    TaxLine,
    TaxLocation,
    TaxQuote,
    TaxReason,
    TaxRequest,
    decision_record,
)
from billing.domain.tax.rules_engine import tax_amounts

SECOND_NS = 1_000_000_000
FALLBACK_ENGINE = "last_known_good"


class BreakerState(StrEnum):
    CLOSED = "closed"  # calls go out; consecutive failures are counted
    OPEN = "open"  # calls are refused until the cool-down has passed
    HALF_OPEN = "half_open"  # one trial call may go out; its outcome closes or reopens the breaker


@dataclass(frozen=True)
class CircuitBreaker:
    """closed -> open after `failure_threshold` consecutive failures; open -> half-open after
    `cool_down_ns`; half-open -> closed on the trial's success, -> open again on its failure.

    Any success closes the breaker (even one that started before it opened: the provider answers). A
    trial that never reports back (its Lambda died) is presumed lost after another cool-down, so the
    breaker cannot stay half-open forever.
    """

    failure_threshold: int = 5
    cool_down_ns: int = 30 * SECOND_NS
    consecutive_failures: int = 0
    opened_at_ns: int | None = None
    trial_started_ns: int | None = None

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.cool_down_ns < 0:
            raise TaxError(
                "a breaker needs a threshold >= 1 and a cool-down >= 0", code="invalid_tax_request"
            )

    def state_at(self, now_ns: int) -> BreakerState:
        if self.opened_at_ns is None:
            return BreakerState.CLOSED
        if now_ns - self.opened_at_ns >= self.cool_down_ns:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def acquire(self, now_ns: int) -> tuple[bool, CircuitBreaker]:
        """May a call go out now? Returns the answer and the breaker to keep."""
        state = self.state_at(now_ns)
        if state is BreakerState.CLOSED:
            return True, self
        if state is BreakerState.OPEN:
            return False, self
        trial_lost = self.trial_started_ns is not None and now_ns - self.trial_started_ns >= self.cool_down_ns
        if self.trial_started_ns is None or trial_lost:
            return True, dataclasses.replace(self, trial_started_ns=now_ns)
        return False, self  # one trial at a time

    def record_success(self, now_ns: int) -> CircuitBreaker:
        return CircuitBreaker(self.failure_threshold, self.cool_down_ns)

    def record_failure(self, now_ns: int) -> CircuitBreaker:
        state = self.state_at(now_ns)
        if state is BreakerState.HALF_OPEN:
            return dataclasses.replace(
                self,
                consecutive_failures=self.consecutive_failures + 1,
                opened_at_ns=now_ns,
                trial_started_ns=None,
            )
        failures = self.consecutive_failures + 1
        if state is BreakerState.CLOSED and failures >= self.failure_threshold:
            return dataclasses.replace(self, consecutive_failures=failures, opened_at_ns=now_ns)
        # Open: a late failure of a call admitted before it opened changes nothing but the count.
        return dataclasses.replace(self, consecutive_failures=failures)


@dataclass(frozen=True)
class KnownRate:
    """A rate a provider answered for a (location, tax code, B2B/B2C) at some tax date."""

    jurisdiction: str
    rate: Decimal
    taxable_fraction: Decimal
    rule_id: str
    tax_type: str
    reason: str
    learned_on: date

    def to_json(self) -> dict[str, Any]:
        return {
            "jurisdiction": self.jurisdiction,
            "rate": decimal_text(self.rate),
            "taxable_fraction": decimal_text(self.taxable_fraction),
            "rule_id": self.rule_id,
            "tax_type": self.tax_type,
            "reason": self.reason,
            "learned_on": self.learned_on.isoformat(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> KnownRate:
        return cls(
            jurisdiction=str(data["jurisdiction"]),
            rate=Decimal(data["rate"]),
            taxable_fraction=Decimal(data["taxable_fraction"]),
            rule_id=str(data["rule_id"]),
            tax_type=str(data["tax_type"]),
            reason=str(data["reason"]),
            learned_on=date.fromisoformat(data["learned_on"]),
        )


# (country, region, postal code, tax code, business?)
RateKey = tuple[str, str | None, str | None, str, bool]


@dataclass(frozen=True)
class LastKnownGoodRates:
    """The rates the provider last answered, to estimate with while it is failing.

    Keyed by the full location (postal code included: providers add local rates) and, as a second
    choice, by country and region alone; by tax code; and by business or consumer, because B2B and B2C
    are taxed differently (reverse charge, Ohio). Exempt customers and the "exempt" code are not learned:
    they are decided without a provider.
    """

    rates: Mapping[RateKey, tuple[KnownRate, ...]] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rates", MappingProxyType(dict(self.rates)))

    def learn(self, request: TaxRequest, quote: TaxQuote) -> LastKnownGoodRates:
        if request.customer.exempt:
            return self
        learned = dict(self.rates)
        for line in request.lines:
            code = request.tax_code_of(line)
            tax_lines = [tax for tax in quote.lines_for(line.ref) if not tax.estimated]
            if code == EXEMPT_TAX_CODE or not tax_lines:
                continue
            known = tuple(
                KnownRate(
                    tax.jurisdiction,
                    tax.rate,
                    tax.taxable_fraction,
                    tax.rule_id,
                    tax.tax_type,
                    tax.reason.value,
                    request.tax_date,
                )
                for tax in tax_lines
            )
            for key in _keys(request.location_of(line), code, request.customer.is_business):
                learned[key] = known
        return LastKnownGoodRates(learned)

    def lookup(self, location: TaxLocation, tax_code: str, business: bool) -> tuple[KnownRate, ...] | None:
        for key in _keys(location, tax_code, business):
            if key in self.rates:
                return self.rates[key]
        return None

    def estimate(
        self, request: TaxRequest, *, fallback: TaxEngine | None = None, cause: str = "provider_unavailable"
    ) -> TaxQuote:
        """Tax lines from remembered rates, each `estimated=True`, rounded per line like the engine.

        A line with no remembered rate is taxed by `fallback` (e.g. the built-in `RulesEngine`), its lines
        also marked estimated; without a fallback, `TaxUnavailable` (retry the close later).
        """
        lines: list[TaxLine] = []
        decisions: list[dict[str, Any]] = []
        unknown: list[TaxableLine] = []
        for line in request.lines:
            code = request.tax_code_of(line)
            location = request.location_of(line)
            if request.customer.exempt or code == EXEMPT_TAX_CODE:
                reason = TaxReason.CUSTOMER_EXEMPT if request.customer.exempt else TaxReason.EXEMPT_PRODUCT
                tax = TaxLine(line.ref, location.code, Decimal(0), 0, 0, reason, reason.value)
                lines.append(tax)
                decisions.append(_audit(request, line, tax, cause, None))
                continue
            known = self.lookup(location, code, request.customer.is_business)
            if known is None:
                unknown.append(line)
                continue
            for rate in known:
                taxable, tax_minor = tax_amounts(
                    line.amount_minor, rate.taxable_fraction, rate.rate, request.currency
                )
                tax = TaxLine(
                    line_ref=line.ref,
                    jurisdiction=rate.jurisdiction,
                    rate=rate.rate,
                    taxable_amount_minor=taxable,
                    tax_minor=tax_minor,
                    reason=TaxReason.ESTIMATED,
                    rule_id=rate.rule_id,
                    estimated=True,
                    tax_type=rate.tax_type,
                    taxable_fraction=rate.taxable_fraction,
                    note=f"estimated: {rate.reason} rate last known on {rate.learned_on.isoformat()}",
                )
                lines.append(tax)
                decisions.append(_audit(request, line, tax, cause, rate))
        if unknown:
            if fallback is None:
                refs = ", ".join(line.ref for line in unknown)
                raise TaxUnavailable(
                    f"the tax provider is unavailable and no rate is known for lines {refs}",
                    code="no_known_rate",
                )
            fallback_quote = fallback.quote(dataclasses.replace(request, lines=tuple(unknown)))
            for tax in fallback_quote.lines:
                lines.append(dataclasses.replace(tax, estimated=True))
            for decision in fallback_quote.decisions:
                decisions.append({**decision, "estimated": True, "fallback_cause": cause})
        order = {line.ref: index for index, line in enumerate(request.lines)}
        ordered = sorted(
            range(len(lines)), key=lambda i: order[lines[i].line_ref]
        )  # stable: keeps rule order
        return TaxQuote(
            request.currency,
            tuple(lines[i] for i in ordered),
            tuple(decisions[i] for i in ordered),
            FALLBACK_ENGINE,
        )

    def to_json(self) -> list[dict[str, Any]]:
        """A storable form (sorted, plain values), e.g. one DynamoDB item per tenant."""
        return [
            {
                "country": country,
                "region": region,
                "postal_code": postal,
                "tax_code": code,
                "business": business,
                "rates": [rate.to_json() for rate in rates],
            }
            for (country, region, postal, code, business), rates in sorted(
                self.rates.items(), key=lambda item: tuple(str(part) for part in item[0])
            )
        ]

    @classmethod
    def from_json(cls, data: Sequence[Mapping[str, Any]]) -> LastKnownGoodRates:
        return cls(
            {
                (
                    item["country"],
                    item["region"],
                    item["postal_code"],
                    item["tax_code"],
                    bool(item["business"]),
                ): tuple(KnownRate.from_json(rate) for rate in item["rates"])
                for item in data
            }
        )


def _keys(location: TaxLocation, tax_code: str, business: bool) -> list[RateKey]:
    exact: RateKey = (location.country, location.region, location.postal_code, tax_code, business)
    regional: RateKey = (location.country, location.region, None, tax_code, business)
    return [exact] if exact == regional else [exact, regional]


def _audit(
    request: TaxRequest, line: TaxableLine, tax: TaxLine, cause: str, rate: KnownRate | None
) -> dict[str, Any]:
    return {
        **decision_record(FALLBACK_ENGINE, request, line, tax),
        "fallback_cause": cause,
        "learned_on": rate.learned_on.isoformat() if rate else None,
    }
