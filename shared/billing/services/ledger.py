"""A customer's ledger statement: journal entries a page at a time (oldest first), balances of the whole
journal, and the verification of its hash chain against the stored head."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Protocol

from billing.domain.errors import MalformedRequest, NotFound
from billing.domain.ids import is_valid_id, shown_id
from billing.domain.ledger.accounts import AccountKind
from billing.domain.ledger.chain import JournalEntry, LedgerHead, VerificationResult, balances, verify_chain
from billing.domain.rating.money import Currency, Money
from billing.services.ports import CustomerLookup


class JournalReader(Protocol):
    def head(self, tenant_id: str, customer_id: str) -> LedgerHead: ...

    def entries(self, tenant_id: str, customer_id: str) -> list[JournalEntry]: ...


@dataclass(frozen=True)
class LedgerStatement:
    customer_id: str
    currency: Currency
    entries: list[JournalEntry]  # this page
    balances: dict[AccountKind, Money]  # of the whole journal
    chain: VerificationResult  # of the whole journal
    next_cursor: str | None


class LedgerService:
    def __init__(self, journal: JournalReader, customers: CustomerLookup) -> None:
        self._journal = journal
        self._customers = customers

    def statement(self, tenant_id: str, customer_id: str, limit: int, cursor: str | None) -> LedgerStatement:
        customer = self._customers.get_customer(tenant_id, customer_id) if is_valid_id(customer_id) else None
        if customer is None:
            raise NotFound(f"customer {shown_id(customer_id)} not found", code="customer_not_found")
        after = _sequence_after(cursor)
        # Balances and the chain are of the whole journal; anyone can re-check the chain: every entry's
        # hash covers its content and the previous entry's hash, the last one must be the stored head.
        # The head first: entries appended after it was read are left for the next statement, so an
        # append in between never reads as a chain that does not end at its head.
        head = self._journal.head(tenant_id, customer_id)
        entries = [e for e in self._journal.entries(tenant_id, customer_id) if e.sequence <= head.sequence]
        currency = customer.billing.currency
        later = [entry for entry in entries if entry.sequence > after]
        page = later[:limit]
        more = len(later) > limit
        return LedgerStatement(
            customer_id=customer_id,
            currency=currency,
            entries=page,
            balances=balances(entries, currency),
            chain=verify_chain(entries, head_hash=head.hash if head.sequence else None),
            next_cursor=_cursor_after(page[-1].sequence) if more and page else None,
        )


def _cursor_after(sequence: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{sequence}".encode()).decode()


def _sequence_after(cursor: str | None) -> int:
    if cursor is None:
        return 0
    invalid = MalformedRequest(
        "cursor is not a cursor of this list; start again without it", code="invalid_cursor"
    )
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode("ascii") if len(cursor) <= 64 else ""
    except (ValueError, binascii.Error, UnicodeError):
        raise invalid from None
    prefix, _, number = text.partition(":")
    if prefix != "seq" or not (number.isascii() and number.isdigit()) or len(number) > 12:
        raise invalid
    return int(number)
