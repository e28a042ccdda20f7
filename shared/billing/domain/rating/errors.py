"""Errors of the rating domain: a catalog that cannot be accepted, and stored data that cannot be rated.

Both carry a stable machine `code` (never match on message text) and, when it helps, the offending
`field` in `details`.
"""

from __future__ import annotations

from billing.domain.errors import BillingError, InvalidRequest


class InvalidCatalog(InvalidRequest):
    """A meter, price, plan, currency, timezone or anchor day sent by a client is not acceptable (422).

    Codes: unknown_currency, invalid_amount, invalid_tiers, invalid_charge, invalid_meter, invalid_plan,
    unknown_meter, unknown_timezone, invalid_anchor_day, invalid_customer, invalid_subscription.
    """

    code = "invalid_catalog"

    def __init__(self, message: str, *, code: str, field: str | None = None) -> None:
        super().__init__(message, code=code, details=[{"field": field}] if field else None)
        self.field = field


class RatingFailed(BillingError):
    """Stored inputs cannot be rated as they are (a billing run records it and goes on with others).

    Codes: currency_mismatch, negative_quantity, invalid_segments, unknown_meter, wrong_period,
    invalid_proration, unrepresentable_amount.
    """

    code = "rating_failed"
