"""Cycle close on moto, step by step as the state machine calls them: invoice, tax, ledger, idempotency."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from billing.adapters.keys import customer_key
from billing.bootstrap import get_services
from billing.domain.errors import NotFound
from billing.domain.ledger.chain import verify_chain
from billing.settings import get_settings
from tests.support import api_event, call_api, drain, ingest_pump

pytestmark = pytest.mark.usefixtures("aws")

PLAN = {
    "id": "pro",
    "currency": "USD",
    "interval": "month",
    "base_fee": "49.00",
    "tax_code": "saas",
    "charges": [
        {
            "meter": "tokens",
            "model": "graduated",
            "tiers": [{"up_to": 1000, "unit_price": "0"}, {"up_to": None, "unit_price": "0.01"}],
        }
    ],
}


@pytest.fixture(autouse=True)
def _seller_registered_in_new_york(monkeypatch: pytest.MonkeyPatch, aws: dict[str, str]) -> None:
    monkeypatch.setenv("BILLING_SELLER_TAX_REGISTRATIONS", "US-NY")
    get_settings.cache_clear()
    get_services.cache_clear()


def admin(method: str, path: str, body: Any = None) -> dict[str, Any]:
    status, payload, _ = call_api(api_event(method, path, body))
    assert status in (200, 201, 202), payload
    return payload


def set_up_customer(customer_id: str = "cus_1", start: str = "2026-10-01T00:00:00Z") -> None:
    if customer_id == "cus_1":  # the catalog is the tenant's: created once
        meter = {"key": "tokens", "event_type": "api.call", "aggregation": "sum", "value_property": "tokens"}
        admin("POST", "/v1/meters", meter)
        admin("POST", "/v1/plans", PLAN)
    customer = {
        "id": customer_id,
        "currency": "USD",
        "timezone": "UTC",
        "billing_anchor_day": 1,
        "tax": {"country": "US", "region": "NY", "postal_code": "10001"},
    }
    admin("POST", "/v1/customers", customer)
    subscription = {"id": f"sub_{customer_id}", "customer_id": customer_id, "plan_id": "pro", "start": start}
    admin("POST", "/v1/subscriptions", subscription)


def send(events: list[tuple[str, str, int]], customer_id: str = "cus_1") -> None:
    body = {
        "events": [
            {
                "id": i,
                "customer_id": customer_id,
                "type": "api.call",
                "timestamp": ts,
                "properties": {"tokens": n},
            }
            for i, ts, n in events
        ]
    }
    assert admin("POST", "/v1/events", body)["rejected"] == []
    drain(ingest_pump())


def close(as_of: str, **scope: str) -> list[dict[str, Any]]:
    """Run the steps the state machine runs, in its order; returns each item's final state."""
    service = get_services().cycle_close
    listed = service.list_due({"as_of": as_of, **scope})
    finals = []
    for item in listed["items"]:
        state: dict[str, Any] = {"run": listed["run"], "item": item}
        while state.get("item"):
            state = service.rate(state["run"], state["item"])
            state = service.tax(state["run"], state["item"])
            state = service.finalize(state["run"], state["item"])
        finals.append(state)
    service.summarize(listed["run"], finals)
    return finals


def invoice(invoice_id: str) -> dict[str, Any]:
    """The invoice as the API shows it."""
    return admin("GET", f"/v1/invoices/{invoice_id}")


def ledger(customer_id: str = "cus_1") -> list[Any]:
    return get_services().ledger_store.entries("acme", customer_id)


def test_a_closed_period_is_one_taxed_invoice_booked_in_a_balanced_chained_ledger() -> None:
    set_up_customer()
    send([("e1", "2026-10-25T10:00:00Z", 1500), ("e2", "2026-10-31T23:59:59Z", 500)])

    [final] = close("2026-11-25T00:00:00Z")

    assert final["status"] == "finalized"
    data = invoice(final["invoice_id"])
    # base 49.00 + tokens: 2000 - 1000 free = 1000 x 0.01 = 10.00; NY 4% of 59.00 = 2.36
    assert (data["subtotal"], data["tax"], data["total"], data["status"]) == (
        "59.00",
        "2.36",
        "61.36",
        "finalized",
    )
    assert [line["type"] for line in data["lines"]] == ["base_fee", "usage", "tax", "tax"]
    entries = ledger()
    assert verify_chain(entries).ok
    debits = sum(e.amount_minor for e in entries if e.direction.value == "debit")
    credits = sum(e.amount_minor for e in entries if e.direction.value == "credit")
    assert debits == credits == 6136
    assert [e.sequence for e in entries] == [1, 2, 3]


def test_closing_twice_or_retrying_finalize_creates_nothing_new() -> None:
    set_up_customer()
    send([("e1", "2026-10-25T10:00:00Z", 1500)])
    service = get_services().cycle_close
    listed = service.list_due({"as_of": "2026-11-25T00:00:00Z"})
    state = service.tax(listed["run"], service.rate(listed["run"], listed["items"][0])["item"])

    first = service.finalize(state["run"], state["item"])
    again = service.finalize(state["run"], state["item"])  # a Step Functions retry after a lost reply

    # The retry finds the invoice its own run wrote: it reports it once more and writes nothing.
    assert (first["status"], again["status"]) == ("finalized", "finalized")
    assert first["invoices"] == again["invoices"]
    assert len(ledger()) == 3
    assert close("2026-11-25T00:00:00Z") == []  # nothing is due any more: the next period has not ended


def test_a_throttled_finalize_writes_nothing_and_the_retry_writes_everything_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_up_customer()
    send([("e1", "2026-10-25T10:00:00Z", 1500)])
    services = get_services()
    real = services.dynamodb.transact_write_items
    calls = {"n": 0}

    def throttled_once(**kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ClientError(
                {
                    "Error": {"Code": "TransactionCanceledException", "Message": "busy"},
                    "CancellationReasons": [{"Code": "ThrottlingError"}] + [{"Code": "None"}] * 7,
                },
                "TransactWriteItems",
            )
        return real(**kwargs)

    monkeypatch.setattr(services.dynamodb, "transact_write_items", throttled_once)
    listed = services.cycle_close.list_due({"as_of": "2026-11-25T00:00:00Z"})
    state = services.cycle_close.tax(
        listed["run"], services.cycle_close.rate(listed["run"], listed["items"][0])["item"]
    )
    from billing.domain.errors import TransientFailure

    with pytest.raises(TransientFailure):
        services.cycle_close.finalize(state["run"], state["item"])
    assert ledger() == []
    assert services.invoice_store.get("acme", state["item"]["invoice"]["id"]) is None

    assert services.cycle_close.finalize(state["run"], state["item"])["status"] == "finalized"
    assert len(ledger()) == 3


def test_a_late_event_is_billed_as_an_adjustment_on_the_next_invoice_at_the_tier_difference() -> None:
    set_up_customer()
    send([("e1", "2026-10-25T10:00:00Z", 900)])  # under the free tier: October bills 49.00 + 0
    [october] = close("2026-11-02T00:00:00Z")
    assert invoice(october["invoice_id"])["subtotal"] == "49.00"

    send([("late", "2026-10-30T00:00:00Z", 300)])  # October now has 1200 tokens: 200 above the free tier
    [november] = close("2026-12-02T00:00:00Z")

    lines = invoice(november["invoice_id"])["lines"]
    [adjustment] = [line for line in lines if line["type"] == "adjustment"]
    assert adjustment["amount"] == "2.00"
    assert adjustment["adjusted_invoice_id"] == october["invoice_id"]
    # Closing again re-rates October once more and finds nothing new to bill.
    assert close("2026-12-02T00:00:00Z") == []


def test_several_ended_periods_close_in_order_in_one_run() -> None:
    set_up_customer(start="2026-09-01T00:00:00Z")
    send([("e1", "2026-10-25T10:00:00Z", 1500)])

    [final] = close("2026-11-25T00:00:00Z")

    assert len(final["invoices"]) == 2  # September, then October
    assert [e.sequence for e in ledger()] == list(range(1, 7))
    assert verify_chain(ledger()).ok


def test_one_customer_failing_does_not_stop_the_others() -> None:
    set_up_customer("cus_1")
    set_up_customer("cus_2")
    send([("e1", "2026-10-25T10:00:00Z", 1500)], customer_id="cus_2")
    # cus_1's customer record vanishes: its period cannot be rated.
    boto3.client("dynamodb").delete_item(
        TableName=get_settings().billing_table,
        Key=customer_key("acme", "cus_1"),
    )
    service = get_services().cycle_close
    listed = service.list_due({"as_of": "2026-11-25T00:00:00Z"})
    results = []
    for item in listed["items"]:
        try:
            state = service.tax(listed["run"], service.rate(listed["run"], item)["item"])
            results.append(service.finalize(state["run"], state["item"]))
        except NotFound as exc:  # what the state machine's per-item Catch turns into
            results.append(
                {"status": "failed", "item": item, "invoices": [], "error": "NotFound", "cause": exc.message}
            )

    summary = service.summarize(listed["run"], results)

    assert summary["status"] == "failed"
    assert [error["customer_id"] for error in summary["errors"]] == ["cus_1"]
    assert len(summary["invoices"]) == 1
    assert invoice(summary["invoices"][0])["customer_id"] == "cus_2"


def test_a_crash_while_building_the_ledger_entries_writes_nothing_and_the_retry_writes_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_up_customer()
    send([("e1", "2026-10-25T10:00:00Z", 1500)])
    service = get_services().cycle_close
    listed = service.list_due({"as_of": "2026-11-25T00:00:00Z"})
    state = service.tax(listed["run"], service.rate(listed["run"], listed["items"][0])["item"])
    import billing.domain.invoicing as invoicing

    real = invoicing.entries_for_invoice

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the function died after the invoice was built, before anything was written")

    monkeypatch.setattr(invoicing, "entries_for_invoice", crash)
    with pytest.raises(RuntimeError):
        service.finalize(state["run"], state["item"])
    assert ledger() == []
    assert get_services().invoice_store.get("acme", state["item"]["invoice"]["id"]) is None

    monkeypatch.setattr(invoicing, "entries_for_invoice", real)
    assert service.finalize(state["run"], state["item"])["status"] == "finalized"
    assert len(ledger()) == 3
    assert verify_chain(ledger()).ok


def test_a_run_takes_at_most_max_run_items_subscriptions_and_leaves_the_rest_due(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import billing.services.cycle_close as cycle_close_module

    monkeypatch.setattr(cycle_close_module, "MAX_RUN_ITEMS", 1)
    set_up_customer("cus_1")
    set_up_customer("cus_2")

    first = close("2026-11-25T00:00:00Z")
    second = close("2026-11-25T00:00:00Z")

    assert (len(first), len(second)) == (1, 1)
    assert close("2026-11-25T00:00:00Z") == []


def test_a_stale_finalize_of_a_period_another_run_closed_changes_nothing() -> None:
    set_up_customer()
    service = get_services().cycle_close
    listed = service.list_due({"as_of": "2026-11-25T00:00:00Z"})  # run A lists and rates October ...
    state = service.tax(listed["run"], service.rate(listed["run"], listed["items"][0])["item"])

    assert len(close("2026-12-02T00:00:00Z")) == 1  # ... run B closes October and November meanwhile
    stale = service.finalize(state["run"], state["item"])  # ... then A finalizes October after all

    assert stale["status"] == "already_finalized"
    assert stale["item"] is None
    due = get_services().billing_runs_store.due_before("2027-12-31T00:00:00.000000Z")
    assert [period.period_start for period in due] == ["2026-12-01T00:00:00.000000Z"]  # only December
    assert len(ledger()) == 6


def test_invoices_page_with_the_cursor_the_api_returned() -> None:
    set_up_customer(start="2026-09-01T00:00:00Z")
    close("2026-11-25T00:00:00Z")

    status, first, _ = call_api(
        api_event("GET", "/v1/invoices", query={"customer_id": "cus_1", "limit": "1"})
    )
    assert status == 200
    assert first["next_cursor"]
    status, second, _ = call_api(
        api_event(
            "GET",
            "/v1/invoices",
            query={"customer_id": "cus_1", "limit": "1", "cursor": first["next_cursor"]},
        )
    )
    assert status == 200, second
    assert [invoice["period"]["start"] for invoice in first["data"] + second["data"]] == [
        "2026-09-01T00:00:00Z",
        "2026-10-01T00:00:00Z",
    ]
    assert second["next_cursor"] is None


@pytest.mark.parametrize("limit", ["²", "0", "101", "-1", "1.5"])
def test_a_bad_limit_is_400_not_500(limit: str) -> None:
    status, body, _ = call_api(
        api_event("GET", "/v1/invoices", query={"customer_id": "cus_1", "limit": limit})
    )
    assert (status, body["error"]["code"]) == (400, "invalid_parameter")


def test_ids_too_long_to_be_keys_are_not_found_in_paths_and_malformed_in_queries() -> None:
    long_id = "x" * 3000
    assert call_api(api_event("GET", f"/v1/invoices/{long_id}"))[0] == 404
    assert call_api(api_event("GET", f"/v1/billing-runs/{long_id}"))[0] == 404
    assert call_api(api_event("GET", f"/v1/events/{long_id}", query={"customer_id": "c"}))[0] == 404
    status, answer, _ = call_api(api_event("GET", "/v1/events/e1", query={"customer_id": long_id}))
    assert (status, answer["error"]["code"]) == (400, "invalid_parameter")
    status, answer, _ = call_api(api_event("GET", "/v1/invoices", query={"customer_id": long_id}))
    assert (status, answer["error"]["details"]) == (400, [{"field": "customer_id"}])
