"""The webhook routes at the HTTP edge, through the api function: what they accept and refuse, what they
never show (the secret after the answer that made it), what another tenant sees (nothing), paging, and
idempotency. Every answer is checked against the schema the served OpenAPI document gives its status."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import boto3
import pytest
from openapi_schema_validator import OAS31Validator

from billing.bootstrap import get_services
from billing.domain.webhooks.attempts import AttemptOutcome
from billing.domain.webhooks.deliveries import delivery_id
from billing.domain.webhooks.events import WebhookEvent, on_unbilled_usage
from billing.domain.webhooks.messages import LaneKick, ReplayRequest, decode
from billing.domain.webhooks.retries import RetrySchedule
from billing.settings import get_settings
from tests.support import api_event, call_api

pytestmark = pytest.mark.usefixtures("aws")

TENANT = "acme"
URL = "https://93.184.215.14/billing/hooks"  # a public address literal: no DNS lookup needed
OTHER_URL = "https://93.184.215.15/hooks"

_DOCUMENT: dict[str, Any] = {}


# ---- the served document ------------------------------------------------------------------------------


def openapi_document() -> dict[str, Any]:
    if not _DOCUMENT:
        status, document, _ = call_api(api_event("GET", "/v1/openapi.json", scope=None))
        assert status == 200
        _DOCUMENT.update(document)
    return _DOCUMENT


def operation_of(method: str, path: str) -> dict[str, Any]:
    """The document's operation for a concrete path (its `{param}` templates matched)."""
    document = openapi_document()
    for template, operations in document["paths"].items():
        pattern = "^" + "[^/]+".join(re.escape(part) for part in re.split(r"\{[^/]+?\}", template)) + "$"
        if re.match(pattern, path) and method.lower() in operations:
            return dict(operations[method.lower()])
    raise AssertionError(f"{method} {path} is not in the served OpenAPI document")


def conforms(method: str, path: str, status: int, body: Any) -> None:
    """The answer's status is one the document lists for the operation, and its body fits that schema."""
    responses = operation_of(method, path)["responses"]
    assert str(status) in responses, f"{method} {path} answered {status}, documented: {sorted(responses)}"
    schema = responses[str(status)]["content"]["application/json"]["schema"]
    OAS31Validator({**schema, "components": openapi_document()["components"]}).validate(body)


def api(
    method: str,
    path: str,
    body: Any = None,
    *,
    tenant: str = TENANT,
    query: dict[str, str] | None = None,
    **kwargs: Any,
) -> tuple[int, dict[str, Any]]:
    status, answer, _ = call_api(api_event(method, path, body, tenant_id=tenant, query=query, **kwargs))
    conforms(method, path, status, answer)
    return status, answer


def create(url: str = URL, event_types: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    status, created = api(
        "POST", "/v1/webhook-endpoints", {"url": url, "event_types": event_types or ["*"], **extra}
    )
    assert status == 201, created
    return created


def announce(customer_id: str, days: int) -> list[WebhookEvent]:
    """Write `days` events for the customer to the outbox (one `usage.unbilled` per day) and dispatch
    them as the stream would: each endpoint that should receive them gets its deliveries."""
    services = get_services()
    now = datetime.now(UTC)
    events = [
        on_unbilled_usage(
            TENANT,
            customer_id,
            date(2026, 11, 1) + timedelta(days=day),
            first_event_id=f"u{day}",
            first_event_type="api.call",
            first_timestamp=now,
            stored_at=now,
        )
        for day in range(days)
    ]
    written = services.outbox.announce(TENANT, customer_id, events)
    services.outbox_dispatcher.dispatch([(TENANT, event) for event in written])
    return written


def webhook_queue() -> list[Any]:
    sqs = boto3.client("sqs")
    messages: list[Any] = []
    while True:
        received = sqs.receive_message(
            QueueUrl=get_settings().webhook_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", [])
        if not received:
            return messages
        for message in received:
            messages.append(decode(message["Body"]))
            sqs.delete_message(
                QueueUrl=get_settings().webhook_queue_url, ReceiptHandle=message["ReceiptHandle"]
            )


def succeed(endpoint_id: str, event: WebhookEvent) -> str:
    """Record one successful attempt of the event's delivery to the endpoint (as the sender would)."""
    store = get_services().webhook_store
    delivery = store.get_delivery(TENANT, delivery_id(event.id, endpoint_id))
    assert delivery is not None
    done = delivery.attempted(AttemptOutcome(200, None, 12), datetime.now(UTC), RetrySchedule((5,)))
    store.save_delivery(TENANT, done)
    return delivery.id


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# ---- creating ------------------------------------------------------------------------------------------


def test_a_created_endpoint_shows_its_secret_once_and_never_again() -> None:
    created = create(description="billing receiver", event_types=["invoice.finalized", "invoice.paid"])

    assert created["secret"].startswith("whsec_")
    assert created["url"] == URL
    assert created["event_types"] == ["invoice.finalized", "invoice.paid"]
    assert (created["description"], created["disabled"], created["disabled_reason"]) == (
        "billing receiver",
        False,
        None,
    )
    assert created["previous_secret_expires_at"] is None
    status, listed = api("GET", "/v1/webhook-endpoints")
    assert status == 200
    assert [endpoint["id"] for endpoint in listed["data"]] == [created["id"]]
    status, one = api("GET", f"/v1/webhook-endpoints/{created['id']}")
    assert status == 200
    assert one["id"] == created["id"]
    for shown in (listed["data"][0], one):
        assert "secret" not in shown
    assert created["secret"] not in json.dumps(listed) + json.dumps(one)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"url": URL, "event_types": ["invoice.nope"]}, "invalid_event_types"),
        ({"url": URL, "event_types": ["*", "invoice.paid"]}, "invalid_event_types"),
        ({"url": URL, "event_types": []}, None),
        ({"url": "https://10.0.0.1/"}, "webhook_url_refused"),
        ({"url": "https://169.254.169.254/latest/meta-data/"}, "webhook_url_refused"),
        ({"url": "https://[::ffff:169.254.169.254]/"}, "webhook_url_refused"),
        ({"url": "http://93.184.215.14/"}, "webhook_url_refused"),
        ({"url": "https://127.0.0.1/"}, "webhook_url_refused"),
        ({"url": "https://[::1]/"}, "webhook_url_refused"),
        ({"url": "https://0.0.0.0/"}, "webhook_url_refused"),
        ({"url": "https://100.64.0.1/"}, "webhook_url_refused"),
        ({"url": "https://[fd00:ec2::254]/"}, "webhook_url_refused"),
        ({"url": "https://[64:ff9b::a9fe:a9fe]/"}, "webhook_url_refused"),
        ({"url": "https://2130706433/"}, "webhook_url_refused"),
        ({"url": "ftp://x"}, "invalid_webhook_url"),
        ({"url": "https://user:pw@93.184.215.14/"}, "webhook_url_refused"),
        ({"event_types": ["*"]}, None),
        ({"url": URL, "event_types": ["*"], "secret": "whsec_mine"}, None),
        ({"url": 42}, None),
    ],
)
def test_an_endpoint_that_cannot_be_created_is_422_and_nothing_is_created(
    body: dict[str, Any], code: str | None
) -> None:
    status, answer = api("POST", "/v1/webhook-endpoints", body)

    assert status == 422, answer
    if code is not None:
        assert answer["error"]["code"] == code
    assert api("GET", "/v1/webhook-endpoints")[1]["data"] == []


def test_an_ingest_key_cannot_manage_endpoints() -> None:
    status, answer = api("POST", "/v1/webhook-endpoints", {"url": URL}, scope="ingest")

    assert (status, answer["error"]["code"]) == (403, "forbidden")
    status, answer = api("GET", "/v1/webhook-endpoints", scope="ingest")
    assert (status, answer["error"]["code"]) == (403, "forbidden")


def test_a_tenant_has_at_most_16_endpoints() -> None:
    for number in range(16):
        create(url=f"{URL}/{number}")

    status, answer = api("POST", "/v1/webhook-endpoints", {"url": f"{URL}/16"})

    assert (status, answer["error"]["code"]) == (409, "too_many_endpoints")
    listed = api("GET", "/v1/webhook-endpoints", query={"limit": "100"})[1]
    assert len(listed["data"]) == 16


def test_the_same_idempotency_key_and_body_replay_the_same_endpoint_and_another_body_is_422() -> None:
    headers = {"Idempotency-Key": "create-hooks-1"}
    body = {"url": URL, "event_types": ["*"]}

    status, first = api("POST", "/v1/webhook-endpoints", body, headers=headers)
    again_status, again = api("POST", "/v1/webhook-endpoints", body, headers=headers)

    assert (status, again_status) == (201, 201)
    assert (again["id"], again["secret"]) == (first["id"], first["secret"])
    status, other = api("POST", "/v1/webhook-endpoints", {**body, "url": OTHER_URL}, headers=headers)
    assert (status, other["error"]["code"]) == (422, "idempotency_key_reused")
    assert [endpoint["id"] for endpoint in api("GET", "/v1/webhook-endpoints")[1]["data"]] == [first["id"]]


# ---- changing, deleting, rotating ------------------------------------------------------------------------


def test_patch_disables_enables_and_changes_types_and_description() -> None:
    created = create()
    path = f"/v1/webhook-endpoints/{created['id']}"

    status, disabled = api("PATCH", path, {"disabled": True})
    assert status == 200
    assert disabled["disabled"] is True
    assert disabled["disabled_reason"]
    status, enabled = api("PATCH", path, {"disabled": False})
    assert (status, enabled["disabled"], enabled["disabled_reason"]) == (200, False, None)
    status, changed = api("PATCH", path, {"event_types": ["payment.succeeded"], "description": "payments"})
    assert status == 200
    assert (changed["event_types"], changed["description"]) == (["payment.succeeded"], "payments")
    assert api("GET", path)[1]["event_types"] == ["payment.succeeded"]

    status, refused = api("PATCH", path, {"event_types": ["nope"]})
    assert (status, refused["error"]["code"]) == (422, "invalid_event_types")
    status, refused = api("PATCH", path, {"url": "https://10.0.0.1/"})
    assert (status, refused["error"]["code"]) == (422, "webhook_url_refused")
    assert api("GET", path)[1]["url"] == URL
    status, missing = api("PATCH", "/v1/webhook-endpoints/we_000000000000000000000000", {"disabled": True})
    assert (status, missing["error"]["code"]) == (404, "endpoint_not_found")


def test_a_deleted_endpoint_is_gone() -> None:
    created = create()
    path = f"/v1/webhook-endpoints/{created['id']}"

    status, deleted = api("DELETE", path)

    assert (status, deleted) == (200, {"id": created["id"], "deleted": True})
    assert api("GET", path)[0] == 404
    assert api("DELETE", path)[0] == 404
    assert api("GET", "/v1/webhook-endpoints")[1]["data"] == []


def test_rotating_gives_a_new_secret_and_the_old_one_signs_24_hours_more() -> None:
    created = create()
    path = f"/v1/webhook-endpoints/{created['id']}"

    status, rotated = api("POST", f"{path}/rotate-secret")

    assert status == 200
    assert rotated["secret"].startswith("whsec_")
    assert rotated["secret"] != created["secret"]
    expires = instant(rotated["previous_secret_expires_at"])
    assert expires - instant(rotated["secret_created_at"]) == timedelta(hours=24)
    assert abs(expires - (datetime.now(UTC) + timedelta(hours=24))) < timedelta(minutes=1)
    shown = api("GET", path)[1]
    assert shown["previous_secret_expires_at"] == rotated["previous_secret_expires_at"]
    assert "secret" not in shown
    assert api("POST", "/v1/webhook-endpoints/we_000000000000000000000000/rotate-secret")[0] == 404


# ---- deliveries ----------------------------------------------------------------------------------------


def test_deliveries_are_listed_per_endpoint_or_all_by_status_and_fetched_one_by_one() -> None:
    first = create()
    second = create(url=OTHER_URL)
    events = announce("cus_1", 3)
    done = succeed(first["id"], events[0])

    status, everything = api("GET", "/v1/webhook-deliveries", query={"limit": "100"})
    assert status == 200
    assert len(everything["data"]) == 6
    assert {(d["endpoint_id"], d["sequence"]) for d in everything["data"]} == {
        (endpoint["id"], n) for endpoint in (first, second) for n in (1, 2, 3)
    }
    status, of_first = api("GET", "/v1/webhook-deliveries", query={"endpoint_id": first["id"]})
    assert status == 200
    assert sorted(d["sequence"] for d in of_first["data"]) == [1, 2, 3]
    assert {d["endpoint_id"] for d in of_first["data"]} == {first["id"]}
    status, succeeded = api(
        "GET", "/v1/webhook-deliveries", query={"endpoint_id": first["id"], "status": "succeeded"}
    )
    assert [d["id"] for d in succeeded["data"]] == [done]
    [attempt] = succeeded["data"][0]["attempts"]
    assert (attempt["status_code"], attempt["error"], attempt["duration_ms"]) == (200, None, 12)
    status, pending = api("GET", "/v1/webhook-deliveries", query={"status": "pending", "limit": "100"})
    assert len(pending["data"]) == 5
    assert {d["status"] for d in pending["data"]} == {"pending"}

    status, one = api("GET", f"/v1/webhook-deliveries/{done}")
    assert status == 200
    assert (one["id"], one["event_id"], one["status"]) == (done, events[0].id, "succeeded")


def test_every_delivery_is_reached_by_following_the_cursor_across_endpoints() -> None:
    first = create()
    second = create(url=OTHER_URL)
    announce("cus_1", 2)

    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        query = {"limit": "1", **({"cursor": cursor} if cursor else {})}
        status, page = api("GET", "/v1/webhook-deliveries", query=query)
        assert status == 200, page
        seen += [delivery["id"] for delivery in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    expected = {
        delivery.id
        for endpoint in (first, second)
        for delivery in get_services()
        .webhook_store.list_deliveries(TENANT, endpoint["id"], None, 10, None)
        .items
    }
    assert sorted(seen) == sorted(expected)
    assert len(seen) == 4


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ({"endpoint_id": "we_000000000000000000000000"}, 404, "endpoint_not_found"),
        ({"status": "lost"}, 400, "invalid_parameter"),
        ({"limit": "0"}, 400, "invalid_parameter"),
        ({"cursor": "not-a-cursor"}, 400, "invalid_cursor"),
    ],
)
def test_a_delivery_list_that_cannot_be_answered_says_why(
    query: dict[str, str], status: int, code: str
) -> None:
    create()

    answered, answer = api("GET", "/v1/webhook-deliveries", query=query)

    assert (answered, answer["error"]["code"]) == (status, code)


def test_an_unknown_delivery_is_404_to_read_and_to_replay() -> None:
    status, answer = api("GET", "/v1/webhook-deliveries/whd_00000000000000000000000000000000")
    assert (status, answer["error"]["code"]) == (404, "delivery_not_found")
    status, answer = api("POST", "/v1/webhook-deliveries/whd_00000000000000000000000000000000/replay")
    assert (status, answer["error"]["code"]) == (404, "delivery_not_found")


def test_a_replay_queues_a_finished_delivery_and_makes_a_pending_one_due() -> None:
    endpoint = create()
    events = announce("cus_1", 2)
    done = succeed(endpoint["id"], events[0])
    webhook_queue()  # the dispatcher's kicks

    status, replayed = api("POST", f"/v1/webhook-deliveries/{done}/replay")
    assert (status, replayed["id"], replayed["status"]) == (202, done, "succeeded")
    assert webhook_queue() == [ReplayRequest(TENANT, done)]

    pending = delivery_id(events[1].id, endpoint["id"])
    status, due = api("POST", f"/v1/webhook-deliveries/{pending}/replay")
    assert (status, due["status"]) == (202, "pending")
    assert webhook_queue() == [LaneKick(TENANT, endpoint["id"], "cus_1")]

    api("PATCH", f"/v1/webhook-endpoints/{endpoint['id']}", {"disabled": True})
    status, refused = api("POST", f"/v1/webhook-deliveries/{done}/replay")
    assert (status, refused["error"]["code"]) == (409, "endpoint_disabled")


# ---- events --------------------------------------------------------------------------------------------


def test_webhook_events_need_a_customer_and_page_in_sequence_order() -> None:
    status, answer = api("GET", "/v1/webhook-events")
    assert (status, answer["error"]["code"]) == (400, "missing_parameter")

    written = announce("cus_1", 3)
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(10):
        query = {"customer_id": "cus_1", "limit": "1", **({"cursor": cursor} if cursor else {})}
        status, page = api("GET", "/v1/webhook-events", query=query)
        assert status == 200, page
        assert len(page["data"]) <= 1
        seen += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [event["sequence"] for event in seen] == [1, 2, 3]
    assert [event["id"] for event in seen] == [event.id for event in written]
    assert seen[0] == json.loads(written[0].body())
    assert api("GET", "/v1/webhook-events", query={"customer_id": "cus_2"})[1] == {
        "data": [],
        "next_cursor": None,
    }


# ---- tenants -------------------------------------------------------------------------------------------


def test_another_tenant_sees_none_of_the_endpoints_deliveries_or_events() -> None:
    endpoint = create()
    events = announce("cus_1", 2)
    done = succeed(endpoint["id"], events[0])
    path = f"/v1/webhook-endpoints/{endpoint['id']}"

    for method, route, body in [
        ("GET", path, None),
        ("PATCH", path, {"disabled": True}),
        ("POST", f"{path}/rotate-secret", None),
        ("DELETE", path, None),
        ("GET", f"/v1/webhook-deliveries/{done}", None),
        ("POST", f"/v1/webhook-deliveries/{done}/replay", None),
    ]:
        status, answer = api(method, route, body, tenant="other")
        assert status == 404, (method, route, answer)
    status, answer = api(
        "GET", "/v1/webhook-deliveries", query={"endpoint_id": endpoint["id"]}, tenant="other"
    )
    assert status == 404
    assert api("GET", "/v1/webhook-endpoints", tenant="other")[1]["data"] == []
    assert api("GET", "/v1/webhook-deliveries", tenant="other")[1]["data"] == []
    assert api("GET", "/v1/webhook-events", query={"customer_id": "cus_1"}, tenant="other")[1]["data"] == []

    shown = api("GET", path)[1]  # acme's endpoint is untouched
    assert (shown["disabled"], shown["previous_secret_expires_at"]) == (False, None)
    assert api("GET", f"/v1/webhook-deliveries/{done}")[1]["status"] == "succeeded"


# ---- ids the API makes itself --------------------------------------------------------------------------

# 12 random bytes as hex, as `secrets.token_hex(12)` may give them (about 1 in 800 draws looks like this):
# its digits 65239013873001 pass the Luhn check, so the id rule takes the id for a card number.
CARD_LIKE_HEX = "0f65239013873001b407c01d"


def test_an_endpoint_the_api_created_can_always_be_read_changed_and_deleted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import billing.services.webhooks as webhooks_service

    monkeypatch.setattr(webhooks_service.random_source, "token_hex", lambda size: CARD_LIKE_HEX[: 2 * size])
    created = create()
    assert created["id"] == "we_" + CARD_LIKE_HEX
    path = f"/v1/webhook-endpoints/{created['id']}"

    assert api("GET", path)[0] == 200
    assert api("PATCH", path, {"description": "x"})[0] == 200
    assert api("POST", f"{path}/rotate-secret")[0] == 200
    assert api("GET", "/v1/webhook-deliveries", query={"endpoint_id": created["id"]})[0] == 200
    assert api("DELETE", path)[0] == 200


def test_a_delivery_the_system_made_can_always_be_read_and_replayed(monkeypatch: pytest.MonkeyPatch) -> None:
    import billing.services.webhooks as webhooks_service

    monkeypatch.setattr(
        webhooks_service.random_source, "token_hex", lambda size: "00112233445566778899aabb"[: 2 * size]
    )
    endpoint = create()
    monkeypatch.undo()
    # A customer whose first event's delivery id looks like a card number (about 1 in 500 do).
    from billing.domain.ids import is_valid_id
    from billing.domain.webhooks.events import EventType, event_id

    customer = next(
        f"cus_{n}"
        for n in range(100_000)
        if not is_valid_id(
            delivery_id(event_id(TENANT, EventType.USAGE_UNBILLED, f"cus_{n}", "2026-11-01"), endpoint["id"])
        )
    )
    [event] = announce(customer, 1)
    made = delivery_id(event.id, endpoint["id"])
    assert get_services().webhook_store.get_delivery(TENANT, made) is not None
    listed = api("GET", "/v1/webhook-deliveries", query={"endpoint_id": endpoint["id"]})[1]["data"]
    assert [delivery["id"] for delivery in listed] == [made]

    status, answer = api("GET", f"/v1/webhook-deliveries/{made}")
    assert status == 200, answer
    status, answer = api("POST", f"/v1/webhook-deliveries/{made}/replay")
    assert status == 202, answer
