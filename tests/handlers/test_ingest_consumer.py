"""The ingest consumer function, invoked with the SQS sample event of `events/`."""

from __future__ import annotations

import copy
import json

import boto3
import pytest

from billing.settings import get_settings
from functions.ingest_consumer.handler import handler
from local.lambda_context import new_context
from tests.conftest import load_event
from tests.support import dlq_messages

pytestmark = pytest.mark.usefixtures("aws")


def stored_event_ids() -> set[str]:
    table = boto3.resource("dynamodb").Table(get_settings().events_table)
    return {item["event_id"] for item in table.scan()["Items"]}


def test_sample_message_stores_each_event_once_even_when_redelivered() -> None:
    event = load_event("sqs_ingest_batch.json")

    assert handler(event, new_context("consumer")) == {"batchItemFailures": []}
    assert handler(event, new_context("consumer")) == {"batchItemFailures": []}  # a redelivery

    assert stored_event_ids() == {"evt_0001", "evt_0002"}
    assert dlq_messages() == []


def test_undecodable_record_goes_to_the_dlq_with_its_reason_and_the_rest_are_stored() -> None:
    event = load_event("sqs_ingest_batch.json")
    poison = copy.deepcopy(event["Records"][0])
    poison["messageId"] = "poison-1"
    poison["body"] = "this is not json"
    event["Records"].append(poison)

    assert handler(event, new_context("consumer")) == {"batchItemFailures": []}

    assert stored_event_ids() == {"evt_0001", "evt_0002"}
    [parked] = dlq_messages()
    assert parked["Body"] == "this is not json"
    attributes = parked["MessageAttributes"]
    assert attributes["failure_code"]["StringValue"] == "undecodable"
    assert attributes["source_message_id"]["StringValue"] == "poison-1"


def test_schema_invalid_event_is_parked_alone() -> None:
    event = load_event("sqs_ingest_batch.json")
    body = json.loads(event["Records"][0]["body"])
    body["events"].append({"id": "evt_bad", "customer_id": "cus_42", "type": "api.call"})  # no timestamps
    event["Records"][0]["body"] = json.dumps(body)

    assert handler(event, new_context("consumer")) == {"batchItemFailures": []}

    assert stored_event_ids() == {"evt_0001", "evt_0002"}
    [parked] = dlq_messages()
    assert json.loads(parked["Body"])["events"][0]["id"] == "evt_bad"
    assert parked["MessageAttributes"]["failure_code"]["StringValue"] == "schema_invalid"


def test_an_event_the_table_refuses_for_good_is_parked_alone_after_the_others_are_stored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from billing.bootstrap import get_services
    from billing.domain.errors import EventRefused

    store = get_services().event_store
    real = store.put_if_absent

    def refuse_one(event, stored_at):  # type: ignore[no-untyped-def]
        if event.event_id == "evt_0002":
            raise EventRefused("events table: Item size has exceeded the maximum allowed size")
        return real(event, stored_at)

    monkeypatch.setattr(store, "put_if_absent", refuse_one)

    assert handler(load_event("sqs_ingest_batch.json"), new_context("consumer")) == {"batchItemFailures": []}

    assert stored_event_ids() == {"evt_0001"}
    [parked] = dlq_messages()
    assert json.loads(parked["Body"])["events"][0]["id"] == "evt_0002"
    assert parked["MessageAttributes"]["failure_code"]["StringValue"] == "unstorable"
