"""Catalog and usage end to end: a real `billing-local` process, real HTTP, moto behind it.

A new user's path: define meters and API.md's plan, a customer and a subscription, send events with the
ingest key, and read the open period's usage with the hand-computed amount.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from billing.domain.rating.periods import BillingCycle, format_instant
from tests.e2e.conftest import RuntimeProcess
from tests.e2e.test_local_runtime import TIMEOUT, bearer, error_code, post_events, unique, wait_stored

pytestmark = pytest.mark.e2e


def admin(
    runtime: RuntimeProcess, method: str, path: str, body: Any = None, **kwargs: Any
) -> requests.Response:
    return requests.request(
        method,
        f"{runtime.api_url}{path}",
        json=body,
        headers={**bearer(runtime.info["admin_key"]), **kwargs.pop("headers", {})},
        timeout=TIMEOUT,
        **kwargs,
    )


def created(runtime: RuntimeProcess, path: str, body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    response = admin(runtime, "POST", path, body, **kwargs)
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_a_new_user_defines_a_catalog_sends_events_and_reads_the_usage(runtime: RuntimeProcess) -> None:
    suffix = unique("x")
    tokens, calls, seats, gb = (f"{name}_{suffix}" for name in ("tokens", "calls", "seats", "gb"))
    customer_id, plan_id, subscription_id = unique("cus"), unique("pro"), unique("sub")
    now = datetime.now(UTC).replace(microsecond=0)
    period = BillingCycle("America/New_York", 1).period_containing(now)

    created(runtime, "/v1/meters", {"key": tokens, "event_type": "api.call", "aggregation": "sum",
                                    "value_property": "tokens", "filters": {"region": "eu"}})  # fmt: skip
    created(runtime, "/v1/meters", {"key": calls, "event_type": "api.call", "aggregation": "count"})
    created(runtime, "/v1/meters", {"key": seats, "event_type": "seats.updated", "aggregation": "max",
                                    "value_property": "seats"})  # fmt: skip
    created(runtime, "/v1/meters", {"key": gb, "event_type": "storage.used", "aggregation": "sum",
                                    "value_property": "gb"})  # fmt: skip
    plan = {
        "id": plan_id, "currency": "USD", "interval": "month", "base_fee": "49.00", "tax_code": "saas",
        "minimum_commitment": "100.00",
        "charges": [
            {"meter": tokens, "model": "graduated",
             "tiers": [{"up_to": 100000, "unit_price": "0"},
                       {"up_to": None, "unit_price": "0.00002", "flat_fee": "0"}]},
            {"meter": calls, "model": "per_unit", "unit_price": "0.001"},
            {"meter": seats, "model": "volume",
             "tiers": [{"up_to": 10, "unit_price": "8"}, {"up_to": None, "unit_price": "6"}]},
            {"meter": gb, "model": "package", "package_size": 100, "package_price": "5.00"},
        ],
    }  # fmt: skip
    key = {"Idempotency-Key": unique("plan")}
    assert created(runtime, "/v1/plans", plan, headers=key)["version"] == 1
    replay = admin(runtime, "POST", "/v1/plans", plan, headers=key)
    assert (replay.status_code, replay.headers.get("Idempotent-Replayed")) == (201, "true")
    customer = {
        "id": customer_id,
        "name": "Ada Lovelace",
        "currency": "USD",
        "timezone": "America/New_York",
        "billing_anchor_day": 1,
        "payment_method": {"token": "tok_e2e", "gateway": "sandbox"},
    }
    created(runtime, "/v1/customers", customer)
    subscription = {
        "id": subscription_id,
        "customer_id": customer_id,
        "plan_id": plan_id,
        "start": format_instant(period.start_utc),  # the whole period: the full base fee
    }
    created(runtime, "/v1/subscriptions", subscription)

    at = format_instant(now)
    events = [
        {"id": unique("evt"), "customer_id": customer_id, "type": "api.call", "timestamp": at,
         "properties": {"tokens": tokens_, "region": region}}
        for tokens_, region in ((120_000, "eu"), (60_000, "eu"), (5_000, "us"))
    ] + [
        {"id": unique("evt"), "customer_id": customer_id, "type": "seats.updated", "timestamp": at,
         "properties": {"seats": 8}},
        {"id": unique("evt"), "customer_id": customer_id, "type": "seats.updated", "timestamp": at,
         "properties": {"seats": 12}},
        {"id": unique("evt"), "customer_id": customer_id, "type": "storage.used", "timestamp": at,
         "properties": {"gb": 130}},
        {"id": unique("evt"), "customer_id": customer_id, "type": "storage.used", "timestamp": at,
         "properties": {"gb": "120.5"}},
    ]  # fmt: skip
    response = post_events(runtime, {"events": events})
    assert (response.status_code, response.json()) == (202, {"accepted": 7, "rejected": []}), response.text
    stored = [wait_stored(runtime, event["id"], customer_id) for event in events]

    usage = read_usage(runtime, customer_id, at, expected_calls="3")

    assert usage["period"] == period.to_json()
    assert {row["meter"]: (row["quantity"], row["amount"]) for row in usage["meters"]} == {
        tokens: ("180000", "1.60"),  # eu only; 80,000 above the free 100,000 at 0.00002
        calls: ("3", "0.00"),  # 0.003, rounded half-even to the cent
        seats: ("12", "72.00"),  # volume: all 12 seats at the second tier's 6
        gb: ("250.5", "15.00"),  # three started packages of 100 GB at 5.00
    }
    assert (usage["base_fee"], usage["estimated_total"]) == ("49.00", "137.60")
    assert stored[0]["period"] == period.to_json()
    assert stored[0]["subscription_id"] == subscription_id
    assert "Ada Lovelace" not in runtime.output()  # personal data is stored, never logged


def test_catalog_errors_over_http(runtime: RuntimeProcess) -> None:
    response = admin(runtime, "POST", "/v1/plans", {"id": unique("p"), "currency": "USD", "base_fee": 49.5})
    assert (response.status_code, error_code(response)) == (422, "invalid_amount")
    assert "prices are decimal strings" in response.json()["error"]["message"]

    card = {
        "id": unique("cus"),
        "currency": "USD",
        "payment_method": {"token": "4242424242424242", "gateway": "x"},
    }
    response = admin(runtime, "POST", "/v1/customers", card)
    assert (response.status_code, error_code(response)) == (422, "card_number_rejected")
    assert "4242" not in runtime.output()

    response = admin(runtime, "GET", f"/v1/customers/{unique('cus')}/usage")
    assert (response.status_code, error_code(response)) == (404, "customer_not_found")

    response = requests.get(
        f"{runtime.api_url}/v1/meters", headers=bearer(runtime.info["ingest_key"]), timeout=TIMEOUT
    )
    assert (response.status_code, error_code(response)) == (403, "forbidden")


def read_usage(runtime: RuntimeProcess, customer_id: str, at: str, expected_calls: str) -> dict[str, Any]:
    """The usage as of `at`, once the by_time index shows every event (it is eventually consistent)."""
    deadline = time.monotonic() + 15
    while True:
        response = admin(runtime, "GET", f"/v1/customers/{customer_id}/usage", params={"at": at})
        assert response.status_code == 200, response.text
        usage: dict[str, Any] = response.json()
        calls = next(row["quantity"] for row in usage["meters"] if row["meter"].startswith("calls_"))
        if calls == expected_calls or time.monotonic() > deadline:
            return usage
        time.sleep(0.2)
