"""The outbox dispatcher and the webhook sender, invoked with the sample events of `events/` against moto."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from billing.bootstrap import get_services
from billing.domain.webhooks.deliveries import DeliveryStatus, delivery_id
from billing.domain.webhooks.endpoints import SigningSecret, WebhookEndpoint
from billing.domain.webhooks.messages import LaneKick, decode
from billing.services.webhook_delivery import secret_context
from billing.settings import get_settings
from functions.outbox_dispatcher.handler import handler as dispatcher
from functions.webhook_sender.handler import handler as sender
from local.lambda_context import new_context
from tests.conftest import load_event

pytestmark = pytest.mark.usefixtures("aws")

TENANT = "acme"
CUSTOMER = "cus_42"
EVENT_ID = "evt_0123456789abcdef0123456789abcdef"
ENDPOINT_ID = "we_00112233445566778899aabb"
# Before the sample event's created_at (2026-03-01): the endpoint was enabled when the event was made.
ENABLED_SINCE = datetime(2026, 2, 1, tzinfo=UTC)


def an_endpoint(endpoint_id: str = ENDPOINT_ID) -> WebhookEndpoint:
    """An endpoint of tenant acme for every event type, its secret sealed as the API seals it."""
    services = get_services()
    sealed = services.webhook_secrets.encrypt(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", secret_context(TENANT, endpoint_id)
    )
    endpoint = WebhookEndpoint(
        id=endpoint_id,
        url="https://hooks.example.com/billing",
        event_types=("*",),
        description="sample receiver",
        disabled=False,
        disabled_reason=None,
        enabled_since=ENABLED_SINCE,
        created_at=ENABLED_SINCE,
        updated_at=ENABLED_SINCE,
        secrets=(SigningSecret(sealed, ENABLED_SINCE),),
    )
    services.webhook_store.create_endpoint(TENANT, endpoint)
    return endpoint


def webhook_queue_bodies() -> list[str]:
    sqs = boto3.client("sqs")
    bodies: list[str] = []
    while True:
        received = sqs.receive_message(
            QueueUrl=get_settings().webhook_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", [])
        if not received:
            return bodies
        for message in received:
            bodies.append(message["Body"])
            sqs.delete_message(
                QueueUrl=get_settings().webhook_queue_url, ReceiptHandle=message["ReceiptHandle"]
            )


def deliveries(endpoint_id: str = ENDPOINT_ID) -> list[Any]:
    return get_services().webhook_store.list_deliveries(TENANT, endpoint_id, None, 50, None).items


# ---- the dispatcher ----------------------------------------------------------------------------------------


def test_the_sample_stream_event_creates_one_delivery_and_kicks_its_lane() -> None:
    endpoint = an_endpoint()
    event = load_event("dynamodb_outbox_stream.json")

    result = dispatcher(event, new_context("outbox-dispatcher"))

    assert result == {"batchItemFailures": []}
    delivery = get_services().webhook_store.get_delivery(TENANT, delivery_id(EVENT_ID, endpoint.id))
    assert delivery is not None
    assert delivery.endpoint_id == endpoint.id
    assert (delivery.event_id, delivery.customer_id) == (EVENT_ID, CUSTOMER)
    assert (delivery.sequence, delivery.status) == (1, DeliveryStatus.PENDING)
    assert str(delivery.event_type) == "invoice.finalized"
    assert [d.id for d in deliveries()] == [delivery.id]
    assert [decode(body) for body in webhook_queue_bodies()] == [LaneKick(TENANT, endpoint.id, CUSTOMER)]


def test_the_same_record_seen_again_creates_nothing_new() -> None:
    endpoint = an_endpoint()
    event = load_event("dynamodb_outbox_stream.json")
    assert dispatcher(event, new_context("outbox-dispatcher")) == {"batchItemFailures": []}
    first = get_services().webhook_store.get_delivery(TENANT, delivery_id(EVENT_ID, endpoint.id))

    again = dispatcher(copy.deepcopy(event), new_context("outbox-dispatcher"))  # a stream retry

    assert again == {"batchItemFailures": []}
    assert get_services().webhook_store.get_delivery(TENANT, delivery_id(EVENT_ID, endpoint.id)) == first
    assert len(deliveries()) == 1
    # Kicking a lane twice is harmless (the sender walks it from its cursor): only kicks are on the queue.
    assert {decode(body) for body in webhook_queue_bodies()} == {LaneKick(TENANT, endpoint.id, CUSTOMER)}


def test_an_event_for_a_tenant_without_endpoints_creates_nothing() -> None:
    event = load_event("dynamodb_outbox_stream.json")

    assert dispatcher(event, new_context("outbox-dispatcher")) == {"batchItemFailures": []}

    assert webhook_queue_bodies() == []


def test_an_endpoint_enabled_after_the_event_was_made_does_not_receive_it() -> None:
    an_endpoint()
    late = an_endpoint("we_ffeeddccbbaa998877665544")
    services = get_services()
    services.webhook_store.save_endpoint(
        TENANT, late.disable("test", ENABLED_SINCE).enable(datetime(2026, 3, 2, tzinfo=UTC))
    )

    dispatcher(load_event("dynamodb_outbox_stream.json"), new_context("outbox-dispatcher"))

    assert len(deliveries()) == 1
    assert deliveries(late.id) == []


# ---- the sender --------------------------------------------------------------------------------------------


def test_a_kick_for_a_lane_without_endpoint_is_handled_without_error() -> None:
    event = load_event("sqs_webhook_kick.json")
    assert json.loads(event["Records"][0]["body"])["kind"] == "lane"

    assert sender(event, new_context("webhook-sender")) == {"batchItemFailures": []}

    assert webhook_queue_bodies() == []  # nothing to retry, nothing chained


@pytest.mark.parametrize(
    "body",
    ["this is not json", "[]", '{"kind":"lane","tenant_id":"acme"}', '{"kind":"carrier-pigeon"}'],
)
def test_an_unreadable_body_is_dropped_not_failed(body: str) -> None:
    event = load_event("sqs_webhook_kick.json")
    event["Records"][0]["body"] = body

    assert sender(event, new_context("webhook-sender")) == {"batchItemFailures": []}


def test_an_empty_batch_is_nothing_to_do() -> None:
    assert sender({"Records": []}, new_context("webhook-sender")) == {"batchItemFailures": []}
