"""Payments received outside the gateways (`POST /v1/invoices/{id}/payments`): a wire, a cheque.

A payment is booked in one transaction with the invoice's next state, its journal entries (cash
debited; receivable credited up to what is due, any excess to customer credit) and the webhook events
that announce it (`payment.succeeded`, then `invoice.paid` or `invoice.partially_paid`). Its id is
derived from (invoice, reference), so the same reference sent again is the same payment: answered, never
booked twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from billing.domain import canonical_json
from billing.domain.errors import Conflict, InvalidRequest, NotFound
from billing.domain.ids import is_key_id, shown_id
from billing.domain.invoicing import IssuedInvoice, RecordedPayment
from billing.domain.ledger.transactions import MAX_AMOUNT_MINOR, JournalTransaction
from billing.domain.rating.money import Money, format_major
from billing.domain.webhooks.events import NewEvent, on_payment


class PaymentStore(Protocol):
    def get(self, tenant_id: str, invoice_id: str) -> IssuedInvoice | None: ...

    def get_payment(self, tenant_id: str, payment_id: str) -> RecordedPayment | None: ...

    def record_payment(
        self,
        tenant_id: str,
        before: IssuedInvoice,
        after: IssuedInvoice,
        payment: RecordedPayment,
        transaction: JournalTransaction,
        events: Sequence[NewEvent],
    ) -> None:
        """Book the payment with the invoice's next state, its entries and the webhook events that
        announce it, in one transaction. Raises Conflict when the payment or the invoice changed."""


@dataclass(frozen=True)
class PaymentOutcome:
    """A payment with the invoice as it stands after it; `created` is False for a repeated reference."""

    payment: RecordedPayment
    invoice: IssuedInvoice
    created: bool


def payment_id_for(tenant_id: str, invoice_id: str, reference: str) -> str:
    return "pay_" + canonical_json.sha256_hex([tenant_id, invoice_id, reference])[:24]


class PaymentService:
    def __init__(self, store: PaymentStore, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._clock = clock

    def record(self, tenant_id: str, invoice_id: str, amount: Decimal, reference: str) -> PaymentOutcome:
        """Book `amount` (major units) against the invoice. Raises NotFound, Conflict, InvalidRequest."""
        invoice = self._store.get(tenant_id, invoice_id) if is_key_id(invoice_id) else None
        if invoice is None:
            raise NotFound(f"invoice {shown_id(invoice_id)} not found", code="invoice_not_found")
        currency = invoice.currency
        if amount <= 0:
            raise InvalidRequest("amount must be greater than zero", code="invalid_amount")
        minor = amount.scaleb(currency.exponent)
        if minor != minor.to_integral_value():
            raise InvalidRequest(
                f"amount has more decimals than {currency.code} has ({currency.exponent})",
                code="invalid_amount",
            )
        if minor > MAX_AMOUNT_MINOR:
            raise InvalidRequest("amount is larger than any amount that can be booked", code="invalid_amount")
        money = Money(int(minor), currency)
        payment_id = payment_id_for(tenant_id, invoice_id, reference)

        existing = self._store.get_payment(tenant_id, payment_id)
        if existing is not None:
            if existing.amount_minor != money.minor:
                raise Conflict(
                    f"reference {reference!r} was already recorded for this invoice with amount "
                    f"{format_major(existing.amount_minor, currency)}",
                    code="payment_reference_reused",
                )
            return PaymentOutcome(existing, invoice, created=False)

        now = self._clock()
        paid, settlement, transaction = invoice.pay(payment_id, money, now)
        payment = RecordedPayment(
            id=payment_id,
            invoice_id=invoice.id,
            customer_id=invoice.customer_id,
            amount_minor=money.minor,
            currency=currency,
            reference=reference,
            settled_minor=settlement.settled_minor,
            credited_minor=settlement.credited_minor,
            created_at=now,
        )
        self._store.record_payment(
            tenant_id, invoice, paid, payment, transaction, on_payment(tenant_id, paid, payment)
        )
        return PaymentOutcome(payment, paid, created=True)
