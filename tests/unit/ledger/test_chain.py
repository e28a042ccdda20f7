"""The hash chain: how entries are numbered and linked, and what the verifier reports for each tampering."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from datetime import timedelta

import pytest

from billing.domain.ledger.accounts import AccountKind, Direction
from billing.domain.ledger.builders import entries_for_invoice, entries_for_payment
from billing.domain.ledger.chain import (
    GENESIS_HASH,
    ChainProblem,
    JournalEntry,
    balances,
    balances_by_currency,
    balances_to_json,
    chain_entries,
    chain_transactions,
    compute_hash,
    verify_chain,
)
from billing.domain.ledger.errors import LedgerError
from billing.domain.ledger.transactions import JournalTransaction, Posting, TransactionCode
from tests.unit.ledger.builders import CUSTOMER, EUR, T0, USD, account, entry_lines, invoice, majors, usd


def story() -> list[JournalTransaction]:
    first = entries_for_invoice(invoice("100.00", "8.00", "inv_1"), T0)
    second = entries_for_invoice(invoice("40.00", "3.20", "inv_2"), T0 + timedelta(days=30))
    assert first is not None
    assert second is not None
    payment = entries_for_payment("pay_1", CUSTOMER, usd("50.00"), 10_800, T0 + timedelta(days=2))
    return [first, payment, second]


def chain() -> list[JournalEntry]:
    return chain_transactions(story())


def rehashed(entries: list[JournalEntry], start: int) -> list[JournalEntry]:
    """Recompute hashes from `start` on, as a forger who changed an entry would have to."""
    out = list(entries[:start])
    prev = out[-1].hash if out else GENESIS_HASH
    for entry in entries[start:]:
        linked = dataclasses.replace(entry, prev_hash=prev)
        linked = dataclasses.replace(linked, hash=compute_hash(linked))
        out.append(linked)
        prev = linked.hash
    return out


def test_entries_are_numbered_from_one_and_each_links_to_the_one_before() -> None:
    entries = chain()
    assert entry_lines(entries) == [
        (1, "receivable", "debit", 10_800),
        (2, "revenue", "credit", 10_000),
        (3, "tax_payable", "credit", 800),
        (4, "cash", "debit", 5_000),
        (5, "receivable", "credit", 5_000),
        (6, "receivable", "debit", 4_320),
        (7, "revenue", "credit", 4_000),
        (8, "tax_payable", "credit", 320),
    ]
    assert entries[0].prev_hash == GENESIS_HASH
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(entries))
    assert [(e.leg, e.legs) for e in entries[:3]] == [(0, 3), (1, 3), (2, 3)]


def test_an_entry_hash_is_sha256_of_its_canonical_json_content_so_anyone_can_recompute_it() -> None:
    entry = chain()[0]
    content = {
        "sequence": 1,
        "transaction_id": entry.transaction_id,
        "code": "invoice_finalized",
        "customer_id": "cus_42",
        "account": "receivable",
        "direction": "debit",
        "amount_minor": 10_800,
        "currency": "USD",
        "created_at": "2026-04-01T00:05:00.000000Z",
        "leg": 0,
        "legs": 3,
        "prev_hash": GENESIS_HASH,
    }
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert entry.hash == hashlib.sha256(text.encode()).hexdigest()


def test_an_entry_reads_as_the_ledger_api_shape() -> None:
    entry = chain()[0]
    assert entry.to_json() == {
        "sequence": 1,
        "transaction_id": entry.transaction_id,
        "code": "invoice_finalized",
        "account": "receivable",
        "direction": "debit",
        "amount": "108.00",
        "amount_minor": 10_800,
        "currency": "USD",
        "created_at": "2026-04-01T00:05:00.000000Z",
        "hash": entry.hash,
        "prev_hash": GENESIS_HASH,
    }


def test_chaining_continues_from_a_stored_head() -> None:
    entries = chain()
    txns = story()
    head = chain_transactions(txns[:2])
    tail = chain_entries(head[-1].hash, head[-1].sequence + 1, txns[2])
    assert head + tail == entries
    # and a slice verifies on its own when told where it starts
    assert verify_chain(tail, prev_hash=head[-1].hash, start_sequence=6).ok


def test_an_honest_chain_verifies_and_reports_its_head() -> None:
    entries = chain()
    result = verify_chain(entries, head_hash=entries[-1].hash)
    assert result.ok
    assert result.entries_checked == 8
    assert result.head_hash == entries[-1].hash
    assert verify_chain([]).ok


def test_a_changed_amount_no_longer_matches_its_hash() -> None:
    entries = chain()
    entries[3] = dataclasses.replace(entries[3], amount_minor=500)
    result = verify_chain(entries)
    assert (result.ok, result.problem, result.sequence, result.index) == (
        False,
        ChainProblem.HASH_MISMATCH,
        4,
        3,
    )
    assert result.head_hash == entries[2].hash  # everything before is still sound


def test_a_changed_entry_with_a_recomputed_hash_breaks_the_link_of_the_next() -> None:
    entries = chain()
    forged = dataclasses.replace(entries[3], amount_minor=500)
    entries[3] = dataclasses.replace(forged, hash=compute_hash(forged))
    result = verify_chain(entries)
    assert (result.problem, result.sequence) == (ChainProblem.BROKEN_LINK, 5)


def test_a_forger_who_rehashes_everything_after_is_caught_by_the_balance_check() -> None:
    entries = chain()
    entries[3] = dataclasses.replace(entries[3], amount_minor=500)  # cash 5.00 against receivable 50.00
    result = verify_chain(rehashed(entries, 3))
    assert (result.problem, result.sequence) == (ChainProblem.UNBALANCED_TRANSACTION, 5)


def test_a_removed_entry_leaves_a_gap() -> None:
    entries = chain()
    del entries[4]
    result = verify_chain(entries)
    assert (result.problem, result.sequence, result.message) == (
        ChainProblem.GAP,
        6,
        "expected sequence 5, found 6",
    )


def test_a_removed_last_entry_leaves_its_transaction_incomplete() -> None:
    result = verify_chain(chain()[:-1])
    assert result.problem is ChainProblem.INCOMPLETE_TRANSACTION
    assert "2 of its 3 legs" in result.message


def test_a_cut_off_tail_of_whole_transactions_is_found_only_against_the_stored_head() -> None:
    entries = chain()
    assert verify_chain(entries[:5]).ok  # a shorter chain is still a chain...
    result = verify_chain(entries[:5], head_hash=entries[-1].hash)
    assert result.problem is ChainProblem.HEAD_MISMATCH  # ...but not the one whose head we stored


def test_swapped_entries_are_out_of_order() -> None:
    entries = chain()
    entries[1], entries[2] = entries[2], entries[1]
    assert verify_chain(entries).problem is ChainProblem.OUT_OF_ORDER


def test_an_entry_written_twice_is_a_duplicate_sequence() -> None:
    entries = chain()
    entries.insert(2, entries[1])
    result = verify_chain(entries)
    assert (result.problem, result.sequence, result.index) == (ChainProblem.DUPLICATE_SEQUENCE, 2, 2)


def test_a_transaction_booked_twice_is_found_even_when_honestly_chained() -> None:
    first = story()[0]
    entries = chain_transactions([first, story()[1], first])
    assert verify_chain(entries).problem is ChainProblem.DUPLICATE_TRANSACTION


def test_a_chain_must_start_where_it_is_expected_to() -> None:
    entries = chain()
    assert verify_chain(entries[3:]).problem is ChainProblem.GAP  # expected sequence 1
    assert verify_chain(entries[3:], start_sequence=4).problem is ChainProblem.BROKEN_LINK
    assert verify_chain(entries[3:], start_sequence=4, prev_hash=entries[2].hash).ok


def test_balances_come_from_entries_only_and_are_positive_on_the_normal_side() -> None:
    entries = chain()
    derived = balances(entries)
    assert list(derived) == list(AccountKind)  # every kind, zero included: a stable API shape
    assert majors(derived) == {
        "receivable": "101.20",  # 108.00 - 50.00 + 43.20
        "cash": "50.00",
        "revenue": "140.00",
        "tax_payable": "11.20",
    }
    assert balances_to_json(derived)["customer_credit"] == "0.00"


def test_balances_refuse_to_add_currencies_and_split_them_on_request() -> None:
    eur = JournalTransaction(
        "txn_eur",
        TransactionCode.ADJUSTMENT,
        (Posting.debit(account("cash", EUR), 700), Posting.credit(account("customer_credit", EUR), 700)),
        T0,
    )
    entries = chain() + chain_entries(chain()[-1].hash, 9, eur)
    with pytest.raises(LedgerError) as raised:
        balances(entries)
    assert raised.value.code == "mixed_currencies"
    split = balances_by_currency(entries)
    assert sorted(split) == ["EUR", "USD"]
    assert majors(split["EUR"]) == {"cash": "7.00", "customer_credit": "7.00"}
    assert majors(balances([], USD)) == {}
    assert balances([]) == {}


def test_entries_are_immutable_and_refuse_impossible_values() -> None:
    entry = chain()[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.amount_minor = 1  # type: ignore[misc]
    with pytest.raises(LedgerError):
        dataclasses.replace(entry, amount_minor=0)
    with pytest.raises(LedgerError):
        dataclasses.replace(entry, hash="not-a-hash")
    with pytest.raises(LedgerError):
        dataclasses.replace(entry, currency=EUR)
    assert entry.direction is Direction.DEBIT
