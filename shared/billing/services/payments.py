"""Payments received outside the gateways (`POST /v1/invoices/{id}/payments`): a wire, a cheque.

A payment is booked in one transaction with the invoice's new amounts and its journal entries (cash
debited; receivable credited up to what is due, any excess to customer credit). Its id is derived from
(invoice, reference), so the same reference sent again is the same payment: answered, never booked twice.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from billing.domain import canonical_json
from billing.domain.errors import Conflict, InvalidRequest, NotFound
from billing.domain.ledger.builders import entries_for_payment
from billing.domain.ledger.transactions import JournalTransaction
from billing.domain.rating.money import Currency, Money, format_major, parse_decimal
from billing.domain.usage_events import MAX_ID_LENGTH, format_timestamp

PAYMENT_FIELDS = frozenset({"amount", "reference"})
PAYABLE = frozenset({"finalized", "partially_paid"})


class PaymentStore(Protocol):
    def get(self, tenant_id: str, invoice_id: str) -> Any: ...

    def get_payment(self, tenant_id: str, payment_id: str) -> dict[str, Any] | None: ...

    def record_payment(
        self,
        tenant_id: str,
        before: dict[str, Any],
        invoice: dict[str, Any],
        payment: dict[str, Any],
        booking: Callable[[], JournalTransaction],
    ) -> None: ...


def payment_id_for(tenant_id: str, invoice_id: str, reference: str) -> str:
    return "pay_" + canonical_json.sha256_hex([tenant_id, invoice_id, reference])[:24]


class PaymentService:
    def __init__(self, store: PaymentStore, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._clock = clock

    def record(self, tenant_id: str, invoice_id: str, data: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        """(created, payment with the invoice as it now stands). Raises NotFound, Conflict, InvalidRequest."""
        unknown = sorted(set(data) - PAYMENT_FIELDS)
        if unknown:
            raise InvalidRequest(f"unknown field(s): {', '.join(unknown)}; a payment has amount, reference")
        reference = data.get("reference")
        if not isinstance(reference, str) or not 1 <= len(reference) <= MAX_ID_LENGTH:
            raise InvalidRequest(f"reference is required: 1 to {MAX_ID_LENGTH} characters (e.g. wire-123)")
        stored = self._store.get(tenant_id, invoice_id) if len(invoice_id) <= MAX_ID_LENGTH else None
        if stored is None:
            raise NotFound(f"invoice {invoice_id!r} not found")
        invoice = dict(stored.data)
        currency = Currency.of(invoice["currency"])
        amount = _amount(data.get("amount"), currency)
        payment_id = payment_id_for(tenant_id, invoice_id, reference)

        existing = self._store.get_payment(tenant_id, payment_id)
        if existing is not None:
            if existing["amount"] != format_major(amount.minor, currency):
                raise Conflict(
                    f"reference {reference!r} was already recorded for this invoice with amount "
                    f"{existing['amount']}",
                    code="payment_reference_reused",
                )
            return False, {**existing, "invoice": invoice}
        if invoice["status"] not in PAYABLE:
            raise Conflict(
                f"invoice {invoice_id} is {invoice['status']}: it takes no payment",
                code="invoice_not_payable",
            )

        total = _minor(invoice["total"], currency)
        paid_before = _minor(invoice["amount_paid"], currency)
        due = max(total - paid_before, 0)
        paid = paid_before + amount.minor
        now = self._clock()
        updated = {
            **invoice,
            "amount_paid": format_major(paid, currency),
            "amount_due": format_major(max(total - paid, 0), currency),
            "status": "paid" if paid >= total else "partially_paid",
        }
        payment = {
            "id": payment_id,
            "invoice_id": invoice_id,
            "customer_id": invoice["customer_id"],
            "amount": format_major(amount.minor, currency),
            "currency": currency.code,
            "reference": reference,
            "settled": format_major(min(amount.minor, due), currency),
            "credited": format_major(max(amount.minor - due, 0), currency),
            "created_at": format_timestamp(now),
        }
        self._store.record_payment(
            tenant_id,
            invoice,
            updated,
            payment,
            lambda: entries_for_payment(
                payment_id, invoice["customer_id"], amount, due, now, invoice_id=invoice_id
            ),
        )
        return True, {**payment, "invoice": updated}


def _amount(value: Any, currency: Currency) -> Money:
    if not isinstance(value, str):
        raise InvalidRequest('amount is a decimal string in major units, e.g. "20.00"')
    amount = parse_decimal(value, field="amount", allow_zero=False)
    minor = amount.scaleb(currency.exponent)
    if minor != minor.to_integral_value():
        raise InvalidRequest(f"amount has more decimals than {currency.code} has ({currency.exponent})")
    return Money(int(minor), currency)


def _minor(text: str, currency: Currency) -> int:
    return int(Decimal(text).scaleb(currency.exponent))
