"""How domain objects are stored: explicit record mappings, separate from the API's output models.

A record is the JSON document kept in an item's `data` attribute (canonical JSON, numbers exact). The
API shapes its answers from the domain objects on its own (`billing.api.models`), so a change to the API
never changes what is stored, and stored data is read back the same whatever the API says.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from billing.domain.catalog import (
    CustomerProfile,
    PaymentMethod,
    SegmentRecord,
    SubscriptionRecord,
    SubscriptionSpan,
    TaxLocation,
    TaxLocationChange,
    parse_instant,
)
from billing.domain.invoicing import InvoiceStatus, IssuedInvoice, RecordedPayment
from billing.domain.rating.customers import Customer
from billing.domain.rating.money import Currency
from billing.domain.rating.periods import BillingPeriod, format_instant


def _instant_or_none(value: Any) -> str | None:
    return None if value is None else format_instant(value)


# ---- customers ---------------------------------------------------------------------------------------


def _tax_location(tax: TaxLocation) -> dict[str, Any]:
    return {
        "country": tax.country,
        "region": tax.region,
        "postal_code": tax.postal_code,
        "tax_id": tax.tax_id,
        "exempt": tax.exempt,
    }


def _tax_location_from(data: Mapping[str, Any]) -> TaxLocation:
    return TaxLocation(
        country=str(data["country"]),
        region=data.get("region"),
        postal_code=data.get("postal_code"),
        tax_id=data.get("tax_id"),
        exempt=bool(data.get("exempt", False)),
    )


def customer_record(profile: CustomerProfile) -> dict[str, Any]:
    return {
        "id": profile.id,
        "name": profile.name,
        "email": profile.email,
        "currency": profile.billing.currency.code,
        "timezone": profile.billing.timezone,
        "billing_anchor_day": profile.billing.billing_anchor_day,
        "tax_history": [
            {"effective_at": _instant_or_none(change.effective_at), "tax": _tax_location(change.tax)}
            for change in profile.tax_history
        ],
        "payment_method": None
        if profile.payment_method is None
        else {"token": profile.payment_method.token, "gateway": profile.payment_method.gateway},
        "subscriptions": [
            {"id": span.id, "start": format_instant(span.start), "end": _instant_or_none(span.end)}
            for span in profile.subscriptions
        ],
        "created_at": format_instant(profile.created_at),
        "updated_at": format_instant(profile.updated_at),
    }


def customer_from_record(data: Mapping[str, Any], revision: int) -> CustomerProfile:
    payment = data.get("payment_method")
    return CustomerProfile(
        billing=Customer(data["id"], data["currency"], data["timezone"], int(data["billing_anchor_day"])),
        created_at=parse_instant(data["created_at"], "created_at"),
        updated_at=parse_instant(data["updated_at"], "updated_at"),
        name=data.get("name"),
        email=data.get("email"),
        tax_history=tuple(
            TaxLocationChange(
                None if change.get("effective_at") is None else parse_instant(change["effective_at"], "at"),
                _tax_location_from(change["tax"]),
            )
            for change in data.get("tax_history") or ()
        ),
        payment_method=None
        if payment is None
        else PaymentMethod(str(payment["token"]), str(payment["gateway"])),
        subscriptions=tuple(
            SubscriptionSpan(
                str(span["id"]),
                parse_instant(span["start"], "start"),
                None if span.get("end") is None else parse_instant(span["end"], "end"),
            )
            for span in data.get("subscriptions") or ()
        ),
        revision=revision,
    )


# ---- subscriptions -----------------------------------------------------------------------------------


def subscription_record(subscription: SubscriptionRecord) -> dict[str, Any]:
    return {
        "id": subscription.id,
        "customer_id": subscription.customer_id,
        "start": format_instant(subscription.start),
        "segments": [
            {
                "plan_id": segment.plan_id,
                "plan_version": segment.plan_version,
                "start": format_instant(segment.start),
                "end": _instant_or_none(segment.end),
            }
            for segment in subscription.segments
        ],
        "created_at": format_instant(subscription.created_at),
        "updated_at": format_instant(subscription.updated_at),
    }


def subscription_from_record(data: Mapping[str, Any], revision: int) -> SubscriptionRecord:
    return SubscriptionRecord(
        id=str(data["id"]),
        customer_id=str(data["customer_id"]),
        start=parse_instant(data["start"], "start"),
        segments=tuple(
            SegmentRecord(
                str(segment["plan_id"]),
                int(segment["plan_version"]),
                parse_instant(segment["start"], "start"),
                None if segment.get("end") is None else parse_instant(segment["end"], "end"),
            )
            for segment in data.get("segments") or ()
        ),
        created_at=parse_instant(data["created_at"], "created_at"),
        updated_at=parse_instant(data["updated_at"], "updated_at"),
        revision=revision,
    )


# ---- invoices and payments ---------------------------------------------------------------------------


def invoice_record(invoice: IssuedInvoice) -> dict[str, Any]:
    return {
        "id": invoice.id,
        "customer_id": invoice.customer_id,
        "subscription_id": invoice.subscription_id,
        "period": {
            "start": format_instant(invoice.period.start_utc),
            "end": format_instant(invoice.period.end_utc),
        },
        "currency": invoice.currency.code,
        "lines": [dict(line) for line in invoice.lines],
        "subtotal_minor": invoice.subtotal_minor,
        "tax_minor": invoice.tax_minor,
        "credit_applied_minor": invoice.credit_applied_minor,
        "amount_paid_minor": invoice.amount_paid_minor,
        "status": invoice.status.value,
        "finalized_at": format_instant(invoice.finalized_at),
        "run_id": invoice.run_id,
    }


def invoice_from_record(data: Mapping[str, Any], revision: int = 0) -> IssuedInvoice:
    period = data["period"]
    return IssuedInvoice(
        id=str(data["id"]),
        customer_id=str(data["customer_id"]),
        subscription_id=str(data["subscription_id"]),
        period=BillingPeriod(parse_instant(period["start"], "start"), parse_instant(period["end"], "end")),
        currency=Currency.of(data["currency"]),
        lines=tuple(data["lines"]),
        subtotal_minor=int(data["subtotal_minor"]),
        tax_minor=int(data["tax_minor"]),
        credit_applied_minor=int(data.get("credit_applied_minor", 0)),
        amount_paid_minor=int(data.get("amount_paid_minor", 0)),
        status=InvoiceStatus(data["status"]),
        finalized_at=parse_instant(data["finalized_at"], "finalized_at"),
        run_id=data.get("run_id"),
        revision=revision,
    )


def payment_record(payment: RecordedPayment) -> dict[str, Any]:
    return {
        "id": payment.id,
        "invoice_id": payment.invoice_id,
        "customer_id": payment.customer_id,
        "amount_minor": payment.amount_minor,
        "currency": payment.currency.code,
        "reference": payment.reference,
        "settled_minor": payment.settled_minor,
        "credited_minor": payment.credited_minor,
        "created_at": format_instant(payment.created_at),
    }


def payment_from_record(data: Mapping[str, Any]) -> RecordedPayment:
    return RecordedPayment(
        id=str(data["id"]),
        invoice_id=str(data["invoice_id"]),
        customer_id=str(data["customer_id"]),
        amount_minor=int(data["amount_minor"]),
        currency=Currency.of(data["currency"]),
        reference=str(data["reference"]),
        settled_minor=int(data["settled_minor"]),
        credited_minor=int(data["credited_minor"]),
        created_at=parse_instant(data["created_at"], "created_at"),
    )
