"""Proration: the share of a period-priced amount (base fee, minimum commitment) for part of a period.

The rule: by seconds. share = amount x covered seconds / period seconds, both counted as elapsed UTC
time to the microsecond. So a day in a 28-day February is worth more than a day in a 31-day month, and
the DST day of a period counts as 23 or 25 hours, exactly as long as it really was. A full period is
exactly the full amount and an empty one is exactly zero (no division happens).

The quotient is carried to 60 significant digits and is not a rounding step: with an amount of at most
38 significant digits and a period under 10^14 microseconds, the exact fraction is either on a
minor-unit tie or more than 10^-53 (relative) away from one, so rounding the 60-digit quotient once to
minor units (in the invoice line) gives the same result as rounding the exact fraction.
"""

from __future__ import annotations

from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)

from billing.domain.rating.errors import RatingFailed
from billing.domain.rating.periods import BillingPeriod

PRORATION_PRECISION = 60
_PRORATION = Context(
    prec=PRORATION_PRECISION, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow]
)


def prorate(amount: Decimal, covered_seconds: Decimal | int, period_seconds: Decimal | int) -> Decimal:
    """amount x covered / period; exact for a full (covered == period) or an empty (0) coverage."""
    covered, whole = Decimal(covered_seconds), Decimal(period_seconds)
    if not whole > 0 or not 0 <= covered <= whole:
        raise RatingFailed(
            f"cannot prorate {covered} seconds of a {whole}-second period", code="invalid_proration"
        )
    if covered == whole:
        return amount
    if covered.is_zero():
        return Decimal(0)
    with localcontext(_PRORATION):
        return amount * covered / whole


def prorate_over(amount: Decimal, window: BillingPeriod, period: BillingPeriod) -> Decimal:
    """The share of a period's amount for a window inside it."""
    if window.start_utc < period.start_utc or window.end_utc > period.end_utc:
        raise RatingFailed("the prorated window lies outside its period", code="invalid_proration")
    return prorate(amount, window.seconds, period.seconds)
