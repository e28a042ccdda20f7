"""The issued invoice, worked by hand and by property: finalize with tax and credit, payments, statuses,
tax corrections, and the journal transactions that move with it."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.domain.errors import Conflict
from billing.domain.invoicing import (
    PAYABLE,
    InvoiceStatus,
    IssuedInvoice,
    RecordedPayment,
    Settlement,
    tax_correction,
)
from billing.domain.ledger.accounts import AccountKind, Direction
from billing.domain.ledger.chain import balances, chain_transactions, verify_chain
from billing.domain.ledger.errors import LedgerError
from billing.domain.ledger.transactions import JournalTransaction, TransactionCode, transaction_id
from billing.domain.rating.invoices import Invoice, InvoiceLine, LineType
from billing.domain.rating.money import Currency, Money
from billing.domain.rating.plans import SubscriptionSegment
from billing.domain.tax.model import TaxLine, TaxReason
from tests.unit.ledger.builders import legs
from tests.unit.rating.builders import at, calls, customer, invoice_for, period_of, plan

USD = Currency.of("USD")
JPY = Currency.of("JPY")
SINCE = at("2026-01-01T00:00:00Z")
FINALIZED_AT = at("2026-04-01T00:05:00Z")
PAID_AT = at("2026-04-03T09:00:00Z")
RUN = "run_2026_04"
MARCH = {"start": "2026-03-01T00:00:00Z", "end": "2026-04-01T00:00:00Z"}


# --- builders ----------------------------------------------------------------------------------------


def rated(
    currency: str = "USD",
    *,
    base_fee: str = "49.00",
    unit_price: str = "0.01",
    calls_made: int = 250,
    adjustments_minor: Sequence[int] = (),
) -> Invoice:
    """A real rated March invoice of a UTC customer: a base fee and a per-call charge (by default
    49.00 + 250 calls at 0.01 = 51.50), plus late-event adjustments of February of the given amounts."""
    who = customer("UTC", currency=currency)
    period = period_of(who, "2026-03-15T00:00:00Z")
    priced = plan(
        currency=currency,
        base_fee=base_fee,
        minimum_commitment=None,
        charges=[{"meter": "calls", "model": "per_unit", "unit_price": unit_price}],
    )
    february = period_of(who, "2026-02-15T00:00:00Z")
    adjustments = [
        InvoiceLine(
            type=LineType.ADJUSTMENT,
            amount=Money(minor, who.currency),
            description="Adjustment of usage calls, pro v1, February",
            plan_id="pro",
            plan_version=1,
            period=february,
            meter="calls",
            quantity=Decimal(0),
            tax_code="saas",
            adjusts=LineType.USAGE,
            adjusted_invoice_id="inv_february",
        )
        for minor in adjustments_minor
    ]
    events = calls(calls_made, "2026-03-10T10:00:00Z")
    return invoice_for(who, period, [SubscriptionSegment(priced, SINCE)], events, adjustments)


def tax(
    minor: int, *, currency: Currency = USD, estimated: bool = False, taxable_minor: int = 5150
) -> dict[str, Any]:
    """A tax line as the tax step puts it on an invoice (`TaxLine.to_json`)."""
    return TaxLine(
        line_ref="L1",
        jurisdiction="US-NY",
        rate=Decimal("0.08875"),
        taxable_amount_minor=taxable_minor,
        tax_minor=minor,
        reason=TaxReason.ESTIMATED if estimated else TaxReason.TAXABLE,
        rule_id="us-ny-sales-2026",
        estimated=estimated,
        tax_type="sales",
    ).to_json(currency)


def correction(of: str, minor: int, currency: Currency = USD) -> dict[str, Any]:
    """A tax line correcting another invoice's tax (the shape `tax_correction` returns)."""
    return {
        "type": "tax",
        "corrects_invoice_id": of,
        "amount": Money(minor, currency).major,
        "amount_minor": minor,
        "description": f"Tax correction for invoice {of} (tax location or rates changed)",
        "tax_estimated": False,
        "period": MARCH,
    }


def issue(
    draft: Invoice | dict[str, Any] | None = None,
    tax_lines: Sequence[dict[str, Any]] = (),
    *,
    credit: int = 0,
) -> tuple[IssuedInvoice, list[JournalTransaction]]:
    data = (draft or rated()).to_dict() if not isinstance(draft, dict) else draft
    return IssuedInvoice.finalize(
        data, list(tax_lines), finalized_at=FINALIZED_AT, run_id=RUN, available_credit_minor=credit
    )


def ny_invoice(*, credit: int = 0) -> tuple[IssuedInvoice, list[JournalTransaction]]:
    """51.50 of charges and 4.57 of New York sales tax (8.875 % of 51.50 = 4.570625): 56.07."""
    return issue(rated(), [tax(457)], credit=credit)


def dollars(minor: int) -> Money:
    return Money(minor, USD)


def ledger(transactions: Sequence[JournalTransaction], currency: Currency = USD) -> dict[AccountKind, int]:
    """Balances in minor units (positive on each account's normal side) of the chained transactions."""
    entries = chain_transactions(transactions)
    assert verify_chain(entries).ok
    return {kind: money.minor for kind, money in balances(entries, currency).items()}


# --- finalize: amounts and lines ----------------------------------------------------------------------


def test_finalize_totals_the_rated_lines_and_the_tax_lines() -> None:
    draft = rated()
    invoice, _ = issue(draft, [tax(457)])
    assert (invoice.subtotal_minor, invoice.tax_minor, invoice.total_minor) == (5150, 457, 5607)
    assert invoice.amount_due_minor == 5607
    assert invoice.status is InvoiceStatus.FINALIZED
    assert (invoice.credit_applied_minor, invoice.amount_paid_minor) == (0, 0)
    assert invoice.id == draft.id
    assert (invoice.customer_id, invoice.subscription_id) == ("cus_42", "sub_1")
    assert invoice.currency == USD
    assert invoice.period == draft.period
    assert (invoice.finalized_at, invoice.run_id) == (FINALIZED_AT, RUN)


def test_finalize_keeps_the_rated_lines_then_the_tax_lines_in_order() -> None:
    draft = rated().to_dict()
    invoice, _ = issue(draft, [tax(457)])
    assert [line["type"] for line in invoice.lines] == ["base_fee", "usage", "tax"]
    assert [dict(line) for line in invoice.lines] == [*draft["lines"], tax(457)]
    assert [dict(line) for line in invoice.rated_lines] == draft["lines"]
    assert [line["amount_minor"] for line in invoice.rated_lines] == [4900, 250]


def test_the_subtotal_is_the_sum_of_the_rated_lines() -> None:
    invoice, _ = issue(rated(adjustments_minor=[-300, 125]), [tax(430)])
    assert invoice.subtotal_minor == sum(int(line["amount_minor"]) for line in invoice.rated_lines) == 4975
    assert invoice.total_minor == 5405


def test_an_invoice_without_tax_lines_totals_its_subtotal() -> None:
    invoice, transactions = issue(rated())
    assert (invoice.tax_minor, invoice.total_minor, invoice.amount_due_minor) == (0, 5150, 5150)
    assert invoice.own_tax_minor == 0
    assert not invoice.tax_estimated
    assert legs(transactions[0]) == [("receivable", "debit", "51.50"), ("revenue", "credit", "51.50")]


def test_finalize_accepts_the_period_as_a_billing_period_as_well_as_its_json() -> None:
    draft = rated()
    from_json, _ = issue(draft.to_dict(), [tax(457)])
    from_period, _ = issue({**draft.to_dict(), "period": draft.period}, [tax(457)])
    assert from_json.period == from_period.period == draft.period
    assert from_json == from_period


def test_the_money_helpers_speak_the_invoice_currency() -> None:
    invoice, _ = ny_invoice()
    assert invoice.money(5607) == Money(5607, USD)
    assert invoice.major(5607) == "56.07"
    assert invoice.major(-5) == "-0.05"


# --- finalize: the ledger -----------------------------------------------------------------------------


def test_finalize_books_receivable_revenue_and_tax_payable() -> None:
    invoice, transactions = ny_invoice()
    assert len(transactions) == 1
    (booked,) = transactions
    assert booked.code is TransactionCode.INVOICE_FINALIZED
    assert booked.id == transaction_id(invoice.id, TransactionCode.INVOICE_FINALIZED)
    assert booked.created_at == FINALIZED_AT
    assert booked.customer_id == "cus_42"
    assert legs(booked) == [
        ("receivable", "debit", "56.07"),
        ("revenue", "credit", "51.50"),
        ("tax_payable", "credit", "4.57"),
    ]
    assert dict(booked.metadata) == {
        "invoice_id": invoice.id,
        "subtotal_minor": 5150,
        "tax_minor": 457,
        "total_minor": 5607,
    }


def test_revenue_and_tax_of_opposite_signs_each_go_on_their_own_side() -> None:
    # This invoice carries a refund of 6.00 of February's tax, more than its own 4.57 of tax.
    invoice, transactions = issue(rated(), [tax(457), correction("inv_february", -600)])
    assert (invoice.subtotal_minor, invoice.tax_minor, invoice.total_minor) == (5150, -143, 5007)
    assert invoice.status is InvoiceStatus.FINALIZED
    assert legs(transactions[0]) == [
        ("receivable", "debit", "50.07"),
        ("revenue", "credit", "51.50"),
        ("tax_payable", "debit", "1.43"),
    ]


# --- finalize: customer credit ------------------------------------------------------------------------


def test_credit_from_an_overpayment_is_applied_at_finalize_up_to_the_total() -> None:
    invoice, transactions = ny_invoice(credit=10_000)
    assert invoice.credit_applied_minor == 5607
    assert invoice.amount_due_minor == 0
    assert invoice.amount_paid_minor == 0
    assert invoice.status is InvoiceStatus.PAID
    booked, applied = transactions
    assert booked.code is TransactionCode.INVOICE_FINALIZED
    assert applied.code is TransactionCode.CREDIT_APPLIED
    assert applied.id == transaction_id(invoice.id, TransactionCode.CREDIT_APPLIED)
    assert applied.created_at == FINALIZED_AT
    assert legs(applied) == [("customer_credit", "debit", "56.07"), ("receivable", "credit", "56.07")]
    assert dict(applied.metadata) == {
        "application_id": invoice.id,
        "applied_minor": 5607,
        "invoice_id": invoice.id,
    }
    assert ledger(transactions)[AccountKind.RECEIVABLE] == 0
    assert ledger(transactions)[AccountKind.CUSTOMER_CREDIT] == -5607  # drawn from the 100.00 held


def test_credit_of_exactly_the_total_pays_the_invoice() -> None:
    invoice, transactions = ny_invoice(credit=5607)
    assert (invoice.credit_applied_minor, invoice.amount_due_minor) == (5607, 0)
    assert invoice.status is InvoiceStatus.PAID
    assert len(transactions) == 2


def test_credit_smaller_than_the_total_leaves_the_rest_due_and_the_invoice_finalized() -> None:
    invoice, transactions = ny_invoice(credit=1000)
    assert invoice.credit_applied_minor == 1000
    assert invoice.amount_due_minor == 4607
    assert invoice.amount_paid_minor == 0
    assert invoice.status is InvoiceStatus.FINALIZED  # credit is not a payment
    assert legs(transactions[1]) == [("customer_credit", "debit", "10.00"), ("receivable", "credit", "10.00")]
    assert ledger(transactions)[AccountKind.RECEIVABLE] == 4607


@pytest.mark.parametrize("credit", [0, -1, -5000])
def test_no_credit_is_applied_when_the_customer_has_none(credit: int) -> None:
    invoice, transactions = ny_invoice(credit=credit)
    assert invoice.credit_applied_minor == 0
    assert invoice.amount_due_minor == 5607
    assert [txn.code for txn in transactions] == [TransactionCode.INVOICE_FINALIZED]


# --- finalize: totals of zero or less -----------------------------------------------------------------


def test_an_invoice_of_zero_or_less_is_paid_at_finalize() -> None:
    nothing, nothing_booked = issue(rated(base_fee="0", unit_price="0"), credit=5000)
    assert (nothing.total_minor, nothing.amount_due_minor, nothing.credit_applied_minor) == (0, 0, 0)
    assert nothing.status is InvoiceStatus.PAID
    assert nothing_booked == []  # an invoice of all zeros books nothing

    # Late events of February were billed 80.00 too much: more than March's 51.50.
    note, note_booked = issue(rated(adjustments_minor=[-8000]), [tax(-253, taxable_minor=-2850)], credit=5000)
    assert (note.subtotal_minor, note.tax_minor, note.total_minor) == (-2850, -253, -3103)
    assert (note.amount_due_minor, note.credit_applied_minor) == (0, 0)
    assert note.status is InvoiceStatus.PAID
    assert [txn.code for txn in note_booked] == [TransactionCode.INVOICE_FINALIZED]  # no credit applied


def test_a_credit_note_is_owed_to_the_customer_as_credit() -> None:
    invoice, transactions = issue(rated(adjustments_minor=[-8000]), [tax(-253, taxable_minor=-2850)])
    (booked,) = transactions
    assert legs(booked) == [
        ("customer_credit", "credit", "31.03"),
        ("revenue", "debit", "28.50"),
        ("tax_payable", "debit", "2.53"),
    ]
    assert ledger(transactions) == {
        AccountKind.RECEIVABLE: 0,
        AccountKind.REVENUE: -2850,
        AccountKind.TAX_PAYABLE: -253,
        AccountKind.CASH: 0,
        AccountKind.CUSTOMER_CREDIT: 3103,
    }
    assert invoice.amount_due_minor == 0


def test_a_credit_note_takes_none_of_the_customer_credit() -> None:
    invoice, transactions = issue(rated(adjustments_minor=[-8000]), credit=10_000)
    assert invoice.credit_applied_minor == 0
    assert [txn.code for txn in transactions] == [TransactionCode.INVOICE_FINALIZED]


def test_a_total_of_zero_from_offsetting_revenue_and_tax_books_both_and_is_paid() -> None:
    # 1.00 of charges, and a refund of 1.00 of February's tax: nothing due, but both facts are booked.
    invoice, transactions = issue(rated(base_fee="1.00", unit_price="0"), [correction("inv_february", -100)])
    assert (invoice.subtotal_minor, invoice.tax_minor, invoice.total_minor) == (100, -100, 0)
    assert invoice.status is InvoiceStatus.PAID
    assert invoice.amount_due_minor == 0
    (booked,) = transactions
    assert legs(booked) == [("revenue", "credit", "1.00"), ("tax_payable", "debit", "1.00")]


# --- payments -----------------------------------------------------------------------------------------


def test_a_partial_payment_leaves_the_invoice_partially_paid() -> None:
    invoice, _ = ny_invoice()
    paid, settlement, transaction = invoice.pay("pay_1", dollars(2000), PAID_AT)
    assert paid.amount_paid_minor == 2000
    assert paid.amount_due_minor == 3607
    assert paid.status is InvoiceStatus.PARTIALLY_PAID
    assert settlement == Settlement("pay_1", 2000, 2000, 0)
    assert transaction.code is TransactionCode.PAYMENT_RECEIVED
    assert transaction.id == transaction_id("pay_1", TransactionCode.PAYMENT_RECEIVED)
    assert transaction.created_at == PAID_AT
    assert legs(transaction) == [("cash", "debit", "20.00"), ("receivable", "credit", "20.00")]
    assert dict(transaction.metadata) == {
        "payment_id": "pay_1",
        "settled_minor": 2000,
        "overpaid_minor": 0,
        "invoice_id": invoice.id,
    }


def test_a_payment_of_exactly_what_is_due_pays_the_invoice() -> None:
    invoice, booked = ny_invoice()
    paid, settlement, transaction = invoice.pay("pay_1", dollars(5607), PAID_AT)
    assert (paid.amount_paid_minor, paid.amount_due_minor) == (5607, 0)
    assert paid.status is InvoiceStatus.PAID
    assert settlement == Settlement("pay_1", 5607, 5607, 0)
    assert legs(transaction) == [("cash", "debit", "56.07"), ("receivable", "credit", "56.07")]
    assert ledger([*booked, transaction])[AccountKind.RECEIVABLE] == 0


def test_a_payment_beyond_what_is_due_becomes_customer_credit() -> None:
    invoice, booked = ny_invoice()
    paid, settlement, transaction = invoice.pay("pay_1", dollars(6000), PAID_AT)
    assert paid.amount_paid_minor == 6000  # the whole payment, as the customer sees it
    assert paid.amount_due_minor == 0
    assert paid.status is InvoiceStatus.PAID
    assert settlement == Settlement("pay_1", 6000, 5607, 393)
    assert legs(transaction) == [
        ("cash", "debit", "60.00"),
        ("receivable", "credit", "56.07"),
        ("customer_credit", "credit", "3.93"),
    ]
    assert dict(transaction.metadata)["overpaid_minor"] == 393
    assert ledger([*booked, transaction]) == {
        AccountKind.RECEIVABLE: 0,
        AccountKind.REVENUE: 5150,
        AccountKind.TAX_PAYABLE: 457,
        AccountKind.CASH: 6000,
        AccountKind.CUSTOMER_CREDIT: 393,
    }


def test_successive_payments_settle_only_what_remains_due() -> None:
    invoice, booked = ny_invoice()
    first, one, first_txn = invoice.pay("pay_1", dollars(2000), PAID_AT)
    second, two, second_txn = first.pay("pay_2", dollars(5000), PAID_AT + timedelta(days=1))
    assert one == Settlement("pay_1", 2000, 2000, 0)
    assert two == Settlement("pay_2", 5000, 3607, 1393)
    assert (second.amount_paid_minor, second.amount_due_minor) == (7000, 0)
    assert second.status is InvoiceStatus.PAID
    assert ledger([*booked, first_txn, second_txn])[AccountKind.CUSTOMER_CREDIT] == 1393


def test_a_payment_after_credit_settles_only_the_rest() -> None:
    invoice, booked = ny_invoice(credit=1000)
    paid, settlement, transaction = invoice.pay("pay_1", dollars(5000), PAID_AT)
    assert settlement == Settlement("pay_1", 5000, 4607, 393)
    assert (paid.credit_applied_minor, paid.amount_paid_minor, paid.amount_due_minor) == (1000, 5000, 0)
    assert paid.status is InvoiceStatus.PAID
    balance = ledger([*booked, transaction])
    assert balance[AccountKind.RECEIVABLE] == 0
    assert balance[AccountKind.CUSTOMER_CREDIT] == -1000 + 393


def test_a_paid_invoice_takes_no_payment() -> None:
    invoice, _ = ny_invoice()
    paid, _, _ = invoice.pay("pay_1", dollars(5607), PAID_AT)
    with pytest.raises(Conflict) as refused:
        paid.pay("pay_2", dollars(100), PAID_AT)
    assert refused.value.code == "invoice_not_payable"
    assert "paid" in refused.value.message


def test_an_invoice_credit_paid_at_finalize_takes_no_payment() -> None:
    invoice, _ = ny_invoice(credit=6000)
    with pytest.raises(Conflict) as refused:
        invoice.pay("pay_1", dollars(100), PAID_AT)
    assert refused.value.code == "invoice_not_payable"


def test_a_credit_note_takes_no_payment() -> None:
    invoice, _ = issue(rated(adjustments_minor=[-8000]))
    with pytest.raises(Conflict) as refused:
        invoice.pay("pay_1", dollars(100), PAID_AT)
    assert refused.value.code == "invoice_not_payable"


@pytest.mark.parametrize("status", [InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE])
def test_void_and_uncollectible_invoices_take_no_payment(status: InvoiceStatus) -> None:
    invoice, _ = ny_invoice()
    ended = dataclasses.replace(invoice, status=status)
    with pytest.raises(Conflict) as refused:
        ended.pay("pay_1", dollars(100), PAID_AT)
    assert refused.value.code == "invoice_not_payable"
    assert status.value in refused.value.message


def test_only_finalized_and_partially_paid_invoices_are_payable() -> None:
    assert frozenset({InvoiceStatus.FINALIZED, InvoiceStatus.PARTIALLY_PAID}) == PAYABLE


def test_a_void_invoice_has_nothing_due_an_uncollectible_one_still_shows_what_is_owed() -> None:
    invoice, _ = ny_invoice()
    partly, _, _ = invoice.pay("pay_1", dollars(2000), PAID_AT)
    assert dataclasses.replace(partly, status=InvoiceStatus.VOID).amount_due_minor == 0
    assert dataclasses.replace(partly, status=InvoiceStatus.UNCOLLECTIBLE).amount_due_minor == 3607


def test_a_payment_in_another_currency_is_refused() -> None:
    invoice, _ = ny_invoice()
    with pytest.raises(Conflict) as refused:
        invoice.pay("pay_1", Money(5607, Currency.of("EUR")), PAID_AT)
    assert refused.value.code == "currency_mismatch"
    assert invoice.amount_paid_minor == 0


@pytest.mark.parametrize("minor", [0, -100])
def test_a_payment_must_be_a_positive_amount(minor: int) -> None:
    invoice, _ = ny_invoice()
    with pytest.raises(LedgerError) as refused:
        invoice.pay("pay_1", dollars(minor), PAID_AT)
    assert refused.value.code == "invalid_amount"


def test_paying_returns_a_new_state_and_leaves_the_invoice_as_it_was() -> None:
    invoice, _ = ny_invoice()
    replica = dataclasses.replace(invoice)
    paid, _, _ = invoice.pay("pay_1", dollars(2000), PAID_AT)
    assert paid is not invoice
    assert invoice == replica
    assert (invoice.amount_paid_minor, invoice.amount_due_minor, invoice.status) == (
        0,
        5607,
        InvoiceStatus.FINALIZED,
    )
    # Everything but the payment and its status is carried over.
    assert dataclasses.replace(paid, amount_paid_minor=0, status=InvoiceStatus.FINALIZED) == invoice


def test_an_issued_invoice_is_frozen() -> None:
    invoice, _ = ny_invoice()
    with pytest.raises(dataclasses.FrozenInstanceError):
        invoice.amount_paid_minor = 5607  # type: ignore[misc]
    with pytest.raises(TypeError):
        invoice.lines[0]["amount_minor"] = 0  # type: ignore[index]


def test_changing_the_draft_after_finalize_does_not_change_the_invoice_lines() -> None:
    draft = rated().to_dict()
    invoice, _ = issue(draft, [tax(457)])
    draft["lines"][0]["amount_minor"] = 1
    draft["lines"].append({"type": "usage", "amount_minor": 99})
    assert [line["amount_minor"] for line in invoice.lines] == [4900, 250, 457]


def test_the_nested_values_of_an_invoice_line_do_not_change_when_the_draft_does() -> None:
    draft = rated().to_dict()
    invoice, _ = issue(draft, [tax(457)])
    draft["lines"][0]["period"]["end"] = "2099-01-01T00:00:00Z"
    assert invoice.lines[0]["period"] == MARCH


def test_a_status_is_read_from_its_text() -> None:
    invoice, _ = ny_invoice()
    assert dataclasses.replace(invoice, status="partially_paid").status is InvoiceStatus.PARTIALLY_PAID  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="refunded"):
        dataclasses.replace(invoice, status="refunded")  # type: ignore[arg-type]


# --- currencies ---------------------------------------------------------------------------------------


def test_jpy_has_no_minor_unit() -> None:
    # 4900 yen + 250 calls at 1 yen = 5150 yen; 10 % consumption tax = 515 yen.
    invoice, booked = issue(
        rated("JPY", base_fee="4900", unit_price="1"), [tax(515, currency=JPY, taxable_minor=5150)]
    )
    assert (invoice.subtotal_minor, invoice.tax_minor, invoice.total_minor) == (5150, 515, 5665)
    assert invoice.major(invoice.total_minor) == "5665"
    assert invoice.money(5665) == Money(5665, JPY)
    assert legs(booked[0]) == [
        ("receivable", "debit", "5665"),
        ("revenue", "credit", "5150"),
        ("tax_payable", "credit", "515"),
    ]
    paid, settlement, transaction = invoice.pay("pay_1", Money(6000, JPY), PAID_AT)
    assert settlement == Settlement("pay_1", 6000, 5665, 335)
    assert paid.status is InvoiceStatus.PAID
    assert legs(transaction) == [
        ("cash", "debit", "6000"),
        ("receivable", "credit", "5665"),
        ("customer_credit", "credit", "335"),
    ]
    assert ledger([*booked, transaction], JPY)[AccountKind.CUSTOMER_CREDIT] == 335


def test_jpy_credit_applied_at_finalize() -> None:
    invoice, booked = issue(rated("JPY", base_fee="4900", unit_price="1"), credit=2000)
    assert (invoice.credit_applied_minor, invoice.amount_due_minor) == (2000, 3150)
    assert legs(booked[1]) == [("customer_credit", "debit", "2000"), ("receivable", "credit", "2000")]


def test_a_usd_payment_is_refused_by_a_jpy_invoice() -> None:
    invoice, _ = issue(rated("JPY", base_fee="4900", unit_price="1"))
    with pytest.raises(Conflict) as refused:
        invoice.pay("pay_1", dollars(5150), PAID_AT)
    assert refused.value.code == "currency_mismatch"


# --- tax: own tax, corrections, estimates -------------------------------------------------------------


def test_own_tax_is_the_tax_of_the_invoice_lines_not_the_corrections_it_carries() -> None:
    invoice, _ = issue(
        rated(), [tax(457), correction("inv_february", 120), correction("inv_january", -30), tax(3)]
    )
    assert invoice.tax_minor == 457 + 120 - 30 + 3
    assert invoice.total_minor == 5150 + 550
    assert invoice.own_tax_minor == 460
    assert invoice.tax_corrections_of("inv_february") == 120
    assert invoice.tax_corrections_of("inv_january") == -30
    assert invoice.tax_corrections_of("inv_december") == 0
    assert invoice.tax_corrections_of(invoice.id) == 0
    assert [line["type"] for line in invoice.rated_lines] == ["base_fee", "usage"]


def test_tax_is_estimated_when_any_tax_line_is() -> None:
    assert not ny_invoice()[0].tax_estimated
    assert not issue(rated())[0].tax_estimated
    assert issue(rated(), [tax(300), tax(157, estimated=True)])[0].tax_estimated


def test_an_estimated_tax_line_says_so() -> None:
    invoice, _ = issue(rated(), [tax(457, estimated=True)])
    (line,) = [line for line in invoice.lines if line["type"] == "tax"]
    assert line["tax_estimated"] is True
    assert line["description"].endswith("(estimated)")


def test_no_tax_correction_when_the_requote_equals_what_was_billed() -> None:
    invoice, _ = ny_invoice()
    assert tax_correction(invoice, [], 457, estimated_before=False) is None
    assert tax_correction(invoice, [], 457, estimated_before=True) is None


def test_a_tax_correction_bills_the_difference_to_the_requote() -> None:
    invoice, _ = ny_invoice()
    line = tax_correction(invoice, [], 500, estimated_before=False)
    assert line == {
        "type": "tax",
        "corrects_invoice_id": invoice.id,
        "amount": "0.43",
        "amount_minor": 43,
        "description": f"Tax correction for invoice {invoice.id} (tax location or rates changed)",
        "tax_estimated": False,
        "period": MARCH,
    }


def test_a_tax_correction_of_an_estimated_tax_says_it_was_reconciled() -> None:
    invoice, _ = issue(rated(), [tax(457, estimated=True)])
    line = tax_correction(invoice, [], 412, estimated_before=invoice.tax_estimated)
    assert line is not None
    assert line["amount_minor"] == -45
    assert line["amount"] == "-0.45"
    assert line["description"] == f"Tax correction for invoice {invoice.id} (estimated tax reconciled)"
    assert line["tax_estimated"] is False


def test_a_tax_correction_can_refund_all_the_tax() -> None:
    invoice, _ = ny_invoice()
    line = tax_correction(invoice, [], 0, estimated_before=False)
    assert line is not None
    assert (line["amount_minor"], line["amount"]) == (-457, "-4.57")


def test_a_tax_correction_counts_what_later_invoices_already_corrected() -> None:
    invoice, _ = ny_invoice()
    april, _ = issue(rated(), [tax(457), correction(invoice.id, 43), correction("inv_other", 1000)])
    may, _ = issue(rated(), [tax(457), correction(invoice.id, -10)])
    # Billed for it so far: 4.57 + 0.43 - 0.10 = 4.90 (the correction of another invoice is not its).
    assert tax_correction(invoice, [april, may], 490, estimated_before=False) is None
    line = tax_correction(invoice, [april, may], 480, estimated_before=False)
    assert line is not None
    assert line["amount_minor"] == -10


def test_a_tax_correction_carried_by_the_next_invoice_settles_the_question() -> None:
    invoice, _ = ny_invoice()
    line = tax_correction(invoice, [], 500, estimated_before=False)
    assert line is not None
    april, transactions = issue(rated(), [tax(457), line])
    assert april.own_tax_minor == 457
    assert april.tax_corrections_of(invoice.id) == 43
    assert april.tax_minor == 500
    assert legs(transactions[0])[2] == ("tax_payable", "credit", "5.00")
    # Asked again with the same requote, nothing more is corrected.
    assert tax_correction(invoice, [april], 500, estimated_before=False) is None


def test_a_jpy_tax_correction_is_in_whole_yen() -> None:
    invoice, _ = issue(rated("JPY", base_fee="4900", unit_price="1"), [tax(515, currency=JPY)])
    line = tax_correction(invoice, [], 412, estimated_before=False)
    assert line is not None
    assert (line["amount_minor"], line["amount"]) == (-103, "-103")


# --- recorded payments and settlements ----------------------------------------------------------------


def test_a_recorded_payment_keeps_what_its_settlement_did() -> None:
    invoice, _ = ny_invoice()
    _, settlement, _ = invoice.pay("pay_1", dollars(6000), PAID_AT)
    recorded = RecordedPayment(
        id=settlement.payment_id,
        invoice_id=invoice.id,
        customer_id=invoice.customer_id,
        amount_minor=settlement.amount_minor,
        currency=invoice.currency,
        reference="wire-2026-04-03",
        settled_minor=settlement.settled_minor,
        credited_minor=settlement.credited_minor,
        created_at=PAID_AT,
    )
    assert recorded.settled_minor + recorded.credited_minor == recorded.amount_minor == 6000
    assert recorded == dataclasses.replace(recorded)
    with pytest.raises(dataclasses.FrozenInstanceError):
        recorded.amount_minor = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        settlement.settled_minor = 1  # type: ignore[misc]


# --- determinism --------------------------------------------------------------------------------------


def test_finalizing_the_same_invoice_twice_gives_the_same_invoice_and_transactions() -> None:
    first = ny_invoice(credit=1000)
    again = ny_invoice(credit=1000)
    assert first == again
    assert [txn.id for txn in first[1]] == [txn.id for txn in again[1]]


def test_the_transactions_of_an_invoice_are_named_by_the_invoice_not_by_the_run() -> None:
    draft = rated().to_dict()
    one, one_booked = IssuedInvoice.finalize(
        draft, [tax(457)], finalized_at=FINALIZED_AT, run_id="run_a", available_credit_minor=1000
    )
    two, two_booked = IssuedInvoice.finalize(
        draft, [tax(457)], finalized_at=FINALIZED_AT, run_id="run_b", available_credit_minor=1000
    )
    assert (one.run_id, two.run_id) == ("run_a", "run_b")
    assert [txn.id for txn in one_booked] == [txn.id for txn in two_booked]


# --- properties ---------------------------------------------------------------------------------------

CURRENCIES = ["USD", "JPY", "KWD"]


@dataclass
class History:
    """An invoice finalized then offered payments: every state, settlement and transaction on the way."""

    available_credit: int
    states: list[IssuedInvoice]
    transactions: list[JournalTransaction]
    settlements: list[Settlement] = field(default_factory=list)
    refused: int = 0

    @property
    def first(self) -> IssuedInvoice:
        return self.states[0]

    @property
    def last(self) -> IssuedInvoice:
        return self.states[-1]


@st.composite
def drafts(draw: st.DrawFn) -> dict[str, Any]:
    """A real rated invoice in some currency, with adjustments that take its subtotal anywhere."""
    code = draw(st.sampled_from(CURRENCIES))
    base_fee = draw(st.sampled_from(["0", "49", "1234.5"]))
    adjustments = draw(st.lists(st.integers(min_value=-(10**6), max_value=10**6), max_size=2))
    return rated(
        code, base_fee=base_fee, unit_price="0", calls_made=0, adjustments_minor=adjustments
    ).to_dict()


@st.composite
def tax_lines(draw: st.DrawFn, currency: Currency) -> list[dict[str, Any]]:
    """Own tax lines and corrections of earlier invoices' tax, of either sign."""
    lines = []
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        minor = draw(st.integers(min_value=-(10**5), max_value=10**5))
        corrects = draw(st.sampled_from([None, None, "inv_january", "inv_february"]))
        if corrects is None:
            lines.append(tax(minor, currency=currency, estimated=draw(st.booleans())))
        else:
            lines.append(correction(corrects, minor, currency))
    return lines


@st.composite
def histories(draw: st.DrawFn) -> History:
    draft = draw(drafts())
    currency = Currency.of(draft["currency"])
    lines = draw(tax_lines(currency))
    credit = draw(st.integers(min_value=-1000, max_value=2 * 10**6))
    invoice, transactions = IssuedInvoice.finalize(
        draft, lines, finalized_at=FINALIZED_AT, run_id=RUN, available_credit_minor=credit
    )
    history = History(credit, [invoice], list(transactions))
    # A payment of 0 here stands for "exactly what is due", so that exact payments are common.
    offers = draw(st.lists(st.integers(min_value=0, max_value=2 * 10**6), max_size=5))
    for n, offered in enumerate(offers):
        amount = Money(offered or max(1, history.last.amount_due_minor), currency)
        if history.last.status not in PAYABLE:
            with pytest.raises(Conflict):
                history.last.pay(f"pay_{n}", amount, PAID_AT)
            history.refused += 1
            continue
        paid, settlement, transaction = history.last.pay(f"pay_{n}", amount, PAID_AT + timedelta(hours=n))
        history.states.append(paid)
        history.settlements.append(settlement)
        history.transactions.append(transaction)
    return history


@settings(max_examples=80)
@given(histories())
def test_every_transaction_balances_and_the_chain_of_them_verifies(history: History) -> None:
    for txn in history.transactions:
        debits = sum(p.amount_minor for p in txn.postings if p.direction is Direction.DEBIT)
        credits = sum(p.amount_minor for p in txn.postings if p.direction is Direction.CREDIT)
        assert debits == credits
        assert all(p.amount_minor > 0 and p.currency == history.first.currency for p in txn.postings)
        assert txn.customer_id == history.first.customer_id
    entries = chain_transactions(history.transactions)
    assert verify_chain(entries, head_hash=entries[-1].hash if entries else None).ok


@settings(max_examples=80)
@given(histories())
def test_the_ledger_follows_the_invoice_through_finalize_and_any_payments(history: History) -> None:
    invoice = history.last
    balance = ledger(history.transactions, invoice.currency)
    # Receivable: the total if positive, less the credit applied, less what payments settled = what is due.
    settled = sum(s.settled_minor for s in history.settlements)
    assert (
        balance[AccountKind.RECEIVABLE]
        == max(0, invoice.total_minor) - invoice.credit_applied_minor - settled
    )
    assert balance[AccountKind.RECEIVABLE] == invoice.amount_due_minor
    # Customer credit: a credit note's total, less the credit used, plus every payment's excess.
    credited = sum(s.credited_minor for s in history.settlements)
    assert balance[AccountKind.CUSTOMER_CREDIT] == (
        max(0, -invoice.total_minor) - invoice.credit_applied_minor + credited
    )
    assert (
        balance[AccountKind.CASH]
        == invoice.amount_paid_minor
        == sum(s.amount_minor for s in history.settlements)
    )
    assert balance[AccountKind.REVENUE] == invoice.subtotal_minor
    assert balance[AccountKind.TAX_PAYABLE] == invoice.tax_minor
    assert balance[AccountKind.RECEIVABLE] + balance[AccountKind.CASH] == (
        balance[AccountKind.REVENUE] + balance[AccountKind.TAX_PAYABLE] + balance[AccountKind.CUSTOMER_CREDIT]
    )


@settings(max_examples=80)
@given(histories())
def test_amount_due_is_never_negative_and_the_status_follows_the_amounts(history: History) -> None:
    for state in history.states:
        due = state.amount_due_minor
        assert due >= 0
        assert due == max(0, state.total_minor - state.credit_applied_minor - state.amount_paid_minor)
        assert state.total_minor == state.subtotal_minor + state.tax_minor
        if due == 0:
            assert state.status is InvoiceStatus.PAID
        elif state.amount_paid_minor > 0:
            assert state.status is InvoiceStatus.PARTIALLY_PAID
        else:
            assert state.status is InvoiceStatus.FINALIZED
    # Once paid, it stays paid and takes no more payment.
    statuses = [state.status for state in history.states]
    if InvoiceStatus.PAID in statuses:
        assert set(statuses[statuses.index(InvoiceStatus.PAID) :]) == {InvoiceStatus.PAID}
        assert len(history.states) == statuses.index(InvoiceStatus.PAID) + 1


@settings(max_examples=80)
@given(histories())
def test_credit_applied_at_finalize_is_never_negative_nor_more_than_the_total_or_the_credit(
    history: History,
) -> None:
    invoice = history.first
    applied = invoice.credit_applied_minor
    assert 0 <= applied <= max(0, invoice.total_minor)
    assert applied <= max(0, history.available_credit)
    assert applied == max(0, min(history.available_credit, invoice.total_minor))
    credit_txns = [txn for txn in history.transactions if txn.code is TransactionCode.CREDIT_APPLIED]
    assert len(credit_txns) == (1 if applied else 0)
    for txn in credit_txns:
        assert txn.metadata["applied_minor"] == applied
        assert legs(txn) == [
            ("customer_credit", "debit", invoice.major(applied)),
            ("receivable", "credit", invoice.major(applied)),
        ]
    assert all(state.credit_applied_minor == applied for state in history.states)


@settings(max_examples=80)
@given(histories())
def test_a_payment_settles_at_most_what_is_due_and_credits_the_rest(history: History) -> None:
    payments = [txn for txn in history.transactions if txn.code is TransactionCode.PAYMENT_RECEIVED]
    assert len(payments) == len(history.settlements) == len(history.states) - 1
    for before, after, settlement, txn in zip(
        history.states[:-1], history.states[1:], history.settlements, payments, strict=True
    ):
        assert settlement.settled_minor == min(settlement.amount_minor, before.amount_due_minor)
        assert settlement.credited_minor == settlement.amount_minor - settlement.settled_minor >= 0
        assert after.amount_paid_minor == before.amount_paid_minor + settlement.amount_minor
        assert after.amount_due_minor == before.amount_due_minor - settlement.settled_minor
        assert txn.metadata["settled_minor"] == settlement.settled_minor
        assert txn.metadata["overpaid_minor"] == settlement.credited_minor
        assert txn.metadata["invoice_id"] == before.id


@settings(max_examples=60)
@given(histories(), st.integers(min_value=1, max_value=10**6))
def test_paying_never_changes_the_invoice_paid(history: History, amount: int) -> None:
    invoice = history.last
    replica = dataclasses.replace(invoice)
    try:
        invoice.pay("pay_more", Money(amount, invoice.currency), PAID_AT)
    except Conflict:
        assert invoice.status not in PAYABLE
    assert invoice == replica
    for before, after in itertools.pairwise(history.states):
        assert before.lines == after.lines
        assert (before.subtotal_minor, before.tax_minor, before.credit_applied_minor) == (
            after.subtotal_minor,
            after.tax_minor,
            after.credit_applied_minor,
        )


@settings(max_examples=60)
@given(drafts(), st.data(), st.integers(min_value=-1000, max_value=2 * 10**6))
def test_finalizing_again_with_the_same_inputs_gives_an_equal_invoice_and_equal_transactions(
    draft: dict[str, Any], data: st.DataObject, credit: int
) -> None:
    lines = data.draw(tax_lines(Currency.of(draft["currency"])))

    def once() -> tuple[IssuedInvoice, list[JournalTransaction]]:
        return IssuedInvoice.finalize(
            draft, lines, finalized_at=FINALIZED_AT, run_id=RUN, available_credit_minor=credit
        )

    first, first_booked = once()
    second, second_booked = once()
    assert first == second
    assert first_booked == second_booked
    assert [txn.to_dict() for txn in first_booked] == [txn.to_dict() for txn in second_booked]
    ids = [txn.id for txn in first_booked]
    assert len(set(ids)) == len(ids)
    assert set(ids) <= {
        transaction_id(first.id, TransactionCode.INVOICE_FINALIZED),
        transaction_id(first.id, TransactionCode.CREDIT_APPLIED),
    }


@settings(max_examples=60)
@given(histories())
def test_own_tax_and_the_corrections_carried_add_up_to_the_tax(history: History) -> None:
    invoice = history.last
    corrected = {line["corrects_invoice_id"] for line in invoice.lines if line.get("corrects_invoice_id")}
    assert invoice.own_tax_minor + sum(invoice.tax_corrections_of(other) for other in corrected) == (
        invoice.tax_minor
    )
    tax_part = [line for line in invoice.lines if line["type"] == "tax"]
    assert list(invoice.rated_lines) + tax_part == list(invoice.lines)
    assert invoice.subtotal_minor == sum(int(line["amount_minor"]) for line in invoice.rated_lines)
    assert invoice.tax_estimated == any(line["tax_estimated"] for line in tax_part)


@settings(max_examples=60)
@given(
    st.integers(min_value=-(10**5), max_value=10**5),
    st.lists(st.integers(min_value=-(10**4), max_value=10**4), max_size=3),
    st.integers(min_value=-(10**5), max_value=10**5),
    st.booleans(),
)
def test_a_tax_correction_brings_what_was_billed_to_the_requote(
    own: int, earlier: list[int], requote: int, estimated: bool
) -> None:
    invoice, _ = issue(rated(), [tax(own, estimated=estimated)])
    later = [
        issue(rated(), [correction(invoice.id, minor), correction("inv_other", 7)])[0] for minor in earlier
    ]
    line = tax_correction(invoice, later, requote, estimated_before=estimated)
    billed = own + sum(earlier)
    if requote == billed:
        assert line is None
        return
    assert line is not None
    assert line["amount_minor"] == requote - billed
    assert line["corrects_invoice_id"] == invoice.id
    assert line["tax_estimated"] is False
    assert ("estimated tax reconciled" in line["description"]) is estimated
    carrier, _ = issue(rated(), [line])
    assert tax_correction(invoice, [*later, carrier], requote, estimated_before=False) is None
