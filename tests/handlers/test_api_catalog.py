"""The api function's catalog and usage routes, invoked with the sample events of `events/api_*.json`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import load_event
from tests.support import api_event, call_api

pytestmark = pytest.mark.usefixtures("aws")

# The sample events' other meters (the plan of API.md charges four).
OTHER_METERS = [
    {"key": "calls", "event_type": "api.call", "aggregation": "count"},
    {"key": "seats", "event_type": "seats.updated", "aggregation": "max", "value_property": "seats"},
    {"key": "gb", "event_type": "storage.used", "aggregation": "sum", "value_property": "gb"},
]


def invoke(sample: str | dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
    """The api handler on a sample event of `events/` (by file name) or on an event built from one."""
    return call_api(load_event(sample) if isinstance(sample, str) else sample)


def define_catalog() -> None:
    assert invoke("api_post_meter.json")[0] == 201
    for meter in OTHER_METERS:
        assert call_api(api_event("POST", "/v1/meters", meter))[0] == 201
    assert invoke("api_post_plan.json")[0] == 201
    assert invoke("api_post_customer.json")[0] == 201
    assert invoke("api_post_subscription.json")[0] == 201


def test_sample_meter_is_created_and_its_idempotency_key_replays_the_response() -> None:
    status, body, headers = invoke("api_post_meter.json")

    assert status == 201
    assert body == {
        "key": "tokens",
        "event_type": "api.call",
        "aggregation": "sum",
        "value_property": "tokens",
        "filters": {"region": "eu"},
        "created_at": "2026-11-25T09:00:00Z",
    }
    assert "Idempotent-Replayed" not in headers
    replayed = invoke("api_post_meter.json")
    assert replayed[:2] == (201, body)
    assert replayed[2]["Idempotent-Replayed"] == "true"


def test_sample_plan_is_version_1_of_the_api_md_plan() -> None:
    for meter in [json.loads(load_event("api_post_meter.json")["body"]), *OTHER_METERS]:
        call_api(api_event("POST", "/v1/meters", meter))

    status, body, _ = invoke("api_post_plan.json")

    assert status == 201
    assert (body["id"], body["version"], body["currency"], body["base_fee"]) == ("pro", 1, "USD", "49.00")
    assert [charge["model"] for charge in body["charges"]] == ["graduated", "per_unit", "volume", "package"]


def test_sample_usage_of_a_period_without_events_is_the_base_fee_topped_up_to_the_commitment() -> None:
    define_catalog()

    status, body, _ = invoke("api_get_usage.json")

    assert status == 200
    # New York, anchor day 1: November 2026 starts at 04:00Z (EDT) and ends at 05:00Z (EST).
    assert body["period"] == {"start": "2026-11-01T04:00:00Z", "end": "2026-12-01T05:00:00Z"}
    assert body["currency"] == "USD"
    assert body["meters"] == [
        {"meter": "tokens", "quantity": "0", "amount": "0.00"},
        {"meter": "calls", "quantity": "0", "amount": "0.00"},
        {"meter": "seats", "quantity": "0", "amount": "0.00"},
        {"meter": "gb", "quantity": "0", "amount": "0.00"},
    ]
    assert body["base_fee"] == "49.00"
    assert body["minimum_commitment"] == "51.00"  # 100.00 committed, 49.00 billed
    assert body["estimated_total"] == "100.00"


def test_sample_customer_answers_its_data_and_logs_none_of_the_personal_data(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, body, _ = invoke("api_post_customer.json")
    invoke(api_event("GET", "/v1/customers/cus_42"))

    assert status == 201
    assert (body["name"], body["email"]) == ("Ada Lovelace", "ada@example.com")
    assert body["tax_history"] == [
        {
            "effective_at": None,
            "tax": {"country": "US", "region": "NY", "postal_code": "10001", "tax_id": None, "exempt": False},
        }
    ]
    logs = capsys.readouterr()
    for secret in ("Ada Lovelace", "ada@example.com", "tok_1N3xExampleToken"):
        assert secret not in logs.out + logs.err


def test_a_card_number_in_a_customer_is_422_and_neither_stored_nor_logged(
    capsys: pytest.CaptureFixture[str],
) -> None:
    event = load_event("api_post_customer.json")
    customer = json.loads(event["body"])
    customer["payment_method"] = {"token": "4242 4242 4242 4242", "gateway": "sandbox"}
    event["body"] = json.dumps(customer)

    status, body, _ = invoke(event)

    assert status == 422
    assert body["error"]["code"] == "card_number_rejected"
    assert body["error"]["details"] == [{"field": "payment_method.token"}]
    assert "4242" not in json.dumps(body)
    assert call_api(api_event("GET", "/v1/customers/cus_42"))[0] == 404
    logs = capsys.readouterr()
    assert "4242" not in logs.out + logs.err


def test_catalog_routes_need_the_admin_scope() -> None:
    for method, path in [
        ("POST", "/v1/meters"),
        ("GET", "/v1/meters"),
        ("POST", "/v1/plans"),
        ("GET", "/v1/customers/cus_42/usage"),
        ("POST", "/v1/subscriptions/sub_1/cancel"),
        ("PATCH", "/v1/customers/cus_42"),
    ]:
        status, body, _ = call_api(api_event(method, path, {}, scope="ingest"))
        assert (status, body["error"]["code"]) == (403, "forbidden"), (method, path)
        status, body, _ = call_api(api_event(method, path, {}, scope=None))
        assert (status, body["error"]["code"]) == (401, "unauthorized"), (method, path)


def test_openapi_document_lists_the_catalog_routes() -> None:
    status, body, _ = call_api(api_event("GET", "/v1/openapi.json", scope=None))

    assert status == 200
    assert {
        "/v1/meters",
        "/v1/meters/{key}",
        "/v1/customers",
        "/v1/customers/{customer_id}",
        "/v1/customers/{customer_id}/usage",
        "/v1/plans",
        "/v1/plans/{plan_id}",
        "/v1/plans/{plan_id}/versions",
        "/v1/subscriptions",
        "/v1/subscriptions/{subscription_id}",
        "/v1/subscriptions/{subscription_id}/change-plan",
        "/v1/subscriptions/{subscription_id}/cancel",
    } <= set(body["paths"])
