"""Builders for ledger tests: accounts, postings, invoices to book, readable money."""

from __future__ import annotations

from datetime import UTC, datetime

from billing.domain.ledger.accounts import Account, AccountKind
from billing.domain.ledger.builders import InvoiceToBook
from billing.domain.ledger.chain import JournalEntry
from billing.domain.ledger.transactions import JournalTransaction
from billing.domain.rating.money import Currency, Money

USD = Currency.of("USD")
EUR = Currency.of("EUR")
JPY = Currency.of("JPY")
CUSTOMER = "cus_42"
T0 = datetime(2026, 4, 1, 0, 5, tzinfo=UTC)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def account(kind: AccountKind | str, currency: Currency = USD, customer_id: str = CUSTOMER) -> Account:
    return Account(customer_id, currency, AccountKind(kind))


def usd(text: str) -> Money:
    """Money from major-unit text: usd("12.34") is 1234 minor units."""
    whole, _, cents = text.lstrip("-").partition(".")
    minor = int(whole) * 100 + int((cents + "00")[:2])
    return Money(-minor if text.startswith("-") else minor, USD)


def invoice(subtotal: str, tax: str, invoice_id: str = "inv_1", currency: Currency = USD) -> InvoiceToBook:
    sub, tx = usd(subtotal).minor, usd(tax).minor
    return InvoiceToBook(invoice_id, CUSTOMER, currency, sub, tx, sub + tx)


def legs(transaction: JournalTransaction) -> list[tuple[str, str, str]]:
    """(account kind, direction, amount in major units) per posting: what an accountant reads."""
    return [
        (p.account.kind.value, p.direction.value, Money(p.amount_minor, p.currency).major)
        for p in transaction.postings
    ]


def majors(balances: dict[AccountKind, Money]) -> dict[str, str]:
    return {kind.value: money.major for kind, money in balances.items() if money.minor}


def entry_lines(entries: list[JournalEntry]) -> list[tuple[int, str, str, int]]:
    return [(e.sequence, e.account.kind.value, e.direction.value, e.amount_minor) for e in entries]
