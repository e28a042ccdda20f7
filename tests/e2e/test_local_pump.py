"""The local SQS event source mapping: the event it builds, how it settles batches, redrive to the DLQ."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from billing import resources
from billing.adapters.provisioning import create_queues
from local.moto_server import LocalMoto
from local.pump import SqsPump, failed_message_ids, sqs_record

QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:billing-ingest"


def a_message(**overrides: Any) -> dict[str, Any]:
    message = {
        "MessageId": "m-1",
        "ReceiptHandle": "rh-1",
        "MD5OfBody": "abc",
        "Body": '{"v": 1}',
        "Attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1795597200000",
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": "1795597200001",
        },
        "MessageAttributes": {
            "kind": {"StringValue": "usage", "DataType": "String"},
            "blob": {"BinaryValue": b"\x00\x01", "DataType": "Binary"},
        },
    }
    message.update(overrides)
    return message


# ---- pure parts --------------------------------------------------------------------------------------------


def test_a_record_has_the_shape_lambda_receives_from_sqs() -> None:
    record = sqs_record(a_message(), queue_arn=QUEUE_ARN, region="us-east-1")

    assert record["messageId"] == "m-1"
    assert record["receiptHandle"] == "rh-1"
    assert record["body"] == '{"v": 1}'
    assert record["md5OfBody"] == "abc"
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == QUEUE_ARN
    assert record["awsRegion"] == "us-east-1"
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"]["kind"] == {
        "stringValue": "usage",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert record["messageAttributes"]["blob"]["binaryValue"] == "AAE="


@pytest.mark.parametrize(
    ("result", "failed"),
    [
        ({"batchItemFailures": []}, set()),
        (None, set()),
        ({}, set()),
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, {"b"}),
        ({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, {"a", "b"}),  # unknown id fails the batch
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, {"a", "b"}),
        ({"batchItemFailures": "b"}, {"a", "b"}),
        ("junk", {"a", "b"}),
    ],
)
def test_batch_item_failures_are_read_as_aws_reads_them(result: Any, failed: set[str]) -> None:
    assert failed_message_ids(result, ["a", "b"]) == failed


# ---- against moto server -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = LocalMoto(port=0)
    server.start()
    yield server.endpoint_url
    server.stop()


@pytest.fixture
def queues(moto_endpoint: str) -> Iterator[tuple[Any, dict[str, str]]]:
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint, region_name="us-east-1")
    urls = create_queues(sqs)
    yield sqs, urls
    for url in urls.values():
        sqs.delete_queue(QueueUrl=url)


class Consumer:
    """A consumer that fails the messages whose body says so, `fail_times` times each."""

    def __init__(self, raise_error: bool = False) -> None:
        self.raise_error = raise_error
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.events.append(event)
        if self.raise_error:
            raise RuntimeError("the consumer crashed")
        failures = []
        for record in event["Records"]:
            body = json.loads(record["body"])
            if int(record["attributes"]["ApproximateReceiveCount"]) <= body.get("fail_times", 0):
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}

    def deliveries(self, marker: str) -> int:
        with self.lock:
            return sum(marker in r["body"] for e in self.events for r in e["Records"])


def a_pump(sqs: Any, urls: dict[str, str], consumer: Consumer) -> SqsPump:
    return SqsPump(
        sqs,
        queue_url=urls[resources.INGEST_QUEUE.env_var],
        consumer=consumer,
        batch_size=resources.CONSUMER_BATCH_SIZE,
        retry_delay_seconds=0,
        wait_seconds=1,
    )


def dlq_bodies(sqs: Any, urls: dict[str, str]) -> list[str]:
    received = sqs.receive_message(QueueUrl=urls[resources.INGEST_DLQ.env_var], MaxNumberOfMessages=10)
    return [m["Body"] for m in received.get("Messages", [])]


@pytest.mark.e2e
def test_succeeded_messages_are_deleted_and_failed_ones_retried_until_they_succeed(
    queues: tuple[Any, dict[str, str]],
) -> None:
    sqs, urls = queues
    consumer = Consumer()
    pump = a_pump(sqs, urls, consumer)
    queue = urls[resources.INGEST_QUEUE.env_var]
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"m": "ok"}))
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"m": "flaky", "fail_times": 2}))

    pump.start()
    try:
        assert pump.wait_idle(timeout=20)
    finally:
        pump.stop()

    assert consumer.deliveries('"ok"') == 1
    assert consumer.deliveries('"flaky"') == 3  # two failures, then success
    assert dlq_bodies(sqs, urls) == []
    assert consumer.events[0]["Records"][0]["eventSourceARN"].endswith(":billing-ingest")


@pytest.mark.e2e
def test_a_message_failing_every_time_moves_to_the_dlq_after_max_receive_count(
    queues: tuple[Any, dict[str, str]],
) -> None:
    sqs, urls = queues
    consumer = Consumer()
    pump = a_pump(sqs, urls, consumer)
    sqs.send_message(
        QueueUrl=urls[resources.INGEST_QUEUE.env_var],
        MessageBody=json.dumps({"m": "poison", "fail_times": 99}),
    )

    pump.start()
    try:
        assert pump.wait_idle(timeout=20)
    finally:
        pump.stop()

    # moto applies the queue's RedrivePolicy on receive, as SQS does: no extra logic in the pump.
    assert consumer.deliveries('"poison"') == resources.INGEST_QUEUE.max_receive_count
    assert [json.loads(b)["m"] for b in dlq_bodies(sqs, urls)] == ["poison"]


@pytest.mark.e2e
def test_a_consumer_that_raises_fails_the_whole_batch(queues: tuple[Any, dict[str, str]]) -> None:
    sqs, urls = queues
    consumer = Consumer(raise_error=True)
    pump = a_pump(sqs, urls, consumer)
    queue = urls[resources.INGEST_QUEUE.env_var]
    for name in ("a", "b"):
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"m": name}))

    pump.poll_once()
    time.sleep(0.1)

    assert pump.stats.handler_errors == 1
    assert pump.stats.failed + pump.stats.succeeded == pump.stats.messages
    assert pump.stats.succeeded == 0
    assert pump.backlog() == 2  # nothing was deleted: both come back
