"""Invoices and payments on the wire."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field

from billing.api.models.common import MoneyText, Period, RequestModel, ResponseModel
from billing.domain.invoicing import InvoiceStatus, IssuedInvoice, RecordedPayment
from billing.domain.rating.periods import format_instant
from billing.services.payments import PaymentOutcome

LineTypeName = Literal["base_fee", "usage", "minimum_commitment", "adjustment", "proration", "tax"]


class InvoiceLineOut(ResponseModel):
    """One line. Every line but `tax` bills a `period`; a tax line names its jurisdiction and rate."""

    type: LineTypeName
    meter: str | None = None
    quantity: str | None = None
    amount: str
    amount_minor: int = Field(description="The amount in minor units of the currency")
    description: str
    tax_estimated: bool = Field(default=False, description="A tax line whose provider was unavailable")
    period: Period | None = None
    plan_id: str | None = None
    plan_version: int | None = None
    tax_code: str | None = None
    tier_breakdown: list[dict[str, Any]] | None = None
    events: int | None = None
    skipped_events: int | None = None
    proration: dict[str, str] | None = None
    adjusts: str | None = Field(default=None, description="Adjustment lines: the type of line they correct")
    adjusted_invoice_id: str | None = Field(
        default=None, description="Adjustment lines: the invoice corrected"
    )
    corrects_invoice_id: str | None = Field(
        default=None, description="Tax corrections: the invoice corrected"
    )
    jurisdiction: str | None = None
    tax_type: str | None = None
    rate: str | None = None
    taxable_fraction: str | None = None
    taxable_amount: str | None = None
    reason: str | None = None
    rule_id: str | None = None
    line_ref: str | None = None

    @classmethod
    def of(cls, line: Mapping[str, Any]) -> InvoiceLineOut:
        fields = {name: line[name] for name in cls.model_fields if line.get(name) is not None}
        if "period" in fields:
            fields["period"] = Period(start=line["period"]["start"], end=line["period"]["end"])
        return cls(**fields)


class InvoiceOut(ResponseModel):
    id: str
    customer_id: str
    subscription_id: str
    period: Period
    currency: str
    status: InvoiceStatus
    lines: list[InvoiceLineOut]
    subtotal: MoneyText
    tax: MoneyText
    total: MoneyText
    credit_applied: MoneyText = Field(description="Customer credit applied when it was finalized")
    amount_paid: MoneyText
    amount_due: MoneyText = Field(description="max(0, total - credit_applied - amount_paid)")
    finalized_at: str

    @classmethod
    def of(cls, invoice: IssuedInvoice) -> InvoiceOut:
        return cls(
            id=invoice.id,
            customer_id=invoice.customer_id,
            subscription_id=invoice.subscription_id,
            period=Period.of(invoice.period),
            currency=invoice.currency.code,
            status=invoice.status,
            lines=[InvoiceLineOut.of(line) for line in invoice.lines],
            subtotal=invoice.major(invoice.subtotal_minor),
            tax=invoice.major(invoice.tax_minor),
            total=invoice.major(invoice.total_minor),
            credit_applied=invoice.major(invoice.credit_applied_minor),
            amount_paid=invoice.major(invoice.amount_paid_minor),
            amount_due=invoice.major(invoice.amount_due_minor),
            finalized_at=format_instant(invoice.finalized_at),
        )


class PaymentIn(RequestModel):
    amount: str = Field(
        pattern=r"^\d{1,38}(\.\d{1,38})?$", max_length=77, description='Major units, e.g. "20.00"'
    )
    reference: str = Field(
        min_length=1,
        max_length=128,
        pattern=r"^[ -~]+$",
        description="Your reference of the payment (e.g. wire-123): the same reference is the same payment",
    )

    @property
    def amount_decimal(self) -> Decimal:
        return Decimal(self.amount)


class PaymentOut(ResponseModel):
    id: str
    invoice_id: str
    customer_id: str
    amount: MoneyText
    currency: str
    reference: str
    settled: MoneyText = Field(description="What settled the invoice")
    credited: MoneyText = Field(description="What exceeded the amount due: customer credit")
    created_at: str
    invoice: InvoiceOut = Field(description="The invoice as it stands now")

    @classmethod
    def of(cls, outcome: PaymentOutcome) -> PaymentOut:
        payment: RecordedPayment = outcome.payment
        invoice = outcome.invoice
        return cls(
            id=payment.id,
            invoice_id=payment.invoice_id,
            customer_id=payment.customer_id,
            amount=invoice.major(payment.amount_minor),
            currency=payment.currency.code,
            reference=payment.reference,
            settled=invoice.major(payment.settled_minor),
            credited=invoice.major(payment.credited_minor),
            created_at=format_instant(payment.created_at),
            invoice=InvoiceOut.of(invoice),
        )
