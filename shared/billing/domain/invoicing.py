"""An issued invoice and its lifecycle after rating: finalize, tax correction, payment, credit, status.

`IssuedInvoice` is the aggregate: every change is a method that returns the next state of the invoice
and the journal transactions that book it, so the invoice and its ledger can only move together.
Rules (amounts in integer minor units of the invoice's currency):
- total = subtotal + tax, where subtotal is the sum of the rated lines and tax the sum of the tax lines
  (its own tax and any corrections of earlier invoices' tax it carries);
- credit_applied: customer credit (from earlier overpayments) applied when the invoice is finalized,
  at most its total; amount_due = max(0, total - credit_applied - amount_paid);
- status: `finalized` while something is due and nothing was paid, `partially_paid` once a payment left
  something due, `paid` once nothing is due (at finalize too: a total of zero or less, or one that
  credit covers whole). `uncollectible` and `void` are ends no payment reopens;
- a payment settles at most what is due; the excess becomes customer credit (amount_paid counts the
  whole payment, as the customer sees it);
- an invoice's own tax is what it billed for its own lines; a later invoice corrects it with a tax line
  naming it (`corrects_invoice_id`) when a re-quote with better knowledge differs.
Pure: instants are passed in.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from billing.domain.errors import Conflict
from billing.domain.ledger.builders import (
    InvoiceToBook,
    entries_for_credit_application,
    entries_for_invoice,
    entries_for_payment,
)
from billing.domain.ledger.transactions import JournalTransaction
from billing.domain.rating.money import Currency, Money, format_major
from billing.domain.rating.periods import BillingPeriod
from billing.domain.usage_events import parse_timestamp

TAX = "tax"

Line = Mapping[str, Any]


class InvoiceStatus(StrEnum):
    FINALIZED = "finalized"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    UNCOLLECTIBLE = "uncollectible"
    VOID = "void"


PAYABLE = frozenset({InvoiceStatus.FINALIZED, InvoiceStatus.PARTIALLY_PAID})


def _frozen(lines: Iterable[Line]) -> tuple[Line, ...]:
    # A copy of its own (nested values included): changing the draft later never changes an issued line.
    return tuple(MappingProxyType(copy.deepcopy(dict(line))) for line in lines)


@dataclass(frozen=True)
class Settlement:
    """What one payment did: how much of it settled the invoice and how much became customer credit."""

    payment_id: str
    amount_minor: int
    settled_minor: int
    credited_minor: int


@dataclass(frozen=True)
class IssuedInvoice:
    """A finalized invoice. Immutable: its lines never change; payments return a new state."""

    id: str
    customer_id: str
    subscription_id: str
    period: BillingPeriod
    currency: Currency
    lines: tuple[Line, ...]  # the rated lines, then the tax lines, as finalized
    subtotal_minor: int
    tax_minor: int
    status: InvoiceStatus
    finalized_at: datetime
    run_id: str | None = None
    credit_applied_minor: int = 0
    amount_paid_minor: int = 0
    # The stored version this state was read at: a change is written only if it is still current.
    revision: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "lines", _frozen(self.lines))
        object.__setattr__(self, "status", InvoiceStatus(self.status))

    # -- amounts --------------------------------------------------------------------------------------

    @property
    def total_minor(self) -> int:
        return self.subtotal_minor + self.tax_minor

    @property
    def amount_due_minor(self) -> int:
        return 0 if self.status is InvoiceStatus.VOID else self._outstanding

    @property
    def _outstanding(self) -> int:
        return max(0, self.total_minor - self.credit_applied_minor - self.amount_paid_minor)

    def money(self, minor: int) -> Money:
        return Money(minor, self.currency)

    def major(self, minor: int) -> str:
        return format_major(minor, self.currency)

    @property
    def own_tax_minor(self) -> int:
        """The tax billed for this invoice's own lines (not the corrections of others it carries)."""
        return sum(
            int(line["amount_minor"])
            for line in self.lines
            if line["type"] == TAX and not line.get("corrects_invoice_id")
        )

    def tax_corrections_of(self, invoice_id: str) -> int:
        """The tax this invoice carries as corrections of another invoice's tax."""
        return sum(
            int(line["amount_minor"])
            for line in self.lines
            if line["type"] == TAX and line.get("corrects_invoice_id") == invoice_id
        )

    @property
    def rated_lines(self) -> tuple[Line, ...]:
        return tuple(line for line in self.lines if line["type"] != TAX)

    @property
    def tax_estimated(self) -> bool:
        return any(line.get("tax_estimated") for line in self.lines)

    # -- transitions ----------------------------------------------------------------------------------

    @classmethod
    def finalize(
        cls,
        draft: Mapping[str, Any],
        tax_lines: Sequence[Line],
        *,
        finalized_at: datetime,
        run_id: str | None,
        available_credit_minor: int = 0,
    ) -> tuple[IssuedInvoice, list[JournalTransaction]]:
        """Issue a rated invoice (`Invoice.to_dict()`) with its tax lines; apply the customer's credit.

        Returns the invoice and the transactions that book it: the invoice itself (receivable, revenue,
        tax payable) and, when the customer has credit and the invoice a positive total, the credit
        applied to it.
        """
        currency = Currency.of(draft["currency"])
        period = draft["period"]
        subtotal = int(draft["subtotal_minor"])
        tax = sum(int(line["amount_minor"]) for line in tax_lines)
        applied = max(0, min(available_credit_minor, subtotal + tax))
        invoice = cls(
            id=str(draft["id"]),
            customer_id=str(draft["customer_id"]),
            subscription_id=str(draft["subscription_id"]),
            period=period if isinstance(period, BillingPeriod) else _period(period),
            currency=currency,
            lines=(*draft["lines"], *tax_lines),
            subtotal_minor=subtotal,
            tax_minor=tax,
            status=InvoiceStatus.FINALIZED,
            finalized_at=finalized_at,
            run_id=run_id,
            credit_applied_minor=applied,
        )
        invoice = replace(invoice, status=invoice._open_status())
        booked = entries_for_invoice(
            InvoiceToBook(
                invoice_id=invoice.id,
                customer_id=invoice.customer_id,
                currency=currency,
                subtotal_minor=subtotal,
                tax_minor=tax,
                total_minor=invoice.total_minor,
            ),
            finalized_at,
        )
        transactions = [] if booked is None else [booked]
        credit = entries_for_credit_application(
            invoice.id,
            invoice.customer_id,
            currency,
            available_credit_minor,
            applied,
            finalized_at,
            invoice_id=invoice.id,
        )
        if credit is not None:
            transactions.append(credit)
        return invoice, transactions

    def pay(
        self, payment_id: str, amount: Money, at: datetime
    ) -> tuple[IssuedInvoice, Settlement, JournalTransaction]:
        """Record a payment of `amount`: it settles up to what is due, the rest becomes customer credit.

        Raises Conflict (`invoice_not_payable`) when the invoice takes no payment (paid, void,
        uncollectible).
        """
        if self.status not in PAYABLE:
            raise Conflict(
                f"invoice {self.id} is {self.status.value}: it takes no payment", code="invoice_not_payable"
            )
        if amount.currency != self.currency:
            raise Conflict(
                f"invoice {self.id} is in {self.currency.code}, the payment in {amount.currency.code}",
                code="currency_mismatch",
            )
        due = self.amount_due_minor
        settled = min(amount.minor, due)
        paid = replace(self, amount_paid_minor=self.amount_paid_minor + amount.minor)
        paid = replace(paid, status=paid._open_status())
        transaction = entries_for_payment(payment_id, self.customer_id, amount, due, at, invoice_id=self.id)
        return paid, Settlement(payment_id, amount.minor, settled, amount.minor - settled), transaction

    def _open_status(self) -> InvoiceStatus:
        if self._outstanding == 0:
            return InvoiceStatus.PAID
        return InvoiceStatus.PARTIALLY_PAID if self.amount_paid_minor > 0 else InvoiceStatus.FINALIZED


def tax_correction(
    invoice: IssuedInvoice, later: Iterable[IssuedInvoice], requoted_tax_minor: int, *, estimated_before: bool
) -> dict[str, Any] | None:
    """The tax line that corrects `invoice`'s tax to `requoted_tax_minor`, or None when it is right.

    What was billed for it is its own tax plus the corrections the `later` invoices already carried.
    """
    billed = invoice.own_tax_minor + sum(other.tax_corrections_of(invoice.id) for other in later)
    difference = requoted_tax_minor - billed
    if not difference:
        return None
    why = "estimated tax reconciled" if estimated_before else "tax location or rates changed"
    return {
        "type": TAX,
        "corrects_invoice_id": invoice.id,
        "amount": format_major(difference, invoice.currency),
        "amount_minor": difference,
        "description": f"Tax correction for invoice {invoice.id} ({why})",
        "tax_estimated": False,
        "period": invoice.period.to_json(),
    }


def _period(data: Mapping[str, Any]) -> BillingPeriod:
    return BillingPeriod(
        parse_timestamp(data["start"], "period.start"), parse_timestamp(data["end"], "period.end")
    )


@dataclass(frozen=True)
class RecordedPayment:
    """A payment received outside the gateways, as booked: its id is derived from (invoice, reference)."""

    id: str
    invoice_id: str
    customer_id: str
    amount_minor: int
    currency: Currency
    reference: str
    settled_minor: int
    credited_minor: int
    created_at: datetime
