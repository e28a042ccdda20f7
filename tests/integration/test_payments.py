"""Payments received outside the gateways: partial, full, over; the ledger follows; replays are safe."""

from __future__ import annotations

from typing import Any

import pytest

from billing.bootstrap import get_services
from billing.domain.ledger.chain import verify_chain
from tests.integration.test_cycle_close import close, send, set_up_customer
from tests.support import api_event, call_api

pytestmark = pytest.mark.usefixtures("aws")


def api(method: str, path: str, body: Any = None, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    status, payload, _ = call_api(api_event(method, path, body, **kwargs))
    return status, payload


@pytest.fixture
def invoice_id() -> str:
    """October's invoice of cus_1: 49.00 base + 10.00 tokens = 59.00, no tax (seller registered nowhere)."""
    set_up_customer()
    send([("e1", "2026-10-25T10:00:00Z", 2000)])
    [october] = close("2026-11-25T00:00:00Z")
    return str(october["invoice_id"])


def balances() -> dict[str, str]:
    return api("GET", "/v1/customers/cus_1/ledger")[1]["balances"]


def test_a_partial_then_a_final_payment_settle_the_invoice_and_the_receivable(invoice_id: str) -> None:
    status, first = api(
        "POST", f"/v1/invoices/{invoice_id}/payments", {"amount": "20.00", "reference": "wire-1"}
    )

    assert status == 201
    assert (first["amount"], first["settled"], first["credited"]) == ("20.00", "20.00", "0.00")
    assert first["invoice"]["status"] == "partially_paid"
    assert (first["invoice"]["amount_paid"], first["invoice"]["amount_due"]) == ("20.00", "39.00")
    assert balances()["receivable"] == "39.00"

    status, _ = api("POST", f"/v1/invoices/{invoice_id}/payments", {"amount": "39.00", "reference": "wire-2"})

    assert status == 201
    invoice = api("GET", f"/v1/invoices/{invoice_id}")[1]
    assert (invoice["status"], invoice["amount_paid"], invoice["amount_due"]) == ("paid", "59.00", "0.00")
    assert balances()["receivable"] == "0.00"
    assert balances()["cash"] == "59.00"
    assert verify_chain(get_services().ledger_store.entries("acme", "cus_1")).ok


def test_an_overpayment_becomes_customer_credit(invoice_id: str) -> None:
    status, payment = api(
        "POST", f"/v1/invoices/{invoice_id}/payments", {"amount": "70.00", "reference": "w"}
    )

    assert status == 201
    assert (payment["settled"], payment["credited"]) == ("59.00", "11.00")
    assert balances()["customer_credit"] == "11.00"
    assert balances()["receivable"] == "0.00"


def test_the_same_reference_is_the_same_payment_never_booked_twice(invoice_id: str) -> None:
    body = {"amount": "20.00", "reference": "wire-1"}
    assert api("POST", f"/v1/invoices/{invoice_id}/payments", body)[0] == 201

    status, again = api("POST", f"/v1/invoices/{invoice_id}/payments", body)

    assert status == 200
    assert again["invoice"]["amount_paid"] == "20.00"
    assert len(get_services().ledger_store.entries("acme", "cus_1")) == 2 + 2  # invoice + one payment
    status, other = api(
        "POST", f"/v1/invoices/{invoice_id}/payments", {"amount": "5.00", "reference": "wire-1"}
    )
    assert (status, other["error"]["code"]) == (409, "payment_reference_reused")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"amount": "0.00", "reference": "r"}, 422, None),
        ({"amount": "-5.00", "reference": "r"}, 422, None),
        ({"amount": "1.001", "reference": "r"}, 422, "invalid_amount"),
        ({"amount": "9" * 38, "reference": "r"}, 422, "invalid_amount"),  # more than can be booked
        ({"amount": 20, "reference": "r"}, 422, "invalid_request"),
        ({"amount": "20.00"}, 422, "invalid_request"),
        ({"amount": "20.00", "reference": "r", "card": "x"}, 422, "invalid_request"),
        ({"amount": "20.00", "reference": "4111 1111 1111 1111"}, 422, "card_number_rejected"),
    ],
)
def test_bad_payments_are_refused_with_clear_errors(
    invoice_id: str, body: dict[str, Any], status: int, code: str | None
) -> None:
    got, payload = api("POST", f"/v1/invoices/{invoice_id}/payments", body)

    assert got == status, payload
    if code:
        assert payload["error"]["code"] == code
    assert balances()["receivable"] == "59.00"  # nothing was booked


def test_unknown_or_other_tenants_invoices_are_404_and_paid_ones_409(invoice_id: str) -> None:
    body = {"amount": "59.00", "reference": "r"}
    assert api("POST", "/v1/invoices/inv_nope/payments", body)[0] == 404
    assert api("POST", f"/v1/invoices/{invoice_id}/payments", body, tenant_id="globex")[0] == 404
    assert api("POST", f"/v1/invoices/{invoice_id}/payments", body)[0] == 201
    status, payload = api(
        "POST", f"/v1/invoices/{invoice_id}/payments", {"amount": "1.00", "reference": "r2"}
    )
    assert (status, payload["error"]["code"]) == (409, "invoice_not_payable")
