"""What rating needs to know about a customer: its currency and its billing cycle (timezone, anchor day)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from billing.domain.rating._fields import identifier, require_object
from billing.domain.rating.errors import InvalidCatalog
from billing.domain.rating.money import Currency
from billing.domain.rating.periods import BillingCycle, billing_timezone, check_anchor_day


@dataclass(frozen=True)
class Customer:
    id: str
    currency: Currency
    timezone: str
    billing_anchor_day: int

    def __post_init__(self) -> None:
        identifier(self.id, "id", code="invalid_customer")
        object.__setattr__(self, "currency", Currency.of(self.currency))
        billing_timezone(self.timezone)
        check_anchor_day(self.billing_anchor_day)

    @property
    def cycle(self) -> BillingCycle:
        return BillingCycle(self.timezone, self.billing_anchor_day)

    @classmethod
    def from_json(cls, data: Any) -> Customer:
        """From the API customer shape; fields rating does not use (name, email, tax, payment) are ignored."""
        data = require_object(data, "a customer", code="invalid_customer")
        for name in ("id", "currency", "timezone", "billing_anchor_day"):
            if data.get(name) is None:
                raise InvalidCatalog(f"a customer needs {name}", code="invalid_customer", field=name)
        return cls(data["id"], data["currency"], data["timezone"], data["billing_anchor_day"])
