"""Numbers the system can keep: exactly what DynamoDB stores, so nothing accepted is refused later.

DynamoDB numbers have at most 38 significant digits and a magnitude of 1E-130 to 9.9999…E+125 (or are
zero); boto3 serializes them with a decimal context that refuses any rounding. A number outside that is
refused at the edge, with the field it came from, rather than accepted and then lost in storage.
"""

from __future__ import annotations

from decimal import Decimal

MAX_DIGITS = 38
MIN_ADJUSTED_EXPONENT = -130  # 1E-130
MAX_ADJUSTED_EXPONENT = 125  # 9.99…E+125
RANGE_TEXT = "at most 38 significant digits and a magnitude from 1E-130 to 9.99E+125"


def storable_problem(number: Decimal | int) -> str | None:
    """Why DynamoDB could not store `number` exactly (a sentence fragment), or None when it can."""
    if isinstance(number, bool):
        return "must be a number"
    value = Decimal(number)
    if not value.is_finite():
        return "must be a finite number"
    if value.is_zero():
        return None
    # Digits as written: boto3 refuses to round "1.000…0" with more than 38 digits even though it is 1.
    if len(value.as_tuple().digits) > MAX_DIGITS:
        return f"has more precision than can be stored ({RANGE_TEXT})"
    if not MIN_ADJUSTED_EXPONENT <= value.adjusted() <= MAX_ADJUSTED_EXPONENT:
        return f"is out of the range that can be stored ({RANGE_TEXT})"
    return None
