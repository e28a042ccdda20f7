"""A customer's ledger on the wire."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from billing.api.models.common import ResponseModel
from billing.domain.ledger.chain import JournalEntry
from billing.domain.rating.money import format_major
from billing.domain.rating.periods import format_instant
from billing.services.ledger import LedgerStatement


class JournalEntryOut(ResponseModel):
    sequence: int
    transaction_id: str
    code: str = Field(description="Why the transaction happened, e.g. invoice_finalized")
    account: str
    direction: Literal["debit", "credit"]
    amount: str
    amount_minor: int
    currency: str
    created_at: str
    hash: str
    prev_hash: str

    @classmethod
    def of(cls, entry: JournalEntry) -> JournalEntryOut:
        return cls(
            sequence=entry.sequence,
            transaction_id=entry.transaction_id,
            code=entry.code.value,
            account=entry.account.kind.value,
            direction=entry.direction.value,
            amount=format_major(entry.amount_minor, entry.currency),
            amount_minor=entry.amount_minor,
            currency=entry.currency.code,
            created_at=format_instant(entry.created_at),
            hash=entry.hash,
            prev_hash=entry.prev_hash,
        )


class ChainOut(ResponseModel):
    ok: bool
    entries_checked: int
    head_hash: str
    problem: str | None
    sequence: int | None
    index: int | None
    message: str


class LedgerOut(ResponseModel):
    customer_id: str
    currency: str
    entries: list[JournalEntryOut] = Field(description="A page of entries, oldest first")
    balances: dict[str, str] = Field(description="Per account, of the whole journal, on its normal side")
    chain: ChainOut = Field(description="The hash chain of the whole journal, verified against its head")
    next_cursor: str | None

    @classmethod
    def of(cls, statement: LedgerStatement) -> LedgerOut:
        chain = statement.chain
        return cls(
            customer_id=statement.customer_id,
            currency=statement.currency.code,
            entries=[JournalEntryOut.of(entry) for entry in statement.entries],
            balances={kind.value: money.major for kind, money in statement.balances.items()},
            chain=ChainOut(
                ok=chain.ok,
                entries_checked=chain.entries_checked,
                head_hash=chain.head_hash,
                problem=None if chain.problem is None else chain.problem.value,
                sequence=chain.sequence,
                index=chain.index,
                message=chain.message,
            ),
            next_cursor=statement.next_cursor,
        )
