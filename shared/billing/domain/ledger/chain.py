"""Journal entries: one per posting, numbered and hash-chained per customer; the verifier; balances.

Each entry carries `prev_hash` (the hash of the entry before it, `GENESIS_HASH` for the first) and its
own `hash` = SHA-256 of the canonical JSON of its content including `prev_hash`. Changing, removing,
inserting or reordering any entry therefore changes every later hash, and `verify_chain` finds the
first place where the chain stops being honest. The chain alone cannot reveal that its *tail* was cut
off (a shorter chain is still a chain): pass the head hash stored beside the customer's sequence number
as `head_hash` to detect that too.

Entries also carry `leg` and `legs` (the posting's index and the number of postings of its
transaction) so a transaction written only in part is detected, not just an unbalanced one.
Balances are derived from entries only, never kept as a separate counter that could drift.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from billing.domain import canonical_json
from billing.domain.ledger.accounts import Account, AccountKind, Direction, signed_effect
from billing.domain.ledger.errors import LedgerError
from billing.domain.ledger.transactions import JournalTransaction, TransactionCode, check_amount
from billing.domain.rating.money import Currency, Money, format_major
from billing.domain.usage_events import format_timestamp

GENESIS_HASH = "0" * 64
FIRST_SEQUENCE = 1
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class JournalEntry:
    """One posting as stored: immutable, numbered in the customer's sequence, chained by hash."""

    sequence: int
    transaction_id: str
    code: TransactionCode
    account: Account
    direction: Direction
    amount_minor: int
    currency: Currency
    created_at: datetime
    hash: str
    prev_hash: str
    leg: int  # the posting's index in its transaction
    legs: int  # the number of postings of its transaction

    def __post_init__(self) -> None:
        if isinstance(self.sequence, bool) or not isinstance(self.sequence, int) or self.sequence < 0:
            raise LedgerError("an entry sequence is a non-negative integer", code="invalid_entry")
        object.__setattr__(self, "code", TransactionCode(self.code))
        object.__setattr__(self, "direction", Direction(self.direction))
        if not isinstance(self.currency, Currency):
            object.__setattr__(self, "currency", Currency.of(self.currency))
        check_amount(self.amount_minor)
        if self.currency != self.account.currency:
            raise LedgerError("an entry's currency is its account's currency", code="invalid_entry")
        if self.created_at.tzinfo is None or self.created_at.utcoffset() is None:
            raise LedgerError("created_at must be a timezone-aware instant", code="invalid_entry")
        object.__setattr__(self, "created_at", self.created_at.astimezone(UTC))
        if not 0 <= self.leg < self.legs:
            raise LedgerError("an entry's leg is an index into its transaction's legs", code="invalid_entry")
        for name in ("hash", "prev_hash"):
            value = getattr(self, name)
            if not isinstance(value, str) or len(value) != 64 or not set(value) <= _HEX:
                raise LedgerError(f"{name} must be 64 lower-case hex digits", code="invalid_entry")

    def content(self) -> dict[str, Any]:
        """Everything the hash covers: all fields but the hash itself (prev_hash included)."""
        return {
            "sequence": self.sequence,
            "transaction_id": self.transaction_id,
            "code": self.code.value,
            "customer_id": self.account.customer_id,
            "account": self.account.kind.value,
            "direction": self.direction.value,
            "amount_minor": self.amount_minor,
            "currency": self.currency.code,
            "created_at": format_timestamp(self.created_at),
            "leg": self.leg,
            "legs": self.legs,
            "prev_hash": self.prev_hash,
        }

    def to_json(self) -> dict[str, Any]:
        """The API shape of `GET /v1/customers/{id}/ledger` entries (amount in major units)."""
        return {
            "sequence": self.sequence,
            "transaction_id": self.transaction_id,
            "code": self.code.value,
            "account": self.account.kind.value,
            "direction": self.direction.value,
            "amount": format_major(self.amount_minor, self.currency),
            "amount_minor": self.amount_minor,
            "currency": self.currency.code,
            "created_at": format_timestamp(self.created_at),
            "hash": self.hash,
            "prev_hash": self.prev_hash,
        }


def compute_hash(entry: JournalEntry) -> str:
    """The hash an entry must carry, from its content and prev_hash (ignoring its stored hash)."""
    return canonical_json.sha256_hex(entry.content())


def chain_entries(prev_hash: str, start_sequence: int, transaction: JournalTransaction) -> list[JournalEntry]:
    """The entries of one transaction, numbered from `start_sequence`, chained after `prev_hash`.

    The caller passes the customer's current head (hash and next sequence), read in the same storage
    transaction whose condition guards that head: that is what makes the sequence gap- and duplicate-free.
    """
    if isinstance(start_sequence, bool) or not isinstance(start_sequence, int) or start_sequence < 0:
        raise LedgerError("start_sequence is a non-negative integer", code="invalid_entry")
    entries: list[JournalEntry] = []
    legs = len(transaction.postings)
    for leg, posting in enumerate(transaction.postings):
        unsealed = JournalEntry(
            sequence=start_sequence + leg,
            transaction_id=transaction.id,
            code=transaction.code,
            account=posting.account,
            direction=posting.direction,
            amount_minor=posting.amount_minor,
            currency=posting.currency,
            created_at=transaction.created_at,
            hash=GENESIS_HASH,  # placeholder: the hash does not cover itself
            prev_hash=prev_hash,
            leg=leg,
            legs=legs,
        )
        entry = _with_hash(unsealed, compute_hash(unsealed))
        entries.append(entry)
        prev_hash = entry.hash
    return entries


def chain_transactions(
    transactions: Iterable[JournalTransaction],
    *,
    prev_hash: str = GENESIS_HASH,
    start_sequence: int = FIRST_SEQUENCE,
) -> list[JournalEntry]:
    """Entries for several transactions in order, each chained after the previous one."""
    entries: list[JournalEntry] = []
    for transaction in transactions:
        chained = chain_entries(prev_hash, start_sequence, transaction)
        entries.extend(chained)
        prev_hash, start_sequence = chained[-1].hash, chained[-1].sequence + 1
    return entries


class ChainProblem(StrEnum):
    GAP = "gap"  # a sequence number is missing
    DUPLICATE_SEQUENCE = "duplicate_sequence"
    OUT_OF_ORDER = "out_of_order"
    HASH_MISMATCH = "hash_mismatch"  # the entry's content is not what its hash says
    BROKEN_LINK = "broken_link"  # prev_hash is not the hash of the entry before
    INCOMPLETE_TRANSACTION = "incomplete_transaction"  # legs missing, extra or out of place
    UNBALANCED_TRANSACTION = "unbalanced_transaction"
    DUPLICATE_TRANSACTION = "duplicate_transaction"  # one transaction id booked in two places
    HEAD_MISMATCH = "head_mismatch"  # the chain ends elsewhere than the stored head


@dataclass(frozen=True)
class VerificationResult:
    """`ok`, or the first problem: what, at which sequence / position, in words."""

    ok: bool
    entries_checked: int
    head_hash: str  # the hash of the last entry checked and found sound (prev_hash if none)
    problem: ChainProblem | None = None
    sequence: int | None = None
    index: int | None = None
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries_checked": self.entries_checked,
            "head_hash": self.head_hash,
            "problem": self.problem.value if self.problem else None,
            "sequence": self.sequence,
            "index": self.index,
            "message": self.message,
        }


@dataclass
class _OpenTransaction:
    id: str
    first: JournalEntry
    count: int = 0


def verify_chain(
    entries: Sequence[JournalEntry],
    *,
    prev_hash: str = GENESIS_HASH,
    start_sequence: int = FIRST_SEQUENCE,
    head_hash: str | None = None,
) -> VerificationResult:
    """Walk the entries in the order given and report the first problem found.

    `prev_hash` and `start_sequence` say where the slice is expected to begin (the genesis by default).
    Checks per entry, in order: sequence (gap, duplicate, out of order), hash over its content, link to
    the entry before, then per transaction: its legs are contiguous and complete, it balances per
    currency, its id appears once.
    """
    remaining = [entry.sequence for entry in entries]
    seen_sequences: set[int] = set()
    finished: set[str] = set()
    expected_prev, expected_sequence = prev_hash, start_sequence
    current: _OpenTransaction | None = None
    good_head = prev_hash

    def fail(problem: ChainProblem, index: int, sequence: int | None, message: str) -> VerificationResult:
        return VerificationResult(False, index, good_head, problem, sequence, index, message)

    for index, entry in enumerate(entries):
        sequence = entry.sequence
        if sequence != expected_sequence:
            if sequence < expected_sequence:
                problem = (
                    ChainProblem.DUPLICATE_SEQUENCE
                    if sequence in seen_sequences
                    else ChainProblem.OUT_OF_ORDER
                )
            elif expected_sequence in remaining[index + 1 :]:
                problem = ChainProblem.OUT_OF_ORDER
            else:
                problem = ChainProblem.GAP
            return fail(problem, index, sequence, f"expected sequence {expected_sequence}, found {sequence}")
        seen_sequences.add(sequence)
        if compute_hash(entry) != entry.hash:
            return fail(
                ChainProblem.HASH_MISMATCH, index, sequence, f"entry {sequence} does not match its hash"
            )
        if entry.prev_hash != expected_prev:
            return fail(
                ChainProblem.BROKEN_LINK,
                index,
                sequence,
                f"entry {sequence} does not follow the entry before it (prev_hash differs)",
            )

        if current is None or current.id != entry.transaction_id:
            if current is not None:
                closing = _close(current, entries[index - current.count : index])
                if closing is not None:
                    return fail(closing[0], index - 1, sequence - 1, closing[1])
                finished.add(current.id)
            if entry.transaction_id in finished:
                return fail(
                    ChainProblem.DUPLICATE_TRANSACTION,
                    index,
                    sequence,
                    f"transaction {entry.transaction_id} appears again at entry {sequence}",
                )
            current = _OpenTransaction(entry.transaction_id, entry)
        if not _same_transaction(current.first, entry) or entry.leg != current.count:
            return fail(
                ChainProblem.INCOMPLETE_TRANSACTION,
                index,
                sequence,
                f"entry {sequence} is not leg {current.count} of transaction {current.id}",
            )
        current.count += 1
        expected_prev, expected_sequence = entry.hash, sequence + 1
        good_head = entry.hash

    if current is not None:
        closing = _close(current, entries[len(entries) - current.count :])
        if closing is not None:
            last = entries[-1]
            return fail(closing[0], len(entries) - 1, last.sequence, closing[1])
    if head_hash is not None and head_hash != good_head:
        return VerificationResult(
            False,
            len(entries),
            good_head,
            ChainProblem.HEAD_MISMATCH,
            None,
            None,
            "the chain does not end at the stored head: entries are missing at the end or it forked",
        )
    return VerificationResult(True, len(entries), good_head)


def balances(
    entries: Iterable[JournalEntry], currency: Currency | str | None = None
) -> dict[AccountKind, Money]:
    """Balance per account kind of entries in one currency, each positive on its normal side.

    Every kind is present (zero when untouched), so the API shape is stable. Entries in several
    currencies are refused (use `balances_by_currency`); with no entries and no currency, `{}`.
    """
    by_currency = balances_by_currency(entries)
    if currency is not None:
        code = Currency.of(currency).code
        others = set(by_currency) - {code}
        if others:
            raise LedgerError(f"entries in {sorted(others)} are not {code}", code="mixed_currencies")
        return by_currency.get(code) or _zero_balances(Currency.of(code))
    if len(by_currency) > 1:
        raise LedgerError(
            f"entries in several currencies {sorted(by_currency)}: use balances_by_currency",
            code="mixed_currencies",
        )
    return next(iter(by_currency.values()), {})


def balances_by_currency(entries: Iterable[JournalEntry]) -> dict[str, dict[AccountKind, Money]]:
    totals: dict[str, dict[AccountKind, int]] = defaultdict(lambda: dict.fromkeys(AccountKind, 0))
    currencies: dict[str, Currency] = {}
    for entry in entries:
        code = entry.currency.code
        currencies[code] = entry.currency
        totals[code][entry.account.kind] += signed_effect(
            entry.account.kind, entry.direction, entry.amount_minor
        )
    return {
        code: {kind: Money(minor, currencies[code]) for kind, minor in totals[code].items()}
        for code in sorted(totals)
    }


def balances_to_json(balances_of_kind: dict[AccountKind, Money]) -> dict[str, str]:
    """{"receivable": "12.34", ...}: the `balances` object of the ledger API."""
    return {kind.value: money.major for kind, money in balances_of_kind.items()}


def _zero_balances(currency: Currency) -> dict[AccountKind, Money]:
    return {kind: Money.zero(currency) for kind in AccountKind}


def _same_transaction(first: JournalEntry, entry: JournalEntry) -> bool:
    return (
        entry.code == first.code
        and entry.created_at == first.created_at
        and entry.legs == first.legs
        and entry.account.customer_id == first.account.customer_id
    )


def _close(current: _OpenTransaction, legs: Sequence[JournalEntry]) -> tuple[ChainProblem, str] | None:
    if current.count != current.first.legs:
        return (
            ChainProblem.INCOMPLETE_TRANSACTION,
            f"transaction {current.id} has {current.count} of its {current.first.legs} legs",
        )
    debits: dict[str, int] = defaultdict(int)
    credits: dict[str, int] = defaultdict(int)
    for entry in legs:
        side = debits if entry.direction is Direction.DEBIT else credits
        side[entry.currency.code] += entry.amount_minor
    for code in sorted(set(debits) | set(credits)):
        if debits[code] != credits[code]:
            return (
                ChainProblem.UNBALANCED_TRANSACTION,
                f"transaction {current.id} does not balance in {code}: "
                f"debits {debits[code]} != credits {credits[code]}",
            )
    return None


def _with_hash(entry: JournalEntry, hash_hex: str) -> JournalEntry:
    return JournalEntry(
        sequence=entry.sequence,
        transaction_id=entry.transaction_id,
        code=entry.code,
        account=entry.account,
        direction=entry.direction,
        amount_minor=entry.amount_minor,
        currency=entry.currency,
        created_at=entry.created_at,
        hash=hash_hex,
        prev_hash=entry.prev_hash,
        leg=entry.leg,
        legs=entry.legs,
    )


@dataclass(frozen=True)
class LedgerHead:
    """Where a customer's next transaction goes: after `sequence` (0 for an empty journal) and `hash`."""

    sequence: int
    hash: str

    @property
    def next_sequence(self) -> int:
        return self.sequence + 1 if self.sequence else FIRST_SEQUENCE


EMPTY_HEAD = LedgerHead(0, GENESIS_HASH)


@dataclass(frozen=True)
class LedgerSnapshot:
    """A customer's journal as read at one head: what the next transaction chains after, and balances."""

    head: LedgerHead
    entries: tuple[JournalEntry, ...] = ()

    def balance_minor(self, kind: AccountKind, currency: Currency | str) -> int:
        """The balance of one account in minor units, positive on its normal side (0 when untouched)."""
        code = Currency.of(currency).code
        return sum(
            signed_effect(entry.account.kind, entry.direction, entry.amount_minor)
            for entry in self.entries
            if entry.account.kind is kind and entry.currency.code == code
        )
