"""The journal transactions for the billing facts: a finalized invoice, a payment, a credit application.

Booking rules (amounts in minor units of the invoice's currency):
- Invoice with total > 0:  Dr receivable (total) / Cr revenue (subtotal) / Cr tax_payable (tax).
- Invoice with total < 0 (a credit note, e.g. adjustments larger than the charges): the customer is owed
  money, so Cr customer_credit (|total|) / Dr revenue (|subtotal|) / Dr tax_payable (|tax|).
- A revenue or tax amount with the other sign than the total goes on the other side, so every
  combination balances; a leg of zero is left out; an invoice of all zeros books nothing (None).
- Payment: Dr cash (amount) / Cr receivable (up to what is outstanding) / Cr customer_credit (the excess:
  an overpayment is owed back to the customer or applied to the next invoice). Partial payments are just
  smaller amounts.
- Credit application: Dr customer_credit / Cr receivable, for min(available credit, outstanding).

Transaction ids are `transaction_id(source id, code)`: the invoice id, the payment id, the credit
application id. Booking the same fact twice names the same transaction, which storage refuses once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from billing.domain.ledger.accounts import Account, AccountKind
from billing.domain.ledger.errors import LedgerError
from billing.domain.ledger.transactions import (
    JournalTransaction,
    MetadataValue,
    Posting,
    TransactionCode,
    check_amount,
    transaction_id,
)
from billing.domain.rating.invoices import Invoice
from billing.domain.rating.money import Currency, Money


@dataclass(frozen=True)
class InvoiceToBook:
    """What the ledger needs of a finalized invoice: its id, customer, currency and three amounts.

    `subtotal_minor` is the revenue (the sum of the rounded non-tax lines), `tax_minor` the sum of the
    tax lines; either may be negative. `total_minor` must equal their sum (it is checked, because a
    total computed elsewhere that disagrees is a bug to surface, not to book).
    """

    invoice_id: str
    customer_id: str
    currency: Currency
    subtotal_minor: int
    tax_minor: int
    total_minor: int

    def __post_init__(self) -> None:
        if not isinstance(self.currency, Currency):
            object.__setattr__(self, "currency", Currency.of(self.currency))
        for name in ("subtotal_minor", "tax_minor", "total_minor"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise LedgerError(f"{name} is integer minor units", code="invalid_amount")
        if self.subtotal_minor + self.tax_minor != self.total_minor:
            raise LedgerError(
                f"invoice {self.invoice_id}: subtotal {self.subtotal_minor} + tax {self.tax_minor} "
                f"!= total {self.total_minor}",
                code="invalid_amount",
            )

    @classmethod
    def of(cls, invoice: Invoice, tax: Money) -> InvoiceToBook:
        """From a rated invoice and the tax computed for it."""
        subtotal = invoice.subtotal
        return cls(
            invoice_id=invoice.id,
            customer_id=invoice.customer_id,
            currency=invoice.currency,
            subtotal_minor=subtotal.minor,
            tax_minor=tax.minor,
            total_minor=(subtotal + tax).minor,
        )


def entries_for_invoice(invoice: InvoiceToBook, created_at: datetime) -> JournalTransaction | None:
    """The `invoice_finalized` transaction of an invoice; None when every amount is zero."""

    def account(kind: AccountKind) -> Account:
        return Account(invoice.customer_id, invoice.currency, kind)

    postings: list[Posting] = []
    # The customer's side first: what they owe (receivable) or are owed (customer_credit).
    if invoice.total_minor > 0:
        postings.append(Posting.debit(account(AccountKind.RECEIVABLE), invoice.total_minor))
    elif invoice.total_minor < 0:
        postings.append(Posting.credit(account(AccountKind.CUSTOMER_CREDIT), -invoice.total_minor))
    postings.extend(_signed_credit(account(AccountKind.REVENUE), invoice.subtotal_minor))
    postings.extend(_signed_credit(account(AccountKind.TAX_PAYABLE), invoice.tax_minor))
    if not postings:
        return None
    return JournalTransaction(
        id=transaction_id(invoice.invoice_id, TransactionCode.INVOICE_FINALIZED),
        code=TransactionCode.INVOICE_FINALIZED,
        postings=tuple(postings),
        created_at=created_at,
        metadata={
            "invoice_id": invoice.invoice_id,
            "subtotal_minor": invoice.subtotal_minor,
            "tax_minor": invoice.tax_minor,
            "total_minor": invoice.total_minor,
        },
    )


def entries_for_payment(
    payment_id: str,
    customer_id: str,
    amount: Money,
    outstanding_minor: int,
    created_at: datetime,
    *,
    invoice_id: str | None = None,
) -> JournalTransaction:
    """The `payment_received` transaction: settles up to `outstanding_minor`, the rest becomes credit.

    `outstanding_minor` is what this payment may settle (the invoice's amount due, or the customer's
    receivable balance; the caller decides which). Zero or negative outstanding means the whole payment
    is credit.
    """
    check_amount(amount.minor)
    if isinstance(outstanding_minor, bool) or not isinstance(outstanding_minor, int):
        raise LedgerError("outstanding_minor is integer minor units", code="invalid_amount")
    settled = max(0, min(amount.minor, outstanding_minor))
    excess = amount.minor - settled
    cash = Account(customer_id, amount.currency, AccountKind.CASH)
    postings = [Posting.debit(cash, amount.minor)]
    if settled:
        postings.append(
            Posting.credit(Account(customer_id, amount.currency, AccountKind.RECEIVABLE), settled)
        )
    if excess:
        postings.append(
            Posting.credit(Account(customer_id, amount.currency, AccountKind.CUSTOMER_CREDIT), excess)
        )
    metadata: dict[str, MetadataValue] = {
        "payment_id": payment_id,
        "settled_minor": settled,
        "overpaid_minor": excess,
    }
    if invoice_id is not None:
        metadata["invoice_id"] = invoice_id
    return JournalTransaction(
        id=transaction_id(payment_id, TransactionCode.PAYMENT_RECEIVED),
        code=TransactionCode.PAYMENT_RECEIVED,
        postings=tuple(postings),
        created_at=created_at,
        metadata=metadata,
    )


def entries_for_credit_application(
    application_id: str,
    customer_id: str,
    currency: Currency,
    available_credit_minor: int,
    outstanding_minor: int,
    created_at: datetime,
    *,
    invoice_id: str | None = None,
) -> JournalTransaction | None:
    """The `credit_applied` transaction: customer credit settles receivable; None if nothing applies.

    Applies min(available credit, outstanding): never more than is owed (credit is a liability we keep
    owing), never more than the customer has.
    """
    currency = Currency.of(currency)
    for name, value in (
        ("available_credit_minor", available_credit_minor),
        ("outstanding_minor", outstanding_minor),
    ):
        if isinstance(value, bool) or not isinstance(value, int):
            raise LedgerError(f"{name} is integer minor units", code="invalid_amount")
    applied = min(available_credit_minor, outstanding_minor)
    if applied <= 0:
        return None
    metadata: dict[str, MetadataValue] = {"application_id": application_id, "applied_minor": applied}
    if invoice_id is not None:
        metadata["invoice_id"] = invoice_id
    return JournalTransaction(
        id=transaction_id(application_id, TransactionCode.CREDIT_APPLIED),
        code=TransactionCode.CREDIT_APPLIED,
        postings=(
            Posting.debit(Account(customer_id, currency, AccountKind.CUSTOMER_CREDIT), applied),
            Posting.credit(Account(customer_id, currency, AccountKind.RECEIVABLE), applied),
        ),
        created_at=created_at,
        metadata=metadata,
    )


def _signed_credit(account: Account, amount_minor: int) -> list[Posting]:
    """A credit of a signed amount: negative is a debit of its magnitude, zero is no posting."""
    if amount_minor > 0:
        return [Posting.credit(account, amount_minor)]
    if amount_minor < 0:
        return [Posting.debit(account, -amount_minor)]
    return []
