"""Invoices: a pure function from (customer, period, subscription segments, meters, events) to lines.

Rules (each one decided here, once):
- Per segment (one plan version over its window of the period), in time order: the base fee prorated
  by seconds (`proration`), one usage line per charge with the usage of that window only (events at
  or after the window start and before its end: a plan change at t rates events at t under the new
  plan), then the minimum commitment true-up.
- Minimum commitment, per segment: the plan version's commitment prorated by seconds of the window
  (a subscription that starts, changes plan or is cancelled mid-period commits to its share only), rounded
  once; when the segment's rounded base fee + usage lines are below it, a `minimum_commitment` line bills
  the difference. A commitment is a term of one plan version, so usage billed under another version with
  other prices does not count toward it, and the true-up stays traceable to one version and window.
- Each line is rounded once, half-even, to the currency's minor unit; the subtotal is the sum of the
  rounded lines (never the rounding of a sum).
- A base fee of zero makes no line; a usage charge always has a line, zero or not, so the invoice shows
  every price the customer is on.
- Events are deduplicated by (tenant, customer, event id) and only the given tenant's and customer's
  count, so the invoice is the same for the same *set* of events in any order and with any repetition.
- The invoice id is "inv_" + the first 24 hex digits of SHA-256 over canonical JSON of (tenant,
  subscription, period start): rating the same period twice names the same invoice.
- Late events: `adjustment_for` compares a re-rated period with what was billed for it and returns
  `adjustment` lines for the differences, carried on the next invoice (`build_invoice(adjustments=...)`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from billing.domain import canonical_json
from billing.domain.rating.customers import Customer
from billing.domain.rating.errors import RatingFailed
from billing.domain.rating.meters import Meter, aggregate, dedupe
from billing.domain.rating.money import Currency, Money, decimal_text, format_major, to_minor
from billing.domain.rating.periods import BillingPeriod, format_instant
from billing.domain.rating.plans import SubscriptionSegment
from billing.domain.rating.pricing import TierRow, rate
from billing.domain.rating.proration import prorate_over
from billing.domain.usage_events import UsageEvent, format_timestamp, parse_timestamp

INVOICE_ID_PREFIX = "inv_"
INVOICE_ID_HEX_DIGITS = 24


class LineType(StrEnum):
    BASE_FEE = "base_fee"
    USAGE = "usage"
    MINIMUM_COMMITMENT = "minimum_commitment"
    ADJUSTMENT = "adjustment"


_TYPE_ORDER = {
    LineType.BASE_FEE: 0,
    LineType.USAGE: 1,
    LineType.MINIMUM_COMMITMENT: 2,
    LineType.ADJUSTMENT: 3,
}

# What a line bills for: (line type it bills or adjusts, meter, plan id, plan version, window start, end).
LineKey = tuple[LineType, str, str, int, datetime, datetime]


@dataclass(frozen=True)
class InvoiceLine:
    """One line of an invoice, in the API shape, traceable to its plan version, window and meter."""

    type: LineType
    amount: Money
    description: str
    plan_id: str
    plan_version: int
    period: BillingPeriod  # the window of the segment the line is for (for an adjustment: the old one)
    meter: str | None = None
    quantity: Decimal = Decimal(1)
    tax_code: str | None = None
    tier_breakdown: tuple[TierRow, ...] = ()
    proration: tuple[Decimal, Decimal] | None = None  # (covered seconds, period seconds)
    events: int | None = None  # usage lines: distinct events counted, and those skipped (no usable value)
    skipped_events: int | None = None
    adjusts: LineType | None = None  # adjustment lines: the type of line they correct
    adjusted_invoice_id: str | None = None  # adjustment lines: the invoice of the period they correct
    # The exact amount before the line's one rounding; kept for checks, not part of the JSON.
    unrounded: Decimal | None = field(default=None, compare=False)

    @property
    def key(self) -> LineKey:
        """What the line bills for; an adjustment has the key of the line it corrects."""
        billed_type = self.adjusts if self.type is LineType.ADJUSTMENT and self.adjusts else self.type
        return (
            billed_type,
            self.meter or "",
            self.plan_id,
            self.plan_version,
            self.period.start_utc,
            self.period.end_utc,
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "type": self.type.value,
            "meter": self.meter,
            "quantity": decimal_text(self.quantity),
            "amount": self.amount.major,
            "amount_minor": self.amount.minor,
            "description": self.description,
            "plan_id": self.plan_id,
            "plan_version": self.plan_version,
            "period": self.period.to_json(),
            "tax_code": self.tax_code,
        }
        if self.type is LineType.USAGE:
            data["tier_breakdown"] = [row.to_json() for row in self.tier_breakdown]
            data["events"] = self.events
            data["skipped_events"] = self.skipped_events
        if self.proration is not None:
            covered, whole = self.proration
            data["proration"] = {
                "covered_seconds": decimal_text(covered),
                "period_seconds": decimal_text(whole),
            }
        if self.type is LineType.ADJUSTMENT:
            data["adjusts"] = self.adjusts.value if self.adjusts else None
            data["adjusted_invoice_id"] = self.adjusted_invoice_id
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any], currency: Currency) -> InvoiceLine:
        """Rebuild a line of a stored invoice (to compute late-event adjustments against it)."""
        period = data["period"]
        proration = data.get("proration")
        adjusts = data.get("adjusts")
        return cls(
            type=LineType(data["type"]),
            amount=Money(int(data["amount_minor"]), currency),
            description=str(data["description"]),
            plan_id=str(data["plan_id"]),
            plan_version=int(data["plan_version"]),
            period=BillingPeriod(parse_timestamp(period["start"]), parse_timestamp(period["end"])),
            meter=data.get("meter"),
            quantity=Decimal(data["quantity"]),
            tax_code=data.get("tax_code"),
            tier_breakdown=tuple(TierRow.from_json(row) for row in data.get("tier_breakdown") or ()),
            proration=None
            if proration is None
            else (Decimal(proration["covered_seconds"]), Decimal(proration["period_seconds"])),
            events=data.get("events"),
            skipped_events=data.get("skipped_events"),
            adjusts=None if adjusts is None else LineType(adjusts),
            adjusted_invoice_id=data.get("adjusted_invoice_id"),
        )


@dataclass(frozen=True)
class Invoice:
    """A rated invoice before tax: lines and their subtotal, in the customer's currency."""

    id: str
    tenant_id: str
    customer_id: str
    subscription_id: str
    period: BillingPeriod
    currency: Currency
    lines: tuple[InvoiceLine, ...]

    @property
    def subtotal(self) -> Money:
        """The sum of the rounded lines (tax is added by the tax step, not here)."""
        total = Money.zero(self.currency)
        for line in self.lines:
            total += line.amount
        return total

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "customer_id": self.customer_id,
            "subscription_id": self.subscription_id,
            "period": self.period.to_json(),
            "currency": self.currency.code,
            "lines": [line.to_json() for line in self.lines],
            "subtotal": self.subtotal.major,
            "subtotal_minor": self.subtotal.minor,
        }

    def to_json(self) -> str:
        """Canonical JSON: the same inputs give the same bytes."""
        return canonical_json.dumps(self.to_dict())


def invoice_id(tenant_id: str, subscription_id: str, period_start: datetime) -> str:
    """Deterministic across processes and runs (SHA-256, never the salted built-in hash())."""
    digest = canonical_json.sha256_hex(
        {
            "tenant_id": tenant_id,
            "subscription_id": subscription_id,
            "period_start": format_timestamp(period_start),
        }
    )
    return INVOICE_ID_PREFIX + digest[:INVOICE_ID_HEX_DIGITS]


def build_invoice(
    tenant_id: str,
    customer: Customer,
    subscription_id: str,
    period: BillingPeriod,
    segments: Sequence[SubscriptionSegment],
    meters: Mapping[str, Meter] | Iterable[Meter],
    events: Iterable[UsageEvent],
    adjustments: Sequence[InvoiceLine] = (),
) -> Invoice:
    """Rate one billing period of one subscription.

    `segments` are the subscription's plan versions over time (any that overlap the period are used);
    `events` are the customer's stored events (those outside the period or of another customer are
    ignored); `adjustments` are late-event corrections of earlier periods (from `adjustment_for`),
    carried on this invoice.
    """
    currency = customer.currency
    if customer.cycle.period_containing(period.start_utc) != period:
        raise RatingFailed(
            f"{period.to_json()} is not a billing period of customer {customer.id}", code="wrong_period"
        )
    meter_by_key = _meters_by_key(meters)
    mine = [
        event for event in dedupe(events) if event.tenant_id == tenant_id and event.customer_id == customer.id
    ]

    lines: list[InvoiceLine] = []
    for segment, window in _windows(segments, period):
        if segment.plan.currency != currency:
            raise RatingFailed(
                f"plan {segment.plan.id} v{segment.plan.version} is priced in {segment.plan.currency}, "
                f"customer {customer.id} is billed in {currency}",
                code="currency_mismatch",
            )
        in_window = [event for event in mine if window.contains(event.timestamp)]
        lines.extend(_segment_lines(segment, window, period, meter_by_key, in_window, currency))

    for line in sorted(adjustments, key=_adjustment_order):
        if line.type is not LineType.ADJUSTMENT or line.amount.currency != currency:
            raise RatingFailed(
                f"only {currency} adjustment lines can be carried on this invoice", code="invalid_adjustment"
            )
        lines.append(line)

    return Invoice(
        id=invoice_id(tenant_id, subscription_id, period.start_utc),
        tenant_id=tenant_id,
        customer_id=customer.id,
        subscription_id=subscription_id,
        period=period,
        currency=currency,
        lines=tuple(lines),
    )


def adjustment_for(billed: Iterable[InvoiceLine], re_rated: Invoice) -> list[InvoiceLine]:
    """Adjustment lines for a period re-rated with late events: re-rated minus billed, per line key.

    `billed` is everything already billed for that period: the lines of its invoice and every
    adjustment line issued for it since (those name the period's invoice id). Comparing per (line type,
    meter, plan version, window) keeps tiered prices right: a late event that pushes usage over a tier
    boundary is billed at the tier difference, not at a marginal unit price. Keys whose difference is
    zero give no line, so re-rating the same events again gives nothing: never lost, never counted twice.
    """
    currency = re_rated.currency
    billed_minor: dict[LineKey, int] = defaultdict(int)
    billed_quantity: dict[LineKey, Decimal] = defaultdict(Decimal)
    billed_source: dict[LineKey, InvoiceLine] = {}
    for line in billed:
        if line.amount.currency != currency:
            raise RatingFailed("billed lines are in another currency", code="currency_mismatch")
        if line.type is LineType.ADJUSTMENT and line.adjusted_invoice_id != re_rated.id:
            # Counting another period's correction here would bill it twice.
            raise RatingFailed(
                f"an adjustment of invoice {line.adjusted_invoice_id} is not billed for {re_rated.id}",
                code="invalid_adjustment",
            )
        billed_minor[line.key] += line.amount.minor
        billed_quantity[line.key] += line.quantity
        billed_source.setdefault(line.key, line)

    rerated_minor: dict[LineKey, int] = defaultdict(int)
    rerated_source: dict[LineKey, InvoiceLine] = {}
    for line in re_rated.lines:
        if line.type is LineType.ADJUSTMENT:
            continue  # corrections of even older periods carried on that invoice are not its own billing
        rerated_minor[line.key] += line.amount.minor
        rerated_source.setdefault(line.key, line)

    adjustments: list[InvoiceLine] = []
    for key in sorted(set(billed_minor) | set(rerated_minor), key=_key_order):
        difference = rerated_minor.get(key, 0) - billed_minor.get(key, 0)
        if difference == 0:
            continue
        source = rerated_source.get(key) or billed_source[key]
        billed_type = key[0]
        if billed_type is LineType.USAGE:
            rerated_quantity = rerated_source[key].quantity if key in rerated_source else Decimal(0)
            quantity = rerated_quantity - billed_quantity.get(key, Decimal(0))
        else:
            quantity = Decimal(1)
        amount = Money(difference, currency)
        what = f"{billed_type.value} {source.meter}" if source.meter else billed_type.value
        adjustments.append(
            InvoiceLine(
                type=LineType.ADJUSTMENT,
                amount=amount,
                description=(
                    f"Adjustment of {what}, {source.plan_id} v{source.plan_version}, "
                    f"{format_instant(source.period.start_utc)} to {format_instant(source.period.end_utc)}: "
                    f"re-rated {format_major(rerated_minor.get(key, 0), currency)}, "
                    f"billed {format_major(billed_minor.get(key, 0), currency)}"
                ),
                plan_id=source.plan_id,
                plan_version=source.plan_version,
                period=source.period,
                meter=source.meter,
                quantity=quantity,
                tax_code=source.tax_code,
                adjusts=billed_type,
                adjusted_invoice_id=re_rated.id,
                unrounded=amount.to_decimal(),
            )
        )
    return adjustments


def _segment_lines(
    segment: SubscriptionSegment,
    window: BillingPeriod,
    period: BillingPeriod,
    meters: Mapping[str, Meter],
    events: list[UsageEvent],
    currency: Currency,
) -> list[InvoiceLine]:
    plan = segment.plan
    prorated = window != period
    proration = (window.seconds, period.seconds)
    common: dict[str, Any] = {"plan_id": plan.id, "plan_version": plan.version, "period": window}
    label = f"{plan.id} v{plan.version}"
    lines: list[InvoiceLine] = []

    if plan.base_fee:
        fee = prorate_over(plan.base_fee, window, period)
        share = f", prorated {decimal_text(window.seconds)} of {decimal_text(period.seconds)} seconds"
        lines.append(
            InvoiceLine(
                type=LineType.BASE_FEE,
                amount=Money.round(fee, currency),
                description=f"Base fee, {label}" + (share if prorated else ""),
                tax_code=plan.tax_code,
                proration=proration,
                unrounded=fee,
                **common,
            )
        )

    for charge in plan.charges:
        meter = meters.get(charge.meter)
        if meter is None:
            raise RatingFailed(
                f"plan {label} charges for the unknown meter {charge.meter!r}", code="unknown_meter"
            )
        total = aggregate(meter, events)
        rated = rate(charge, total.quantity)
        lines.append(
            InvoiceLine(
                type=LineType.USAGE,
                amount=Money.round(rated.amount, currency),
                description=f"{charge.meter}: {decimal_text(total.quantity)} ({charge.model.value}), {label}",
                meter=charge.meter,
                quantity=total.quantity,
                tax_code=charge.tax_code or plan.tax_code,
                tier_breakdown=rated.tiers,
                events=total.events,
                skipped_events=total.skipped,
                unrounded=rated.amount,
                **common,
            )
        )

    if plan.minimum_commitment:
        due = prorate_over(plan.minimum_commitment, window, period)
        due_minor = to_minor(due, currency)
        billed = sum(line.amount.minor for line in lines)
        if billed < due_minor:
            shortfall = Money(due_minor - billed, currency)
            lines.append(
                InvoiceLine(
                    type=LineType.MINIMUM_COMMITMENT,
                    amount=shortfall,
                    description=(
                        f"Minimum commitment true-up, {label}: commitment "
                        f"{format_major(due_minor, currency)}, billed {format_major(billed, currency)}"
                    ),
                    tax_code=plan.tax_code,
                    proration=proration,
                    unrounded=due - Money(billed, currency).to_decimal(),
                    **common,
                )
            )
    return lines


def _windows(
    segments: Sequence[SubscriptionSegment], period: BillingPeriod
) -> list[tuple[SubscriptionSegment, BillingPeriod]]:
    windows: list[tuple[SubscriptionSegment, BillingPeriod]] = []
    for segment in sorted(segments, key=lambda s: s.start):
        window = segment.window_in(period)
        if window is None:
            continue
        if windows and windows[-1][1].end_utc > window.start_utc:
            raise RatingFailed("subscription segments overlap inside the period", code="invalid_segments")
        windows.append((segment, window))
    return windows


def _meters_by_key(meters: Mapping[str, Meter] | Iterable[Meter]) -> dict[str, Meter]:
    items = list(meters.values()) if isinstance(meters, Mapping) else list(meters)
    by_key: dict[str, Meter] = {}
    for meter in items:
        if by_key.setdefault(meter.key, meter) != meter:
            raise RatingFailed(f"two different meters share the key {meter.key!r}", code="unknown_meter")
    return by_key


def _key_order(key: LineKey) -> tuple[datetime, datetime, str, int, int, str]:
    billed_type, meter, plan_id, plan_version, start, end = key
    return (start, end, plan_id, plan_version, _TYPE_ORDER[billed_type], meter)


def _adjustment_order(line: InvoiceLine) -> tuple[Any, ...]:
    return (line.adjusted_invoice_id or "", *_key_order(line.key), line.amount.minor)
