"""Plans (versioned price lists) and subscriptions (which plan version applied when).

A plan version is immutable: changing a plan publishes a new version, so history is never rewritten.
A subscription is a sequence of segments, each one plan version over a half-open span [start, end) of
time; a plan change at instant t ends one segment at t and starts the next at t, a cancellation ends the
last one. Invoices are built per billing period from the segments that overlap it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from itertools import pairwise
from typing import Any

from billing.domain.rating._fields import identifier, optional_identifier, reject_unknown, require_object
from billing.domain.rating.errors import InvalidCatalog
from billing.domain.rating.money import Currency, parse_decimal
from billing.domain.rating.periods import BillingPeriod, Interval, utc
from billing.domain.rating.pricing import Charge

_PLAN_FIELDS = (
    "id", "version", "currency", "interval", "base_fee", "tax_code", "minimum_commitment", "charges"
)  # fmt: skip


@dataclass(frozen=True)
class Plan:
    """One version of a plan: a base fee per period, an optional minimum commitment, usage charges."""

    id: str
    version: int
    currency: Currency
    base_fee: Decimal
    charges: tuple[Charge, ...] = ()
    minimum_commitment: Decimal | None = None
    tax_code: str | None = None
    interval: Interval = Interval.MONTH

    def __post_init__(self) -> None:
        identifier(self.id, "id", code="invalid_plan")
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise InvalidCatalog("version must be a positive integer", code="invalid_plan", field="version")
        object.__setattr__(self, "currency", Currency.of(self.currency))
        object.__setattr__(self, "base_fee", parse_decimal(self.base_fee, field="base_fee"))
        if self.minimum_commitment is not None:
            commitment = parse_decimal(self.minimum_commitment, field="minimum_commitment")
            object.__setattr__(self, "minimum_commitment", commitment)
        optional_identifier(self.tax_code, "tax_code", code="invalid_plan")
        try:
            object.__setattr__(self, "interval", Interval(self.interval))
        except ValueError:
            raise InvalidCatalog(
                f"interval must be one of {', '.join(i.value for i in Interval)}",
                code="invalid_plan",
                field="interval",
            ) from None
        charges = tuple(self.charges)
        if not all(isinstance(charge, Charge) for charge in charges):
            raise InvalidCatalog("charges must be a list of charges", code="invalid_plan", field="charges")
        meters = [charge.meter for charge in charges]
        repeated = sorted({meter for meter in meters if meters.count(meter) > 1})
        if repeated:
            # One charge per meter keeps every usage line (and its late-event adjustment) traceable.
            raise InvalidCatalog(
                f"a plan has at most one charge per meter; repeated: {', '.join(repeated)}",
                code="invalid_plan",
                field="charges",
            )
        object.__setattr__(self, "charges", charges)

    @classmethod
    def from_json(cls, data: Any, *, version: int | None = None) -> Plan:
        """A plan from the API shape; `version` (assigned by the catalog) overrides any in the body."""
        data = require_object(data, "a plan", code="invalid_plan")
        reject_unknown(data, _PLAN_FIELDS, "plan", code="invalid_plan")
        for name in ("id", "currency", "base_fee"):
            if data.get(name) is None:
                raise InvalidCatalog(f"a plan needs {name}", code="invalid_plan", field=name)
        charges = data.get("charges") or []
        if not isinstance(charges, list):
            raise InvalidCatalog("charges must be a list", code="invalid_plan", field="charges")
        return cls(
            id=data["id"],
            version=version if version is not None else data.get("version", 1),
            currency=Currency.of(data["currency"]),
            base_fee=data["base_fee"],
            charges=tuple(Charge.from_json(item) for item in charges),
            minimum_commitment=data.get("minimum_commitment"),
            tax_code=data.get("tax_code"),
            interval=data.get("interval", Interval.MONTH.value),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "version": self.version,
            "currency": self.currency.code,
            "interval": self.interval.value,
            "base_fee": format(self.base_fee, "f"),
            "minimum_commitment": None
            if self.minimum_commitment is None
            else format(self.minimum_commitment, "f"),
            "tax_code": self.tax_code,
            "charges": [charge.to_json() for charge in self.charges],
        }

    def check_meters(self, known: Iterable[str]) -> None:
        """Refuse a plan whose charges name a meter the tenant has not defined."""
        known_keys = set(known)
        for index, charge in enumerate(self.charges):
            if charge.meter not in known_keys:
                raise InvalidCatalog(
                    f"charge {index + 1} is on the unknown meter {charge.meter!r}; define the meter first",
                    code="unknown_meter",
                    field=f"charges[{index}].meter",
                )


@dataclass(frozen=True)
class SubscriptionSegment:
    """One plan version in effect over [start, end); end None while it still runs."""

    plan: Plan
    start: datetime
    end: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", utc(self.start))
        if self.end is not None:
            object.__setattr__(self, "end", utc(self.end))
            if self.end <= self.start:
                raise InvalidCatalog(
                    "a subscription segment ends after it starts", code="invalid_subscription", field="end"
                )

    def window_in(self, period: BillingPeriod) -> BillingPeriod | None:
        """The part of a billing period this segment covers, or None."""
        return period.intersect(self.start, self.end)


@dataclass(frozen=True)
class Subscription:
    """A customer's subscription: its plan-version segments in time order, without overlap."""

    id: str
    customer_id: str
    segments: tuple[SubscriptionSegment, ...]

    def __post_init__(self) -> None:
        identifier(self.id, "id", code="invalid_subscription")
        identifier(self.customer_id, "customer_id", code="invalid_subscription")
        segments = tuple(self.segments)
        for earlier, later in pairwise(segments):
            if earlier.end is None or earlier.end > later.start:
                raise InvalidCatalog(
                    "subscription segments must be in time order without overlap",
                    code="invalid_subscription",
                    field="segments",
                )
        object.__setattr__(self, "segments", segments)

    @classmethod
    def start(cls, id: str, customer_id: str, plan: Plan, at: datetime) -> Subscription:
        return cls(id, customer_id, (SubscriptionSegment(plan, at),))

    @property
    def active(self) -> SubscriptionSegment | None:
        """The running (open-ended) segment, if the subscription is not cancelled."""
        if self.segments and self.segments[-1].end is None:
            return self.segments[-1]
        return None

    def change_plan(self, plan: Plan, at: datetime) -> Subscription:
        """Switch to another plan (or plan version) from instant `at` on; the old one ends at `at`."""
        current = self._running(at, "change plan")
        if plan.currency != current.plan.currency:
            raise InvalidCatalog(
                f"cannot change from a {current.plan.currency} plan to a {plan.currency} plan; "
                "start a new subscription",
                code="invalid_subscription",
                field="plan_id",
            )
        kept = self.segments[:-1]
        if utc(at) > current.start:
            kept += (replace(current, end=utc(at)),)
        # A change at the very instant the segment started replaces it: a zero-length segment bills nothing.
        return replace(self, segments=(*kept, SubscriptionSegment(plan, at)))

    def cancel(self, at: datetime) -> Subscription:
        """End the subscription at instant `at` (usage and base fee stop there)."""
        current = self._running(at, "cancel")
        kept = self.segments[:-1]
        if utc(at) > current.start:
            kept += (replace(current, end=utc(at)),)
        return replace(self, segments=kept)

    def segments_in(self, period: BillingPeriod) -> list[SubscriptionSegment]:
        return [segment for segment in self.segments if segment.window_in(period) is not None]

    def _running(self, at: datetime, action: str) -> SubscriptionSegment:
        current = self.active
        if current is None:
            raise InvalidCatalog(
                f"cannot {action}: the subscription is cancelled", code="invalid_subscription"
            )
        if utc(at) < current.start:
            raise InvalidCatalog(
                f"cannot {action} before the current plan started ({current.start.isoformat()})",
                code="invalid_subscription",
                field="effective_at",
            )
        return current
