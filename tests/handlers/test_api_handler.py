"""The api function, invoked with API Gateway events built from `events/api_*.json`."""

from __future__ import annotations

import json

import boto3
import pytest

from billing.settings import get_settings
from functions.api.handler import handler
from local.lambda_context import new_context
from tests.conftest import load_event
from tests.support import api_event, call_api, drain, ingest_pump

pytestmark = pytest.mark.usefixtures("aws")

RECEIVED = "2026-11-25T09:00:00Z"  # requestTimeEpoch of the sample events


def queued_events() -> list[dict]:
    sqs = boto3.client("sqs")
    messages = sqs.receive_message(QueueUrl=get_settings().ingest_queue_url, MaxNumberOfMessages=10).get(
        "Messages", []
    )
    return [event for message in messages for event in json.loads(message["Body"])["events"]]


def test_sample_batch_is_accepted_partially_with_per_event_errors() -> None:
    response = handler(load_event("api_post_events.json"), new_context("api"))

    assert response["statusCode"] == 202
    body = json.loads(response["body"])
    assert body["accepted"] == 2
    assert body["rejected"] == [
        {
            "index": 2,
            "id": "evt_0003",
            "error": {
                "code": "timestamp_too_old",
                "message": body["rejected"][0]["error"]["message"],
                "field": "timestamp",
            },
        }
    ]
    assert "35 days" in body["rejected"][0]["error"]["message"]
    queued = queued_events()
    assert [event["id"] for event in queued] == ["evt_0001", "evt_0002"]
    # The e-mail property never reaches the queue.
    assert queued[1]["properties"] == {"tokens": 300, "region": "us"}


def test_single_event_defaults_its_timestamp_to_receipt_time() -> None:
    status, body, _ = call_api(
        api_event("POST", "/v1/events", {"id": "e1", "customer_id": "c1", "type": "t"})
    )

    assert (status, body) == (202, {"accepted": 1, "rejected": []})
    assert queued_events()[0]["timestamp"] == "2026-11-25T09:00:00.000000Z"


def test_single_invalid_event_answers_422_with_the_error_shape() -> None:
    status, body, _ = call_api(api_event("POST", "/v1/events", {"id": "e1", "type": "t"}))

    assert status == 422
    assert body["error"]["code"] == "missing_field"
    assert "customer_id" in body["error"]["message"]
    assert queued_events() == []


def test_event_in_the_future_beyond_five_minutes_is_rejected() -> None:
    events = [
        {"id": "ok", "customer_id": "c", "type": "t", "timestamp": "2026-11-25T09:04:59Z"},
        {"id": "late", "customer_id": "c", "type": "t", "timestamp": "2026-11-25T09:05:01Z"},
        {"id": "old", "customer_id": "c", "type": "t", "timestamp": "2026-10-21T08:59:59Z"},
        {"id": "oldest-ok", "customer_id": "c", "type": "t", "timestamp": "2026-10-21T09:00:00Z"},
    ]
    status, body, _ = call_api(api_event("POST", "/v1/events", {"events": events}))

    assert status == 202
    assert body["accepted"] == 2
    assert [(r["id"], r["error"]["code"]) for r in body["rejected"]] == [
        ("late", "timestamp_in_future"),
        ("old", "timestamp_too_old"),
    ]


@pytest.mark.parametrize(
    ("raw_body", "status", "code"),
    [
        ("{not json", 400, "malformed_json"),
        ("", 400, "malformed_json"),
        ("[1, 2]", 400, "malformed_request"),
        ('{"events": []}', 400, "empty_batch"),
        ('{"events": {}}', 400, "malformed_request"),
        ('{"id": 1, "customer_id": "c", "type": "t", "properties": {"x": NaN}}', 400, "malformed_json"),
    ],
)
def test_unreadable_bodies_answer_400(raw_body: str, status: int, code: str) -> None:
    got_status, body, _ = call_api(api_event("POST", "/v1/events", raw_body=raw_body))

    assert (got_status, body["error"]["code"]) == (status, code)
    assert set(body["error"]) == {"code", "message", "details"}


def test_more_than_1000_events_is_413() -> None:
    events = [{"id": f"e{i}", "customer_id": "c", "type": "t"} for i in range(1001)]
    status, body, _ = call_api(api_event("POST", "/v1/events", {"events": events}))

    assert (status, body["error"]["code"]) == (413, "payload_too_large")


def test_body_over_1_mib_is_413() -> None:
    events = [
        {"id": f"e{i}", "customer_id": "c", "type": "t", "properties": {"pad": "x" * 2000}}
        for i in range(600)
    ]
    status, body, _ = call_api(api_event("POST", "/v1/events", {"events": events}))

    assert (status, body["error"]["code"]) == (413, "payload_too_large")


def test_unsupported_content_type_is_400() -> None:
    status, body, _ = call_api(
        api_event("POST", "/v1/events", {"id": "e"}, headers={"Content-Type": "text/plain"})
    )

    assert (status, body["error"]["code"]) == (400, "unsupported_media_type")


def test_no_authorizer_context_is_401_and_ingest_scope_cannot_read() -> None:
    status, body, _ = call_api(api_event("POST", "/v1/events", {"id": "e"}, scope=None))
    assert (status, body["error"]["code"]) == (401, "unauthorized")

    status, body, _ = call_api(api_event("GET", "/v1/events/e1", scope="ingest", query={"customer_id": "c"}))
    assert (status, body["error"]["code"]) == (403, "forbidden")


def test_idempotency_key_replays_the_first_response_and_rejects_another_body() -> None:
    first = api_event(
        "POST",
        "/v1/events",
        {"id": "e1", "customer_id": "c", "type": "t"},
        headers={"Idempotency-Key": "k-1"},
    )
    status, body, headers = call_api(first)
    assert (status, body) == (202, {"accepted": 1, "rejected": []})
    assert "Idempotent-Replayed" not in headers

    status_again, body_again, headers_again = call_api(first)
    assert (status_again, body_again) == (status, body)
    assert headers_again["Idempotent-Replayed"] == "true"
    assert len(queued_events()) == 1  # the replay enqueued nothing

    other = api_event(
        "POST",
        "/v1/events",
        {"id": "e2", "customer_id": "c", "type": "t"},
        headers={"Idempotency-Key": "k-1"},
    )
    status, body, _ = call_api(other)
    assert (status, body["error"]["code"]) == (422, "idempotency_key_reused")


def test_idempotency_keys_are_scoped_per_tenant() -> None:
    body = {"id": "e1", "customer_id": "c", "type": "t"}
    for tenant in ("acme", "globex"):
        status, _, headers = call_api(
            api_event("POST", "/v1/events", body, tenant_id=tenant, headers={"Idempotency-Key": "same"})
        )
        assert status == 202
        assert "Idempotent-Replayed" not in headers


def test_invalid_single_event_response_is_replayed_too() -> None:
    event = api_event("POST", "/v1/events", {"id": "e1", "type": "t"}, headers={"Idempotency-Key": "k-bad"})
    assert call_api(event)[:2] == call_api(event)[:2]


def test_cloudevents_structured_and_batch_content_types() -> None:
    cloud_event = {
        "specversion": "1.0",
        "id": "ce-1",
        "source": "//myapp/api",
        "type": "api.call",
        "subject": "cus_42",
        "time": "2026-11-25T08:00:00Z",
        "datacontenttype": "application/json",
        "data": {"tokens": 10},
    }
    status, body, _ = call_api(
        api_event("POST", "/v1/events", cloud_event, headers={"Content-Type": "application/cloudevents+json"})
    )
    assert (status, body) == (202, {"accepted": 1, "rejected": []})

    batch = [
        {**cloud_event, "id": "ce-2"},
        {**cloud_event, "id": "ce-3", "specversion": "0.3"},
        {key: value for key, value in cloud_event.items() if key != "subject"} | {"id": "ce-4"},
    ]
    status, body, _ = call_api(
        api_event(
            "POST",
            "/v1/events",
            batch,
            headers={"Content-Type": "application/cloudevents-batch+json; charset=utf-8"},
        )
    )
    assert status == 202
    assert body["accepted"] == 1
    assert [(r["id"], r["error"]["code"]) for r in body["rejected"]] == [
        ("ce-3", "invalid_field"),
        ("ce-4", "missing_field"),
    ]
    queued = queued_events()
    assert {(e["id"], e["customer_id"], e["type"]) for e in queued} == {
        ("ce-1", "cus_42", "api.call"),
        ("ce-2", "cus_42", "api.call"),
    }
    assert queued[0]["properties"] == {"tokens": 10}


def test_get_event_is_404_until_stored_then_unbilled_while_no_subscription_covers_it() -> None:
    call_api(api_event("POST", "/v1/events", {"id": "e1", "customer_id": "c1", "type": "t"}, scope="ingest"))
    query = {"customer_id": "c1"}

    status, body, _ = call_api(api_event("GET", "/v1/events/e1", query=query))
    assert (status, body["error"]["code"]) == (404, "event_not_found")

    drain(ingest_pump())

    status, body, _ = call_api(api_event("GET", "/v1/events/e1", query=query))
    assert status == 200
    assert body["id"] == "e1"
    assert body["customer_id"] == "c1"
    assert body["status"] == "unbilled"  # customer c1 has no subscription
    assert body["timestamp"] == "2026-11-25T09:00:00Z"


def test_get_event_without_customer_id_is_400_and_other_tenants_see_404() -> None:
    call_api(api_event("POST", "/v1/events", {"id": "e1", "customer_id": "c1", "type": "t"}))
    drain(ingest_pump())

    status, body, _ = call_api(api_event("GET", "/v1/events/e1"))
    assert (status, body["error"]["code"]) == (400, "missing_parameter")

    status, body, _ = call_api(
        api_event("GET", "/v1/events/e1", tenant_id="globex", query={"customer_id": "c1"})
    )
    assert (status, body["error"]["code"]) == (404, "event_not_found")


def test_unknown_route_is_404_in_the_error_shape() -> None:
    status, body, _ = call_api(api_event("GET", "/v1/nothing-here"))

    assert (status, body["error"]["code"]) == (404, "route_not_found")


def test_openapi_document_lists_the_routes() -> None:
    status, body, _ = call_api(api_event("GET", "/v1/openapi.json", scope=None))

    assert status == 200
    assert {"/v1/events", "/v1/events/{event_id}"} <= set(body["paths"])


def test_a_body_nested_too_deeply_is_400() -> None:
    status, body, _ = call_api(api_event("POST", "/v1/events", raw_body="[" * 50000 + "]" * 50000))

    assert (status, body["error"]["code"]) == (400, "malformed_json")


def test_a_lone_surrogate_in_a_property_is_422_not_500() -> None:
    raw = '{"id": "e1", "customer_id": "cus_1", "type": "t", "properties": {"x": "\\ud800"}}'
    status, body, _ = call_api(api_event("POST", "/v1/events", raw_body=raw))

    assert (status, body["error"]["code"]) == (422, "invalid_field")
