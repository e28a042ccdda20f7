"""The open period's usage on the wire."""

from __future__ import annotations

from pydantic import Field

from billing.api.models.common import MoneyText, Period, ResponseModel
from billing.api.models.invoices import InvoiceLineOut
from billing.domain.rating.invoices import LineType
from billing.domain.rating.money import decimal_text
from billing.domain.rating.periods import format_instant
from billing.services.usage import UsageReport


class MeterUsageOut(ResponseModel):
    meter: str
    quantity: str = Field(description="Aggregated over the subscription's part of the period")
    amount: MoneyText


class UsageOut(ResponseModel):
    customer_id: str
    subscription_id: str
    as_of: str
    period: Period
    currency: str
    meters: list[MeterUsageOut]
    base_fee: MoneyText
    minimum_commitment: MoneyText
    estimated_total: MoneyText = Field(description="The period so far, before tax")
    lines: list[InvoiceLineOut]

    @classmethod
    def of(cls, report: UsageReport) -> UsageOut:
        invoice = report.invoice
        return cls(
            customer_id=invoice.customer_id,
            subscription_id=invoice.subscription_id,
            as_of=format_instant(report.as_of),
            period=Period.of(invoice.period),
            currency=invoice.currency.code,
            meters=[
                MeterUsageOut(
                    meter=usage.meter, quantity=decimal_text(usage.quantity), amount=usage.amount.major
                )
                for usage in report.meters
            ],
            base_fee=report.total_of(LineType.BASE_FEE).major,
            minimum_commitment=report.total_of(LineType.MINIMUM_COMMITMENT).major,
            estimated_total=invoice.subtotal.major,
            lines=[InvoiceLineOut.of(line.to_json()) for line in invoice.lines],
        )
