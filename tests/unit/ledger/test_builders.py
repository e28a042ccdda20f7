"""Booking rules, worked by hand: invoices (and credit notes), payments (partial, over), credit use."""

from __future__ import annotations

import pytest

from billing.domain.ledger.builders import (
    InvoiceToBook,
    entries_for_credit_application,
    entries_for_invoice,
    entries_for_payment,
)
from billing.domain.ledger.chain import balances, chain_transactions, verify_chain
from billing.domain.ledger.errors import LedgerError
from billing.domain.ledger.transactions import JournalTransaction, TransactionCode, transaction_id
from billing.domain.rating.money import Money
from billing.domain.rating.plans import SubscriptionSegment
from tests.unit.ledger.builders import CUSTOMER, JPY, T0, USD, at, invoice, legs, majors, usd
from tests.unit.rating.builders import at as rating_at
from tests.unit.rating.builders import customer, invoice_for, period_of, plan


def booked(transaction: JournalTransaction | None) -> JournalTransaction:
    assert transaction is not None
    return transaction


def test_a_finalized_invoice_debits_receivable_and_credits_revenue_and_tax() -> None:
    txn = booked(entries_for_invoice(invoice("100.00", "8.00"), T0))
    assert txn.code is TransactionCode.INVOICE_FINALIZED
    assert txn.id == transaction_id("inv_1", TransactionCode.INVOICE_FINALIZED)
    assert legs(txn) == [
        ("receivable", "debit", "108.00"),
        ("revenue", "credit", "100.00"),
        ("tax_payable", "credit", "8.00"),
    ]
    assert dict(txn.metadata) == {
        "invoice_id": "inv_1",
        "subtotal_minor": 10_000,
        "tax_minor": 800,
        "total_minor": 10_800,
    }


def test_an_untaxed_invoice_has_no_tax_leg() -> None:
    assert legs(booked(entries_for_invoice(invoice("49.00", "0.00"), T0))) == [
        ("receivable", "debit", "49.00"),
        ("revenue", "credit", "49.00"),
    ]


def test_a_negative_invoice_is_a_credit_note_booked_to_customer_credit() -> None:
    # A late-event adjustment of -54.00 (tax included) larger than the period's charges.
    assert legs(booked(entries_for_invoice(invoice("-50.00", "-4.00"), T0))) == [
        ("customer_credit", "credit", "54.00"),
        ("revenue", "debit", "50.00"),
        ("tax_payable", "debit", "4.00"),
    ]


def test_revenue_and_tax_of_opposite_signs_still_balance() -> None:
    # +10.00 of charges and a -10.00 tax correction: nothing is owed, tax payable moves to revenue.
    assert legs(booked(entries_for_invoice(invoice("10.00", "-10.00"), T0))) == [
        ("revenue", "credit", "10.00"),
        ("tax_payable", "debit", "10.00"),
    ]
    assert legs(booked(entries_for_invoice(invoice("-2.00", "0.50"), T0))) == [
        ("customer_credit", "credit", "1.50"),
        ("revenue", "debit", "2.00"),
        ("tax_payable", "credit", "0.50"),
    ]


def test_an_invoice_of_zeros_books_nothing() -> None:
    assert entries_for_invoice(invoice("0.00", "0.00"), T0) is None


def test_a_total_that_is_not_subtotal_plus_tax_is_refused() -> None:
    with pytest.raises(LedgerError, match="!= total"):
        InvoiceToBook("inv_1", CUSTOMER, USD, 10_000, 800, 10_900)


def test_a_rated_invoice_is_booked_with_its_tax() -> None:
    who = customer("UTC")
    rated = invoice_for(
        who,
        period_of(who, "2026-03-15T00:00:00Z"),
        [SubscriptionSegment(plan(), rating_at("2026-01-01T00:00:00Z"))],
        [],
    )
    to_book = InvoiceToBook.of(rated, Money(400, USD))
    assert (to_book.invoice_id, to_book.customer_id) == (rated.id, "cus_42")
    assert (to_book.subtotal_minor, to_book.tax_minor, to_book.total_minor) == (
        rated.subtotal.minor,
        400,
        rated.subtotal.minor + 400,
    )


def test_a_partial_payment_settles_part_of_the_receivable() -> None:
    txn = entries_for_payment("pay_1", CUSTOMER, usd("50.00"), 10_800, T0, invoice_id="inv_1")
    assert txn.id == transaction_id("pay_1", TransactionCode.PAYMENT_RECEIVED)
    assert legs(txn) == [("cash", "debit", "50.00"), ("receivable", "credit", "50.00")]
    assert txn.metadata["settled_minor"] == 5_000
    assert txn.metadata["overpaid_minor"] == 0


def test_an_overpayment_settles_what_is_owed_and_the_rest_becomes_customer_credit() -> None:
    txn = entries_for_payment("pay_1", CUSTOMER, usd("120.00"), 10_800, T0)
    assert legs(txn) == [
        ("cash", "debit", "120.00"),
        ("receivable", "credit", "108.00"),
        ("customer_credit", "credit", "12.00"),
    ]


def test_a_payment_with_nothing_outstanding_is_all_credit() -> None:
    txn = entries_for_payment("pay_1", CUSTOMER, usd("20.00"), 0, T0)
    assert legs(txn) == [("cash", "debit", "20.00"), ("customer_credit", "credit", "20.00")]


def test_a_payment_of_zero_is_refused() -> None:
    with pytest.raises(LedgerError):
        entries_for_payment("pay_1", CUSTOMER, usd("0.00"), 100, T0)


def test_credit_is_applied_up_to_what_is_owed_and_up_to_what_is_available() -> None:
    small = booked(entries_for_credit_application("inv_2:credit", CUSTOMER, USD, 1_200, 3_000, T0))
    assert small.id == transaction_id("inv_2:credit", TransactionCode.CREDIT_APPLIED)
    assert legs(small) == [("customer_credit", "debit", "12.00"), ("receivable", "credit", "12.00")]
    large = booked(entries_for_credit_application("inv_2:credit", CUSTOMER, USD, 5_000, 3_000, T0))
    assert legs(large) == [("customer_credit", "debit", "30.00"), ("receivable", "credit", "30.00")]
    assert entries_for_credit_application("inv_2:credit", CUSTOMER, USD, 0, 3_000, T0) is None
    assert entries_for_credit_application("inv_2:credit", CUSTOMER, USD, 5_000, 0, T0) is None


def test_a_month_of_billing_leaves_the_balances_an_accountant_expects() -> None:
    story = [
        entries_for_invoice(invoice("100.00", "8.00", "inv_1"), at("2026-04-01T00:05:00Z")),
        entries_for_payment("pay_1", CUSTOMER, usd("50.00"), 10_800, at("2026-04-03T00:00:00Z")),
        entries_for_payment("pay_2", CUSTOMER, usd("70.00"), 5_800, at("2026-04-09T00:00:00Z")),
        entries_for_invoice(invoice("30.00", "2.40", "inv_2"), at("2026-05-01T00:05:00Z")),
        entries_for_credit_application(
            "inv_2:credit", CUSTOMER, USD, 1_200, 3_240, at("2026-05-01T00:05:00Z")
        ),
    ]
    entries = chain_transactions(booked(txn) for txn in story)
    assert verify_chain(entries).ok
    assert majors(balances(entries)) == {
        "receivable": "20.40",  # 108.00 - 50.00 - 58.00 + 32.40 - 12.00
        "cash": "120.00",
        "revenue": "130.00",
        "tax_payable": "10.40",
        # 12.00 overpaid, then applied to inv_2: zero, so not listed
    }


def test_a_currency_without_minor_units_books_whole_yen() -> None:
    to_book = InvoiceToBook("inv_jp", CUSTOMER, JPY, 1_234, 123, 1_357)
    txn = booked(entries_for_invoice(to_book, T0))
    assert legs(txn) == [
        ("receivable", "debit", "1357"),
        ("revenue", "credit", "1234"),
        ("tax_payable", "credit", "123"),
    ]
