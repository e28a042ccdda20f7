"""The whole ingest path on moto: API event → SQS → consumer → events table, with faults."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from billing.bootstrap import get_services
from billing.domain.tenants import PiiPolicy
from billing.settings import get_settings
from tests.support import api_event, call_api, dlq_messages, drain, ingest_pump

pytestmark = pytest.mark.usefixtures("aws")


def stored_items() -> list[dict[str, Any]]:
    table = boto3.resource("dynamodb").Table(get_settings().events_table)
    items, kwargs = [], {}
    while True:
        page = table.scan(**kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def post(events: list[dict[str, Any]], tenant_id: str = "acme") -> dict[str, Any]:
    status, body, _ = call_api(api_event("POST", "/v1/events", {"events": events}, tenant_id=tenant_id))
    assert status == 202, body
    return body


def event(event_id: str, customer: str = "cus_1", **properties: Any) -> dict[str, Any]:
    return {
        "id": event_id,
        "customer_id": customer,
        "type": "api.call",
        "timestamp": "2026-11-25T08:00:00Z",
        "properties": properties or {"tokens": 1},
    }


class ThrottlingClient:
    """A DynamoDB client whose put_item throttles for chosen event ids a number of times, then works."""

    def __init__(self, real: Any, throttled_ids: set[str], times: int) -> None:
        self._real = real
        self._remaining = Counter({event_id: times for event_id in throttled_ids})
        self.throttled = 0

    def put_item(self, **kwargs: Any) -> Any:
        event_id = kwargs["Item"]["event_id"]["S"]
        if self._remaining[event_id] > 0:
            self._remaining[event_id] -= 1
            self.throttled += 1
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
                "PutItem",
            )
        return self._real.put_item(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_duplicates_in_one_batch_and_across_batches_are_stored_once() -> None:
    first = post([event("a"), event("b"), event("a"), event("c")])
    second = post([event("b"), event("c"), event("d"), event("a", customer="cus_2")])
    assert (first["accepted"], second["accepted"]) == (4, 4)

    drain(ingest_pump())

    keys = Counter((item["customer_id"], item["event_id"]) for item in stored_items())
    assert keys == Counter(
        {("cus_1", "a"): 1, ("cus_1", "b"): 1, ("cus_1", "c"): 1, ("cus_1", "d"): 1, ("cus_2", "a"): 1}
    )


def test_a_redelivered_message_counts_nothing_twice() -> None:
    post([event("a"), event("b")])
    sqs = boto3.client("sqs")
    url = get_settings().ingest_queue_url
    [message] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    # SQS is at-least-once: the same body may arrive twice (here: sent again, and made visible again).
    sqs.send_message(QueueUrl=url, MessageBody=message["Body"])
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)

    drain(ingest_pump())

    assert sorted(item["event_id"] for item in stored_items()) == ["a", "b"]


def test_throttled_writes_are_retried_by_sqs_without_loss_or_double_count() -> None:
    services = get_services()
    flaky = ThrottlingClient(services.dynamodb, throttled_ids={"b", "e"}, times=2)
    services.__dict__["dynamodb"] = flaky  # before the event store is built from it
    post([event("a"), event("b"), event("c")])
    post([event("d"), event("e"), event("f")])
    post([event("g")])

    pump = ingest_pump()
    drain(pump)

    assert flaky.throttled == 4
    assert pump.stats.failed >= 2  # the two messages holding b and e went back to the queue ...
    assert pump.stats.succeeded == 3  # ... and every message was settled in the end
    assert sorted(item["event_id"] for item in stored_items()) == list("abcdefg")
    assert dlq_messages() == []


def test_a_message_that_keeps_failing_moves_to_the_dlq_after_the_redrive_limit() -> None:
    services = get_services()
    services.__dict__["dynamodb"] = ThrottlingClient(services.dynamodb, throttled_ids={"x"}, times=100)
    post([event("x")])

    pump = ingest_pump()
    for _ in range(10):
        pump.poll_once()

    [parked] = dlq_messages()
    assert json.loads(parked["Body"])["events"][0]["id"] == "x"
    assert stored_items() == []


def test_pii_is_stripped_before_storage_by_the_default_deny_list() -> None:
    post(
        [
            event(
                "a",
                tokens=5,
                region="eu",
                email="jane@example.com",
                note="call +1 (212) 555-0100",
                client_ip="10.1.2.3",
                pan="4111-1111-1111-1111",
                plan_name="pro",
            )
        ]
    )
    drain(ingest_pump())

    [item] = stored_items()
    assert item["properties"] == {"tokens": 5, "region": "eu", "plan_name": "pro"}


def test_pii_allow_list_keeps_only_the_listed_properties() -> None:
    get_services().tenants.create_tenant(
        "strict", "Strict Co", pii_policy=PiiPolicy(allow=("tokens", "model"))
    )
    post([event("a", tokens=5, model="m1", region="eu", card="4111111111111111")], tenant_id="strict")
    drain(ingest_pump())

    [item] = stored_items()
    assert item["properties"] == {"tokens": 5, "model": "m1"}


def test_tenants_never_read_each_others_events() -> None:
    post([event("shared-id", customer="cus_1")], tenant_id="acme")
    drain(ingest_pump())
    query = {"customer_id": "cus_1"}

    assert call_api(api_event("GET", "/v1/events/shared-id", tenant_id="acme", query=query))[0] == 200
    status, body, _ = call_api(api_event("GET", "/v1/events/shared-id", tenant_id="globex", query=query))
    assert (status, body["error"]["code"]) == (404, "event_not_found")


def test_the_same_id_from_two_tenants_is_two_events() -> None:
    post([event("same")], tenant_id="acme")
    post([event("same")], tenant_id="globex")
    drain(ingest_pump())

    assert sorted(item["tenant_id"] for item in stored_items()) == ["acme", "globex"]


def test_a_thousand_events_travel_in_few_sqs_requests() -> None:
    services = get_services()
    post([event(f"e{i}", tokens=i) for i in range(1000)])

    assert services.ingest_queue.requests_sent == 1
    drain(ingest_pump())
    assert len(stored_items()) == 1000
