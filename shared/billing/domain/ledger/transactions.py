"""Journal transactions: postings, the balance invariant, deterministic ids, codes and reversals.

A `JournalTransaction` is one financial fact. It cannot be constructed unless, in every currency it
touches, the sum of its debits equals the sum of its credits (checked in the constructor, raising
`UnbalancedTransaction`; never an `assert`, which `python -O` strips). It belongs to exactly one customer,
because each customer's entries form one hash chain with one sequence. Transactions are immutable: a
mistake is corrected by a new transaction (`reversal_of`, then the right one), never by an edit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from billing.domain import canonical_json
from billing.domain.ledger.accounts import Account, Direction
from billing.domain.ledger.errors import LedgerError, UnbalancedTransaction
from billing.domain.rating.money import Currency, format_major

TRANSACTION_ID_PREFIX = "txn_"
TRANSACTION_ID_HEX_DIGITS = 32
# DynamoDB numbers hold 38 significant digits; a larger amount could not be stored exactly.
MAX_AMOUNT_MINOR = 10**38 - 1

MetadataValue = str | int | bool | None


class TransactionCode(StrEnum):
    """Why a transaction happened (TigerBeetle's `code`): every transaction carries one."""

    INVOICE_FINALIZED = "invoice_finalized"
    PAYMENT_RECEIVED = "payment_received"
    CREDIT_APPLIED = "credit_applied"
    ADJUSTMENT = "adjustment"
    TAX_ADJUSTMENT = "tax_adjustment"
    WRITE_OFF = "write_off"
    REFUND = "refund"
    REVERSAL = "reversal"


@dataclass(frozen=True)
class Posting:
    """One leg of a transaction: a positive amount debited or credited to one account."""

    account: Account
    direction: Direction
    amount_minor: int
    currency: Currency

    def __post_init__(self) -> None:
        if not isinstance(self.account, Account):
            raise LedgerError("a posting needs an Account", code="invalid_posting")
        object.__setattr__(self, "direction", Direction(self.direction))
        if not isinstance(self.currency, Currency):
            object.__setattr__(self, "currency", Currency.of(self.currency))
        check_amount(self.amount_minor)
        if self.currency != self.account.currency:
            raise LedgerError(
                f"a {self.currency} posting cannot go to the {self.account.name} account",
                code="invalid_posting",
            )

    @classmethod
    def debit(cls, account: Account, amount_minor: int) -> Posting:
        return cls(account, Direction.DEBIT, amount_minor, account.currency)

    @classmethod
    def credit(cls, account: Account, amount_minor: int) -> Posting:
        return cls(account, Direction.CREDIT, amount_minor, account.currency)

    def reversed(self) -> Posting:
        return Posting(self.account, self.direction.opposite, self.amount_minor, self.currency)


@dataclass(frozen=True)
class JournalTransaction:
    """A balanced set of postings with a deterministic id, a code, an instant and plain metadata."""

    id: str
    code: TransactionCode
    postings: tuple[Posting, ...]
    created_at: datetime
    metadata: Mapping[str, MetadataValue] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id or self.id.strip() != self.id:
            raise LedgerError("a transaction needs an id", code="invalid_transaction")
        object.__setattr__(self, "code", TransactionCode(self.code))
        postings = tuple(self.postings)
        if len(postings) < 2 or not all(isinstance(posting, Posting) for posting in postings):
            raise LedgerError(
                f"transaction {self.id} needs at least two postings", code="invalid_transaction"
            )
        object.__setattr__(self, "postings", postings)
        customers = {posting.account.customer_id for posting in postings}
        if len(customers) != 1:
            # One customer's entries form one chain with one sequence; a transaction spanning two
            # customers could not be written atomically into both chains with this shape.
            raise LedgerError(
                f"transaction {self.id} touches several customers: {sorted(customers)}",
                code="invalid_transaction",
            )
        if self.created_at.tzinfo is None or self.created_at.utcoffset() is None:
            raise LedgerError("created_at must be a timezone-aware instant", code="invalid_transaction")
        object.__setattr__(self, "created_at", self.created_at.astimezone(UTC))
        object.__setattr__(self, "metadata", _frozen_metadata(self.metadata))
        unbalanced = {
            currency: (debits, credits)
            for currency, (debits, credits) in debits_and_credits(postings).items()
            if debits != credits
        }
        if unbalanced:
            described = ", ".join(
                f"{code}: debits {format_major(debits, Currency.of(code))} "
                f"!= credits {format_major(credits, Currency.of(code))}"
                for code, (debits, credits) in sorted(unbalanced.items())
            )
            raise UnbalancedTransaction(
                f"transaction {self.id} ({self.code.value}) does not balance: {described}",
                details=[
                    {"currency": code, "debits_minor": debits, "credits_minor": credits}
                    for code, (debits, credits) in sorted(unbalanced.items())
                ],
            )

    @property
    def customer_id(self) -> str:
        return self.postings[0].account.customer_id

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "code": self.code.value,
            "created_at": self.created_at.isoformat(),
            "metadata": dict(self.metadata),
            "postings": [
                {
                    "account": posting.account.kind.value,
                    "customer_id": posting.account.customer_id,
                    "direction": posting.direction.value,
                    "amount_minor": posting.amount_minor,
                    "currency": posting.currency.code,
                }
                for posting in self.postings
            ],
        }


def debits_and_credits(postings: Iterable[Posting]) -> dict[str, tuple[int, int]]:
    """Per currency code: (sum of debits, sum of credits) in minor units."""
    debits: dict[str, int] = defaultdict(int)
    credits: dict[str, int] = defaultdict(int)
    for posting in postings:
        side = debits if posting.direction is Direction.DEBIT else credits
        side[posting.currency.code] += posting.amount_minor
    return {code: (debits[code], credits[code]) for code in sorted(set(debits) | set(credits))}


def transaction_id(source_id: str, code: TransactionCode | str) -> str:
    """Deterministic: the same source (invoice, payment, ...) and code always name the same transaction.

    SHA-256 of canonical JSON, never the salted built-in hash(), so a retried booking in another process
    produces the same id and the storage's conditional write refuses the duplicate (the id is the
    idempotency key, as in TigerBeetle).
    """
    if not isinstance(source_id, str) or not source_id:
        raise LedgerError("a transaction id needs a source id", code="invalid_transaction")
    digest = canonical_json.sha256_hex({"source_id": source_id, "code": TransactionCode(code).value})
    return TRANSACTION_ID_PREFIX + digest[:TRANSACTION_ID_HEX_DIGITS]


def reversal_of(
    transaction: JournalTransaction, created_at: datetime, *, reason: str | None = None
) -> JournalTransaction:
    """The correcting transaction that undoes `transaction`: every posting on the opposite side.

    Its id derives from the reversed transaction's id, so reversing twice (a retry) names one reversal.
    """
    metadata: dict[str, MetadataValue] = {"reverses": transaction.id, "reversed_code": transaction.code.value}
    if reason is not None:
        metadata["reason"] = reason
    return JournalTransaction(
        id=transaction_id(transaction.id, TransactionCode.REVERSAL),
        code=TransactionCode.REVERSAL,
        postings=tuple(posting.reversed() for posting in transaction.postings),
        created_at=created_at,
        metadata=metadata,
    )


def check_amount(amount_minor: object) -> int:
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise LedgerError("amounts are integer minor units", code="invalid_amount")
    if not 0 < amount_minor <= MAX_AMOUNT_MINOR:
        # A zero leg carries no fact; a negative one is the other direction and must say so.
        raise LedgerError(
            f"a posting amount must be positive (and storable), not {amount_minor}", code="invalid_amount"
        )
    return amount_minor


def _frozen_metadata(metadata: Mapping[str, Any]) -> Mapping[str, MetadataValue]:
    if not isinstance(metadata, Mapping):
        raise LedgerError("metadata is a mapping of names to plain values", code="invalid_transaction")
    copied: dict[str, MetadataValue] = {}
    for key in sorted(metadata):
        value = metadata[key]
        if not isinstance(key, str) or not (value is None or isinstance(value, str | int | bool)):
            # Floats are refused like everywhere else; nested values would make the audit ambiguous.
            raise LedgerError(
                f"metadata {key!r} must be a string, integer, boolean or null", code="invalid_transaction"
            )
        copied[key] = value
    return MappingProxyType(copied)
