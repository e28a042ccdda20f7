"""Properties of the ledger for arbitrary billing histories: balance, derivation, tamper evidence."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from billing.domain.ledger.accounts import AccountKind, Direction, signed_effect
from billing.domain.ledger.builders import (
    InvoiceToBook,
    entries_for_credit_application,
    entries_for_invoice,
    entries_for_payment,
)
from billing.domain.ledger.chain import JournalEntry, balances, chain_transactions, verify_chain
from billing.domain.ledger.transactions import JournalTransaction, TransactionCode, reversal_of
from billing.domain.rating.money import Currency, Money
from tests.unit.ledger.builders import CUSTOMER, T0

CURRENCIES = [Currency.of(code) for code in ("USD", "EUR", "JPY", "KWD")]
amounts = st.integers(min_value=-(10**12), max_value=10**12)


@st.composite
def histories(draw: st.DrawFn) -> list[JournalTransaction]:
    """A customer's billing history in one currency: invoices, credit notes, payments, credit, reversals."""
    currency = draw(st.sampled_from(CURRENCIES))
    steps = draw(st.integers(min_value=1, max_value=12))
    transactions: list[JournalTransaction] = []
    receivable = credit = 0
    for n in range(steps):
        when = T0 + timedelta(days=n)
        kind = draw(st.sampled_from(["invoice", "payment", "credit", "reversal"]))
        txn: JournalTransaction | None = None
        if kind == "invoice":
            subtotal, tax = draw(amounts), draw(amounts)
            txn = entries_for_invoice(
                InvoiceToBook(f"inv_{n}", CUSTOMER, currency, subtotal, tax, subtotal + tax), when
            )
        elif kind == "payment":
            paid = draw(st.integers(min_value=1, max_value=10**12))
            txn = entries_for_payment(f"pay_{n}", CUSTOMER, Money(paid, currency), receivable, when)
        elif kind == "credit":
            txn = entries_for_credit_application(f"app_{n}", CUSTOMER, currency, credit, receivable, when)
        elif transactions:
            txn = reversal_of(draw(st.sampled_from(transactions)), when)
            if any(t.id == txn.id for t in transactions):
                txn = None  # a transaction is reversed once; its id says so
        if txn is not None:
            transactions.append(txn)
            for posting in txn.postings:
                effect = signed_effect(posting.account.kind, posting.direction, posting.amount_minor)
                if posting.account.kind is AccountKind.RECEIVABLE:
                    receivable += effect
                elif posting.account.kind is AccountKind.CUSTOMER_CREDIT:
                    credit += effect
    return transactions


@settings(max_examples=200)
@given(histories())
def test_every_journal_transaction_balances_per_currency(transactions: list[JournalTransaction]) -> None:
    for txn in transactions:
        debits: dict[str, int] = defaultdict(int)
        credits: dict[str, int] = defaultdict(int)
        for posting in txn.postings:
            assert posting.amount_minor > 0
            (debits if posting.direction is Direction.DEBIT else credits)[posting.currency.code] += (
                posting.amount_minor
            )
        assert debits == credits


@settings(max_examples=200)
@given(histories())
def test_balances_derived_from_entries_equal_the_sum_of_the_transactions(
    transactions: list[JournalTransaction],
) -> None:
    entries = chain_transactions(transactions)
    if not entries:
        return
    expected: dict[AccountKind, int] = dict.fromkeys(AccountKind, 0)
    for txn in transactions:
        for posting in txn.postings:
            expected[posting.account.kind] += signed_effect(
                posting.account.kind, posting.direction, posting.amount_minor
            )
    derived = balances(entries)
    assert {kind: money.minor for kind, money in derived.items()} == expected
    # and the accounting equation holds: assets = liabilities + income
    minor = {kind: money.minor for kind, money in derived.items()}
    assert minor[AccountKind.RECEIVABLE] + minor[AccountKind.CASH] == (
        minor[AccountKind.REVENUE] + minor[AccountKind.TAX_PAYABLE] + minor[AccountKind.CUSTOMER_CREDIT]
    )


def test_an_invoice_and_its_reversal_net_to_zero() -> None:
    txn = entries_for_invoice(InvoiceToBook("inv_1", CUSTOMER, CURRENCIES[0], 10_000, 800, 10_800), T0)
    assert txn is not None
    entries = chain_transactions([txn, reversal_of(txn, T0 + timedelta(hours=1))])
    assert all(money.minor == 0 for money in balances(entries).values())
    assert verify_chain(entries).ok


@settings(max_examples=150)
@given(histories())
def test_any_honestly_built_chain_verifies(transactions: list[JournalTransaction]) -> None:
    entries = chain_transactions(transactions)
    result = verify_chain(entries, head_hash=entries[-1].hash if entries else None)
    assert result.ok, result.message
    assert result.entries_checked == len(entries)


def mutations(entry: JournalEntry) -> list[JournalEntry]:
    """Every kind of single-field change a tamperer (or a bug) could make to one stored entry."""
    other_kind = AccountKind.REVENUE if entry.account.kind is not AccountKind.REVENUE else AccountKind.CASH
    return [
        dataclasses.replace(entry, amount_minor=entry.amount_minor + 1),
        dataclasses.replace(entry, direction=entry.direction.opposite),
        dataclasses.replace(entry, account=dataclasses.replace(entry.account, kind=other_kind)),
        dataclasses.replace(entry, account=dataclasses.replace(entry.account, customer_id="cus_other")),
        dataclasses.replace(entry, transaction_id=entry.transaction_id + "x"),
        dataclasses.replace(entry, code=TransactionCode.WRITE_OFF),
        dataclasses.replace(entry, created_at=entry.created_at + timedelta(microseconds=1)),
        dataclasses.replace(entry, sequence=entry.sequence + 1),
        dataclasses.replace(entry, hash="f" * 64),
        dataclasses.replace(entry, prev_hash="e" * 64),
    ]


@settings(max_examples=150)
@given(histories(), st.data())
def test_verify_chain_detects_any_single_mutated_entry(
    transactions: list[JournalTransaction], data: st.DataObject
) -> None:
    entries = chain_transactions(transactions)
    if not entries:
        return
    index = data.draw(st.integers(min_value=0, max_value=len(entries) - 1))
    tampered = data.draw(st.sampled_from(mutations(entries[index])))
    forged = [*entries[:index], tampered, *entries[index + 1 :]]
    result = verify_chain(forged)
    assert not result.ok
    assert result.index is not None
    assert result.index <= index + 1  # found at the tampered entry, or at the link right after it


@settings(max_examples=150)
@given(histories(), st.data())
def test_verify_chain_detects_any_single_removed_entry(
    transactions: list[JournalTransaction], data: st.DataObject
) -> None:
    entries = chain_transactions(transactions)
    if not entries:
        return
    index = data.draw(st.integers(min_value=0, max_value=len(entries) - 1))
    assert not verify_chain([*entries[:index], *entries[index + 1 :]]).ok


@settings(max_examples=150)
@given(histories(), st.data())
def test_verify_chain_detects_any_single_reordered_entry(
    transactions: list[JournalTransaction], data: st.DataObject
) -> None:
    entries = chain_transactions(transactions)
    if len(entries) < 2:
        return
    source = data.draw(st.integers(min_value=0, max_value=len(entries) - 1))
    target = data.draw(st.integers(min_value=0, max_value=len(entries) - 1).filter(lambda i: i != source))
    moved = list(entries)
    moved.insert(target, moved.pop(source))
    assert not verify_chain(moved).ok
