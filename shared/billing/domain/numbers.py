"""Numbers the system can keep: exactly what DynamoDB stores, so nothing accepted is refused later.

DynamoDB numbers have at most 38 significant digits and a magnitude of 1E-130 to 9.9999…E+125 (or are
zero); boto3 serializes them with a decimal context that refuses any rounding. A number outside that is
refused at the edge, with the field it came from, rather than accepted and then lost in storage.
"""

from __future__ import annotations

from decimal import Clamped, Context, Decimal, Inexact, Overflow, Rounded, Underflow

MAX_DIGITS = 38
MIN_ADJUSTED_EXPONENT = -130  # 1E-130
MAX_ADJUSTED_EXPONENT = 125  # 9.99…E+125
RANGE_TEXT = "at most 38 significant digits and a magnitude from 1E-130 to 9.99E+125"
# The context boto3 serializes numbers with: any rounding, clamping or underflow is an error rather
# than a silently different number ("1.000…0" with 43 digits, "0E-500").
_BOTO3 = Context(Emin=-128, Emax=126, prec=38, traps=[Clamped, Overflow, Inexact, Rounded, Underflow])


def storable_problem(number: Decimal | int) -> str | None:
    """Why DynamoDB could not store `number` exactly (a sentence fragment), or None when it can."""
    if isinstance(number, bool):
        return "must be a number"
    value = Decimal(number)
    if not value.is_finite():
        return "must be a finite number"
    try:
        _BOTO3.create_decimal(value)
    except ArithmeticError:
        return f"has more precision or magnitude than can be stored ({RANGE_TEXT})"
    # DynamoDB's own range is narrower than that context: 1E-131 or 1E+126 would be refused on write.
    if not value.is_zero() and not MIN_ADJUSTED_EXPONENT <= value.adjusted() <= MAX_ADJUSTED_EXPONENT:
        return f"is out of the range that can be stored ({RANGE_TEXT})"
    return None
