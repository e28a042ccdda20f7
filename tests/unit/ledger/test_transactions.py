"""Journal transactions: the balance invariant, deterministic ids, immutability, reversals."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import datetime

import pytest

from billing.domain.ledger.accounts import NORMAL_BALANCE, AccountKind, Direction
from billing.domain.ledger.errors import LedgerError, UnbalancedTransaction
from billing.domain.ledger.transactions import (
    JournalTransaction,
    Posting,
    TransactionCode,
    reversal_of,
    transaction_id,
)
from tests.unit.ledger.builders import EUR, T0, USD, account, legs


def sale(amount: int = 10_800) -> tuple[Posting, ...]:
    return (
        Posting.debit(account("receivable"), amount),
        Posting.credit(account("revenue"), 10_000),
        Posting.credit(account("tax_payable"), 800),
    )


def test_normal_balances_are_debit_for_assets_and_credit_for_income_and_liabilities() -> None:
    assert NORMAL_BALANCE == {
        AccountKind.RECEIVABLE: Direction.DEBIT,
        AccountKind.CASH: Direction.DEBIT,
        AccountKind.REVENUE: Direction.CREDIT,
        AccountKind.TAX_PAYABLE: Direction.CREDIT,
        AccountKind.CUSTOMER_CREDIT: Direction.CREDIT,
    }


def test_a_balanced_transaction_exists_and_is_immutable() -> None:
    txn = JournalTransaction("txn_1", TransactionCode.INVOICE_FINALIZED, sale(), T0, {"invoice_id": "inv_1"})
    assert legs(txn) == [
        ("receivable", "debit", "108.00"),
        ("revenue", "credit", "100.00"),
        ("tax_payable", "credit", "8.00"),
    ]
    assert txn.customer_id == "cus_42"
    with pytest.raises(dataclasses.FrozenInstanceError):
        txn.code = TransactionCode.WRITE_OFF  # type: ignore[misc]
    with pytest.raises(TypeError):
        txn.metadata["invoice_id"] = "inv_2"  # type: ignore[index]


def test_an_unbalanced_transaction_refuses_to_exist_and_says_by_how_much() -> None:
    with pytest.raises(UnbalancedTransaction) as raised:
        JournalTransaction("txn_1", TransactionCode.INVOICE_FINALIZED, sale(10_799), T0)
    assert raised.value.code == "unbalanced_transaction"
    assert "debits 107.99 != credits 108.00" in raised.value.message
    assert raised.value.details == [{"currency": "USD", "debits_minor": 10_799, "credits_minor": 10_800}]


def test_balance_is_checked_per_currency_not_in_total() -> None:
    # 100 USD against 100 EUR is the same number and not the same money.
    with pytest.raises(UnbalancedTransaction):
        JournalTransaction(
            "txn_1",
            TransactionCode.ADJUSTMENT,
            (Posting.debit(account("cash", USD), 100), Posting.credit(account("revenue", EUR), 100)),
            T0,
        )


@pytest.mark.parametrize("amount", [0, -5, True, 1.5])
def test_a_posting_amount_is_a_positive_integer_of_minor_units(amount: object) -> None:
    with pytest.raises(LedgerError) as raised:
        Posting(account("cash"), Direction.DEBIT, amount, USD)  # type: ignore[arg-type]
    assert raised.value.code == "invalid_amount"


def test_a_posting_in_another_currency_than_its_account_is_refused() -> None:
    with pytest.raises(LedgerError, match="cannot go to"):
        Posting(account("cash", USD), Direction.DEBIT, 100, EUR)


def test_a_transaction_belongs_to_exactly_one_customer() -> None:
    with pytest.raises(LedgerError, match="several customers"):
        JournalTransaction(
            "txn_1",
            TransactionCode.ADJUSTMENT,
            (
                Posting.debit(account("cash", customer_id="cus_1"), 100),
                Posting.credit(account("customer_credit", customer_id="cus_2"), 100),
            ),
            T0,
        )


def test_a_single_leg_a_naive_instant_or_float_metadata_is_refused() -> None:
    with pytest.raises(LedgerError, match="at least two postings"):
        JournalTransaction("txn_1", TransactionCode.ADJUSTMENT, sale()[:1], T0)
    with pytest.raises(LedgerError, match="timezone-aware"):
        JournalTransaction("txn_1", TransactionCode.ADJUSTMENT, sale(), datetime(2026, 4, 1))
    with pytest.raises(LedgerError, match="metadata"):
        JournalTransaction("txn_1", TransactionCode.ADJUSTMENT, sale(), T0, {"rate": 0.1})  # type: ignore[dict-item]


def test_transaction_ids_are_sha256_of_source_and_code_and_stable_across_processes() -> None:
    expected = hashlib.sha256(
        json.dumps({"code": "invoice_finalized", "source_id": "inv_1"}, separators=(",", ":")).encode()
    ).hexdigest()
    assert transaction_id("inv_1", TransactionCode.INVOICE_FINALIZED) == "txn_" + expected[:32]
    assert transaction_id("inv_1", "payment_received") != transaction_id("inv_1", "invoice_finalized")


def test_a_reversal_is_a_new_transaction_with_every_leg_on_the_other_side() -> None:
    original = JournalTransaction("txn_1", TransactionCode.INVOICE_FINALIZED, sale(), T0)
    reversal = reversal_of(original, T0, reason="issued in error")
    assert reversal.code is TransactionCode.REVERSAL
    assert reversal.id == transaction_id("txn_1", TransactionCode.REVERSAL)
    assert legs(reversal) == [
        ("receivable", "credit", "108.00"),
        ("revenue", "debit", "100.00"),
        ("tax_payable", "debit", "8.00"),
    ]
    assert dict(reversal.metadata) == {
        "reverses": "txn_1",
        "reversed_code": "invoice_finalized",
        "reason": "issued in error",
    }
    assert original.postings == sale()  # the original is untouched: corrections never edit
