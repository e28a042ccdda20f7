"""The typed edge of the api function: what it refuses, how it answers, what it replays.

Each test here pins a defect found from outside: bad input that was accepted and then lost, answered
with a 5xx, or answered differently on a replay.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest

from billing.bootstrap import get_services
from billing.domain.errors import InvalidRequest, PoisonMessage
from functions.api.handler import handler
from local.lambda_context import new_context
from tests.integration.test_cycle_close import PLAN
from tests.support import api_event, call_api, drain, ingest_pump

pytestmark = pytest.mark.usefixtures("aws")

METER = {"key": "tokens", "event_type": "api.call", "aggregation": "sum", "value_property": "tokens"}


def raw_call(event: dict[str, Any]) -> dict[str, Any]:
    """The proxy result as API Gateway gets it, with its headers merged into one map."""
    result = handler(event, new_context("api"))
    headers = {**(result.get("headers") or {})}
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers[name] = values[-1]
    return {**result, "headers": headers}


def set_up_subscription() -> None:
    assert call_api(api_event("POST", "/v1/meters", METER))[0] == 201
    assert call_api(api_event("POST", "/v1/plans", PLAN))[0] == 201
    assert call_api(api_event("POST", "/v1/customers", {"id": "cus_1", "currency": "USD"}))[0] == 201
    body = {"id": "sub_1", "customer_id": "cus_1", "plan_id": "pro", "start": "2026-11-01T00:00:00Z"}
    assert call_api(api_event("POST", "/v1/subscriptions", body))[0] == 201


# ---- replays -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/meters", METER),
        (
            "/v1/events",
            {"events": [{"id": "e1", "customer_id": "c1", "type": "t", "properties": {"z": 1, "a": 2}}]},
        ),
    ],
)
def test_a_replay_answers_the_first_response_byte_for_byte(path: str, body: dict[str, Any]) -> None:
    headers = {"Idempotency-Key": "key-1"}

    first = raw_call(api_event("POST", path, body, headers=headers))
    again = raw_call(api_event("POST", path, body, headers=headers))

    assert first["statusCode"] in (201, 202)
    assert (again["statusCode"], again["body"]) == (first["statusCode"], first["body"])
    assert again["headers"]["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first["headers"]


def test_the_same_key_with_another_body_is_422_and_changes_nothing() -> None:
    headers = {"Idempotency-Key": "key-1"}
    assert call_api(api_event("POST", "/v1/meters", METER, headers=headers))[0] == 201

    status, body, _ = call_api(api_event("POST", "/v1/meters", {**METER, "key": "other"}, headers=headers))

    assert (status, body["error"]["code"]) == (422, "idempotency_key_reused")
    assert call_api(api_event("GET", "/v1/meters/other"))[0] == 404


@pytest.mark.parametrize("key", ["", "k" * 256, "caf\u00e9", "tab\there"])
def test_an_idempotency_key_that_is_not_1_to_255_printable_ascii_is_400(key: str) -> None:
    status, body, _ = call_api(api_event("POST", "/v1/meters", METER, headers={"Idempotency-Key": key}))

    assert (status, body["error"]["code"]) == (400, "invalid_header")


def test_a_billing_run_started_with_an_idempotency_key_is_named_by_it() -> None:
    # Requests that race past the idempotency record (or retry after it expired) still start one run: the
    # run id comes from the key, and the run record and the execution name are both unique.
    services = get_services()
    starts: list[str] = []
    services.billing_runs._starter.start = lambda run_id, payload: starts.append(run_id)  # type: ignore[method-assign]
    first = services.billing_runs.start("acme", None, None, client_token="burst-1")
    second = services.billing_runs.start("acme", None, None, client_token="burst-1")
    other = services.billing_runs.start("acme", None, None, client_token="burst-2")

    assert first.id == second.id != other.id
    assert (second.as_of, second.created_at) == (first.as_of, first.created_at)
    assert starts == [first.id, first.id, other.id]  # a repeated start of one execution name is a no-op


# ---- bodies ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"]
)
def test_a_body_that_is_not_json_is_400_on_every_route(content_type: str) -> None:
    for path, body in (("/v1/meters", METER), ("/v1/events", {"id": "e", "customer_id": "c", "type": "t"})):
        status, answer, _ = call_api(api_event("POST", path, body, headers={"Content-Type": content_type}))

        assert (status, answer["error"]["code"]) == (400, "unsupported_media_type"), path
    assert call_api(api_event("GET", "/v1/meters/tokens"))[0] == 404


def test_an_ingest_key_on_an_admin_route_is_403_before_its_body_is_read() -> None:
    status, body, _ = call_api(api_event("POST", "/v1/meters", {"nonsense": True}, scope="ingest"))

    assert (status, body["error"]["code"]) == (403, "forbidden")


# ---- instants -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("start", ["9999-12-01T00:00:00Z", "0001-01-01T00:00:00Z", "1999-12-31T23:59:59Z"])
def test_a_subscription_starting_outside_2000_to_2100_is_422(start: str) -> None:
    assert call_api(api_event("POST", "/v1/meters", METER))[0] == 201
    assert call_api(api_event("POST", "/v1/plans", PLAN))[0] == 201
    assert call_api(api_event("POST", "/v1/customers", {"id": "cus_1", "currency": "USD"}))[0] == 201

    status, body, _ = call_api(
        api_event(
            "POST", "/v1/subscriptions", {"id": "s", "customer_id": "cus_1", "plan_id": "pro", "start": start}
        )
    )

    assert (status, body["error"]["code"], body["error"]["details"]) == (
        422,
        "invalid_timestamp",
        [{"field": "start"}],
    )


def test_instants_far_away_are_refused_wherever_they_are_given() -> None:
    set_up_subscription()

    status, body, _ = call_api(
        api_event("GET", "/v1/customers/cus_1/usage", query={"at": "9999-12-01T00:00:00Z"})
    )
    assert (status, body["error"]["code"]) == (400, "invalid_parameter")
    change = {"plan_id": "pro", "effective_at": "9999-12-31T00:00:00Z"}
    status, body, _ = call_api(api_event("POST", "/v1/subscriptions/sub_1/change-plan", change))
    assert (status, body["error"]["code"]) == (422, "invalid_timestamp")
    status, body, _ = call_api(
        api_event("POST", "/v1/subscriptions/sub_1/cancel", {"at": "2100-01-01T00:00:00Z"})
    )
    assert (status, body["error"]["code"]) == (422, "invalid_timestamp")
    assert call_api(api_event("GET", "/v1/subscriptions/sub_1"))[1]["status"] == "active"


# ---- events ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('{"id":"e1","customer_id":"c","type":"t","properties":{"v":1e-131}}', "properties.v"),
        ('{"id":"e1","customer_id":"c","type":"t","properties":{"v":1e126}}', "properties.v"),
        ('{"id":"e1","customer_id":"c","type":"t","properties":{"n":{"v":-1e-131}}}', "properties.n.v"),
        ('{"id":"4242424242424242","customer_id":"c","type":"t"}', "id"),
        ('{"id":"e1","customer_id":"jane@example.com","type":"t"}', "customer_id"),
        ('{"id":"e1","customer_id":"c","type":"+1 555 123 4567"}', "type"),
        ('{"id":"e/1","customer_id":"c","type":"t"}', "id"),
        ('{"id":"e1","customer_id":"c","type":"t","timestamp":"9999-12-01T00:00:00Z"}', "timestamp"),
    ],
)
def test_a_value_the_events_table_would_refuse_is_a_per_event_422_naming_the_field(
    raw: str, field: str
) -> None:
    status, body, _ = call_api(api_event("POST", "/v1/events", raw_body=raw))

    assert status == 422
    assert body["error"]["details"] == [{"field": field}]
    assert field in body["error"]["message"]
    drain(ingest_pump())
    assert (
        call_api(api_event("GET", "/v1/events", query={"customer_id": "c", "status": "unbilled"}))[1]["data"]
        == []
    )


def test_an_event_id_with_characters_a_url_escapes_is_read_back_through_its_encoded_path() -> None:
    event_id = 'evt"<1>|{2}^`\\'  # printable ASCII a client must percent-encode in a path
    body = {"id": event_id, "customer_id": "cus 1".replace(" ", "_"), "type": "api.call"}
    assert call_api(api_event("POST", "/v1/events", body))[0] == 202
    drain(ingest_pump())

    status, stored, _ = call_api(
        api_event("GET", f"/v1/events/{quote(event_id, safe='')}", query={"customer_id": "cus_1"})
    )

    assert (status, stored["id"]) == (200, event_id)


# ---- errors nobody planned -----------------------------------------------------------------------------


def test_an_unexpected_error_is_a_500_with_an_id_that_is_in_the_log(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(get_services().catalog, "get_meter", broken)

    status, body, _ = call_api(api_event("GET", "/v1/meters/tokens"))

    assert (status, body["error"]["code"]) == (500, "internal_error")
    error_id = body["error"]["details"][0]["error_id"]
    assert error_id in body["error"]["message"]
    [logged] = [record for record in caplog.records if getattr(record, "error_id", None) == error_id]
    assert logged.exc_info is not None
    assert "a bug" in str(logged.exc_info[1])


def test_a_domain_error_without_an_answer_is_a_500_not_a_disguised_400(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def poisoned(*args: Any, **kwargs: Any) -> Any:
        raise PoisonMessage("this error has no HTTP status")

    monkeypatch.setattr(get_services().catalog, "get_meter", poisoned)

    status, body, _ = call_api(api_event("GET", "/v1/meters/tokens"))

    assert (status, body["error"]["code"]) == (500, "internal_error")


def test_the_openapi_document_and_the_docs_page_need_no_key() -> None:
    document = raw_call(api_event("GET", "/v1/openapi.json", scope=None))
    page = raw_call(api_event("GET", "/docs", scope=None))

    assert document["statusCode"] == 200
    paths = json.loads(document["body"])["paths"]
    assert paths["/v1/events"]["get"]["parameters"][0]["name"] in {"customer_id", "status", "limit", "cursor"}
    assert paths["/v1/meters"]["post"]["security"] == [{"bearer": ["admin"]}]
    assert paths["/v1/events"]["post"]["security"] == [{"bearer": ["ingest"]}]
    assert page["statusCode"] == 200
    assert page["headers"]["Content-Type"].startswith("text/html")


def test_a_billing_run_key_reused_for_another_run_is_refused() -> None:
    services = get_services()
    services.billing_runs._starter.start = lambda run_id, payload: None  # type: ignore[method-assign]
    as_of = datetime(2026, 11, 2, tzinfo=UTC)
    first = services.billing_runs.start("acme", as_of, None, client_token="k")

    again = services.billing_runs.start("acme", as_of, None, client_token="k")
    assert again.id == first.id
    with pytest.raises(InvalidRequest) as refused:
        services.billing_runs.start("acme", as_of + timedelta(days=1), None, client_token="k")
    assert refused.value.code == "idempotency_key_reused"


def test_a_single_invalid_event_is_not_kept_for_a_replay_so_its_key_can_send_it_corrected() -> None:
    headers = {"Idempotency-Key": "k-event"}
    old = {"id": "e1", "customer_id": "c1", "type": "t", "timestamp": "2026-01-01T00:00:00Z"}
    status, body, _ = call_api(api_event("POST", "/v1/events", old, headers=headers))
    assert (status, body["error"]["code"], body["error"]["details"]) == (
        422,
        "timestamp_too_old",
        [{"field": "timestamp"}],
    )

    corrected = {**old, "timestamp": "2026-11-25T08:00:00Z"}
    assert call_api(api_event("POST", "/v1/events", corrected, headers=headers))[:2] == (
        202,
        {"accepted": 1, "rejected": []},
    )


@pytest.mark.parametrize(
    "raw",
    [
        '{"id":"e1","customer_id":"c","type":"t","4111111111111111":1}',
        '{"id":"e1","customer_id":"c","type":"t","jane@example.com":1}',
        '{"id":"e1","customer_id":"c","type":"t","properties":{"4111111111111111":1e200}}',
        '{"id":"e1","customer_id":"c","type":"t","properties":{"jane@example.com":{"x":1e-200}}}',
    ],
)
def test_a_refused_event_never_echoes_a_card_number_or_an_e_mail_address(raw: str) -> None:
    status, body, _ = call_api(api_event("POST", "/v1/events", raw_body=raw))

    assert status == 422
    text = json.dumps(body)
    assert "4111111111111111" not in text
    assert "jane@example.com" not in text
    assert "<redacted>" in text


def test_a_path_id_that_cannot_exist_is_not_quoted_back() -> None:
    status, body, _ = call_api(api_event("GET", "/v1/invoices/4111111111111111"))

    assert (status, body["error"]["code"]) == (404, "invoice_not_found")
    assert "4111111111111111" not in json.dumps(body)
