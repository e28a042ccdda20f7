"""The local DynamoDB Streams event source mapping against moto server: the billing table's stream, read
through moto's `dynamodbstreams` API, filtered to outbox events, handed to a function in Lambda's shape;
and the webhook queue's pump (delayed retry timers, several pollers, redrive to the dead-letter queue)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
import requests

from billing import resources
from billing.adapters.outbox_store import DynamoOutbox
from billing.adapters.provisioning import create_queues, create_tables
from billing.domain.webhooks.events import EventType, NewEvent
from local.moto_server import LocalMoto, forget_shard_iterator
from local.pump import SqsPump
from local.stream_pump import StreamPump

pytestmark = pytest.mark.e2e

REGION = "us-east-1"


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = LocalMoto(port=0)
    server.start()
    # moto's backends are this process's: start from nothing, whatever ran in this process before.
    requests.post(f"{server.endpoint_url}/moto-api/reset", timeout=10).raise_for_status()
    yield server.endpoint_url
    server.stop()


def client(service: str, endpoint: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def aws(moto_endpoint: str) -> Iterator[dict[str, Any]]:
    dynamodb, sqs = client("dynamodb", moto_endpoint), client("sqs", moto_endpoint)
    tables = create_tables(dynamodb, (resources.BILLING_TABLE,))
    queues = create_queues(sqs)
    yield {
        "dynamodb": dynamodb,
        "sqs": sqs,
        "streams": client("dynamodbstreams", moto_endpoint),
        "table": tables[resources.BILLING_TABLE.env_var],
        **queues,
    }
    dynamodb.delete_table(TableName=tables[resources.BILLING_TABLE.env_var])
    for url in queues.values():
        sqs.delete_queue(QueueUrl=url)


class Recorder:
    """A stand-in dispatcher: records each event; fails every record of the customers in `failing`."""

    def __init__(self, failing: set[str] | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.failing = failing or set()
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        json.dumps(event)  # what a worker process would receive
        with self.lock:
            self.events.append(event)
        return {
            "batchItemFailures": [
                {"itemIdentifier": record["dynamodb"]["SequenceNumber"]}
                for record in event["Records"]
                if record["dynamodb"]["NewImage"]["customer_id"]["S"] in self.failing
            ]
        }

    def records(self) -> list[dict[str, Any]]:
        with self.lock:
            return [record for event in self.events for record in event["Records"]]


def a_stream_pump(aws: dict[str, Any], function: Recorder, **overrides: Any) -> StreamPump:
    options: dict[str, Any] = {
        "table_name": aws["table"],
        "function": function,
        "function_name": resources.OUTBOX_DISPATCHER_FUNCTION.name,
        "filter_pattern": resources.OUTBOX_STREAM_FILTER,
        "batch_size": resources.OUTBOX_BATCH_SIZE,
        "retry_attempts": resources.OUTBOX_RETRY_ATTEMPTS,
        "retry_delay_seconds": 0,
        "sqs": aws["sqs"],
        "on_failure_queue_url": aws[resources.OUTBOX_FAILURES_QUEUE.env_var],
        "poll_interval_seconds": 0.05,
        "region": REGION,
        "forget_iterator": forget_shard_iterator,
        **overrides,
    }
    return StreamPump(aws["dynamodb"], aws["streams"], **options)


def announce(aws: dict[str, Any], customer_id: str, count: int = 1) -> list[str]:
    """Outbox events written as the system writes them (TransactWriteItems: claim, event, head)."""
    outbox = DynamoOutbox(aws["table"], client=aws["dynamodb"])
    now = datetime.now(UTC)
    events = [
        NewEvent(
            id=f"evt_{customer_id}_{index}",
            type=EventType.USAGE_UNBILLED,
            customer_id=customer_id,
            created_at=now,
            data={"date": now.date().isoformat()},
        )
        for index in range(count)
    ]
    return [event.id for event in outbox.announce("acme", customer_id, events)]


def test_outbox_events_reach_the_function_as_lambda_records_and_nothing_else_does(
    aws: dict[str, Any],
) -> None:
    # Before the pump starts (TRIM_HORIZON reads them) and after; with other items of the table around.
    aws["dynamodb"].put_item(
        TableName=aws["table"],
        Item={"pk": {"S": "T#acme#CUSTOMER#cus_1"}, "sk": {"S": "PROFILE"}, "entity": {"S": "customer"},
              "name": {"S": "Ada Lovelace"}, "blob": {"B": b"\x00\x01"}},
    )  # fmt: skip
    before = announce(aws, "cus_1", 2)
    function = Recorder()
    pump = a_stream_pump(aws, function).start()
    try:
        after = announce(aws, "cus_1", 1)
        aws["dynamodb"].delete_item(
            TableName=aws["table"], Key={"pk": {"S": "T#acme#CUSTOMER#cus_1"}, "sk": {"S": "PROFILE"}}
        )
        assert pump.wait_idle(timeout=20)
    finally:
        pump.stop()

    records = function.records()
    assert [r["dynamodb"]["NewImage"]["event_id"]["S"] for r in records] == before + after
    assert all(r["eventName"] == "INSERT" for r in records)
    assert "Ada Lovelace" not in json.dumps(function.events)  # the profile never reached the function
    record = records[0]
    assert record["eventSource"] == "aws:dynamodb"
    assert record["eventSourceARN"] == pump.stream_arn
    assert record["eventSourceARN"].startswith(f"arn:aws:dynamodb:{REGION}:")
    assert record["awsRegion"] == REGION
    assert isinstance(record["dynamodb"]["ApproximateCreationDateTime"], int)
    assert record["dynamodb"]["StreamViewType"] == "NEW_IMAGE"
    assert record["dynamodb"]["Keys"]["pk"] == {"S": "T#acme#OUTBOX#cus_1"}
    assert record["dynamodb"]["NewImage"]["sequence"] == {"N": "1"}
    numbers = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert numbers == sorted(numbers)
    assert pump.stats.records_filtered_out >= 4  # the profile's insert and remove, the claims and heads


def test_used_shard_iterators_are_dropped_from_moto(aws: dict[str, Any]) -> None:
    from moto.dynamodbstreams.models import dynamodbstreams_backends

    function = Recorder()
    pump = a_stream_pump(aws, function).start()
    try:
        time.sleep(0.5)  # about ten polls
        account = pump.stream_arn.split(":")[4]
        held = [
            arn
            for arn in dynamodbstreams_backends[account][REGION].shard_iterators
            if arn.startswith(pump.stream_arn)
        ]
    finally:
        pump.stop()

    assert len(held) <= 2  # the current one (and one being made), not one per poll


def test_a_batch_that_keeps_failing_is_described_on_the_failures_queue_and_the_rest_go_on(
    aws: dict[str, Any],
) -> None:
    function = Recorder(failing={"cus_bad"})
    pump = a_stream_pump(aws, function, retry_attempts=2).start()
    try:
        [bad] = announce(aws, "cus_bad")
        [good] = announce(aws, "cus_good")
        assert pump.wait_idle(timeout=20)
    finally:
        pump.stop()

    tries = [r["dynamodb"]["NewImage"]["event_id"]["S"] for r in function.records()]
    assert tries.count(bad) == 3  # the first try and two retries
    assert good in tries
    received = aws["sqs"].receive_message(
        QueueUrl=aws[resources.OUTBOX_FAILURES_QUEUE.env_var],
        MaxNumberOfMessages=10,
        MessageAttributeNames=["All"],
    )
    [message] = received["Messages"]
    info = json.loads(message["Body"])["DDBStreamBatchInfo"]
    assert info["streamArn"] == pump.stream_arn
    assert info["batchSize"] >= 1
    assert info["startSequenceNumber"] <= info["endSequenceNumber"]
    assert message["MessageAttributes"]["error"]["StringValue"]


# ---- the webhook queue's pump -----------------------------------------------------------------------------


class Sender:
    """A stand-in sender: records bodies and when they came; fails the bodies that ask for it; sleeps on
    the ones that ask for it."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, float]] = []
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        failures = []
        for record in event["Records"]:
            body = json.loads(record["body"])
            with self.lock:
                self.seen.append((body["m"], time.monotonic()))
            time.sleep(body.get("sleep", 0))
            if body.get("fail"):
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}

    def times(self, marker: str) -> list[float]:
        with self.lock:
            return [at for body, at in self.seen if body == marker]


def a_webhook_pump(aws: dict[str, Any], sender: Sender, pollers: int = 1) -> SqsPump:
    return SqsPump(
        aws["sqs"],
        queue_url=aws[resources.WEBHOOK_QUEUE.env_var],
        consumer=sender,
        batch_size=resources.SENDER_BATCH_SIZE,
        retry_delay_seconds=0,
        wait_seconds=1,
        name="webhooks",
        pollers=pollers,
    )


def test_a_delayed_timer_message_is_handed_over_once_it_becomes_visible(aws: dict[str, Any]) -> None:
    sender = Sender()
    pump = a_webhook_pump(aws, sender)
    pump.start()
    try:
        sent_at = time.monotonic()
        aws["sqs"].send_message(
            QueueUrl=aws[resources.WEBHOOK_QUEUE.env_var],
            MessageBody=json.dumps({"m": "timer"}),
            DelaySeconds=2,
        )
        assert pump.backlog() == 1  # a delayed message counts: waiting for it waits for the timer
        assert pump.wait_idle(timeout=15)
    finally:
        pump.stop()

    [at] = sender.times("timer")
    assert 1.9 <= at - sent_at < 6


def test_a_failing_message_is_retried_then_redriven_to_the_webhook_dlq(aws: dict[str, Any]) -> None:
    sender = Sender()
    pump = a_webhook_pump(aws, sender)
    aws["sqs"].send_message(
        QueueUrl=aws[resources.WEBHOOK_QUEUE.env_var], MessageBody=json.dumps({"m": "poison", "fail": True})
    )
    pump.start()
    try:
        assert pump.wait_idle(timeout=20)
    finally:
        pump.stop()

    assert len(sender.times("poison")) == resources.WEBHOOK_QUEUE.max_receive_count
    received = aws["sqs"].receive_message(QueueUrl=aws[resources.WEBHOOK_DLQ.env_var], MaxNumberOfMessages=10)
    assert [json.loads(m["Body"])["m"] for m in received["Messages"]] == ["poison"]


def test_several_pollers_keep_a_slow_batch_from_holding_up_the_queue(aws: dict[str, Any]) -> None:
    sender = Sender()
    pump = a_webhook_pump(aws, sender, pollers=2)
    queue = aws[resources.WEBHOOK_QUEUE.env_var]
    pump.start()
    try:
        aws["sqs"].send_message(QueueUrl=queue, MessageBody=json.dumps({"m": "slow", "sleep": 3}))
        time.sleep(0.5)  # the slow one is taken first
        sent_at = time.monotonic()
        aws["sqs"].send_message(QueueUrl=queue, MessageBody=json.dumps({"m": "fast"}))
        assert pump.wait_idle(timeout=15)
    finally:
        pump.stop()

    [slow_at] = sender.times("slow")
    [fast_at] = sender.times("fast")
    assert fast_at - sent_at < 2.5  # not after the slow batch's 3 s
    assert slow_at < fast_at
