"""The SQS event source mapping, played locally: poll a queue, invoke the consumer, settle the batch.

Differences from AWS, on purpose: a failed message becomes visible again after `retry_delay_seconds`
(ChangeMessageVisibility) instead of after the queue's visibility timeout (6 minutes for the ingest
queue), so local retries take seconds. Redrive to the dead-letter queue is the queue's own RedrivePolicy,
which moto applies on receive exactly as SQS does (after `maxReceiveCount` receives). Delayed messages
(`DelaySeconds`, the webhook sender's retry timers) are received once moto makes them visible.

`pollers` threads poll the queue side by side, each with one batch in flight (Lambda scales its SQS
pollers the same way): a slow batch (a webhook receiver taking 15 s) does not hold up the rest of the
queue. Give the function at least that many environments.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("billing.local.pump")

IDLE_CONFIRM_SECONDS = 0.3
ConsumerCall = Callable[[dict[str, Any]], Any]


def _message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    """An SQS message attribute as the Lambda event carries it (binary values base64-encoded)."""

    def b64(data: Any) -> str:
        return base64.b64encode(data if isinstance(data, bytes) else bytes(data)).decode("ascii")

    attribute: dict[str, Any] = {
        "stringListValues": list(value.get("StringListValues", [])),
        "binaryListValues": [b64(item) for item in value.get("BinaryListValues", [])],
        "dataType": value.get("DataType", "String"),
    }
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = b64(value["BinaryValue"])
    return attribute


def sqs_record(message: dict[str, Any], *, queue_arn: str, region: str) -> dict[str, Any]:
    """One record of the SQS event Lambda receives, from a ReceiveMessage result message."""
    attributes = {str(k): str(v) for k, v in (message.get("Attributes") or {}).items()}
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": attributes,
        "messageAttributes": {
            name: _message_attribute(value)
            for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message.get("MD5OfBody"),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def sqs_event(messages: Iterable[dict[str, Any]], *, queue_arn: str, region: str) -> dict[str, Any]:
    return {"Records": [sqs_record(m, queue_arn=queue_arn, region=region) for m in messages]}


def failed_message_ids(result: Any, message_ids: list[str]) -> set[str]:
    """The messages to retry, read from a ReportBatchItemFailures response.

    As in AWS: an empty or missing `batchItemFailures` means all succeeded; a malformed response, or an
    identifier that is empty or not in the batch, fails the whole batch.
    """
    if result is None:
        return set()
    if not isinstance(result, dict):
        return set(message_ids)
    failures = result.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return set(message_ids)
    failed: set[str] = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in message_ids:
            return set(message_ids)
        failed.add(identifier)
    return failed


def _chunks(items: list[Any], size: int = 10) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass
class PumpStats:
    batches: int = 0
    messages: int = 0
    succeeded: int = 0
    failed: int = 0
    handler_errors: int = 0
    last_error: str | None = field(default=None, repr=False)


class SqsPump:
    """A background thread that feeds one queue to one consumer function, like an event source mapping."""

    def __init__(
        self,
        sqs: Any,
        *,
        queue_url: str,
        consumer: ConsumerCall,
        batch_size: int = 10,
        retry_delay_seconds: int = 2,
        wait_seconds: int = 1,
        region: str = "us-east-1",
        name: str = "ingest",
        pollers: int = 1,
    ) -> None:
        self._sqs = sqs
        self.queue_url = queue_url
        self._consumer = consumer
        self.batch_size = batch_size
        self.retry_delay_seconds = retry_delay_seconds
        self.wait_seconds = wait_seconds
        self.region = region
        self.name = name
        self.pollers = max(1, pollers)
        self.queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self.stats = PumpStats()
        self._stop = threading.Event()
        self._busy_lock = threading.Lock()
        self._busy_count = 0
        self._stats_lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._run, name=f"billing-local-pump-{self.name}-{index}", daemon=True)
            for index in range(self.pollers)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception as exc:
                # The backend went away or hiccupped; keep the mapping alive as AWS does.
                if self._stop.is_set():
                    return
                log.warning("pump %s: polling failed: %s", self.name, exc)
                self._stop.wait(1.0)

    def poll_once(self) -> int:
        """Receive one batch, hand it to the consumer, settle it; returns the number of messages."""
        response = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=self.wait_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages") or []
        if not messages:
            return 0
        self._set_busy(+1)
        try:
            self._process(messages)
        finally:
            self._set_busy(-1)
        return len(messages)

    def _set_busy(self, change: int) -> None:
        with self._busy_lock:
            self._busy_count += change

    def _process(self, messages: list[dict[str, Any]]) -> None:
        ids = [m["MessageId"] for m in messages]
        event = sqs_event(messages, queue_arn=self.queue_arn, region=self.region)
        try:
            failed = failed_message_ids(self._consumer(event), ids)
        except Exception as exc:
            # A function error retries the whole batch.
            log.error(
                "pump %s: the consumer failed (%s); the whole batch will be retried\n%s",
                self.name,
                exc,
                getattr(exc, "stack", ""),
            )
            with self._stats_lock:
                self.stats.handler_errors += 1
                self.stats.last_error = repr(exc)
            failed = set(ids)
        done = [m for m in messages if m["MessageId"] not in failed]
        retry = [m for m in messages if m["MessageId"] in failed]
        for chunk in _chunks(done):
            self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
        for chunk in _chunks(retry):
            self._sqs.change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {
                        "Id": str(i),
                        "ReceiptHandle": m["ReceiptHandle"],
                        "VisibilityTimeout": self.retry_delay_seconds,
                    }
                    for i, m in enumerate(chunk)
                ],
            )
        with self._stats_lock:
            self.stats.batches += 1
            self.stats.messages += len(messages)
            self.stats.succeeded += len(done)
            self.stats.failed += len(retry)

    def busy(self) -> bool:
        with self._busy_lock:
            return self._busy_count > 0

    def backlog(self) -> int:
        """Messages not yet settled: waiting, in flight (including those waiting for a retry) or delayed."""
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return sum(int(value) for value in attributes.values())

    def wait_idle(self, timeout: float = 30.0, poll_interval: float = 0.05) -> bool:
        """Wait until the queue holds nothing and no batch is being processed; False on timeout."""
        deadline = time.monotonic() + timeout
        idle_since: float | None = None
        while time.monotonic() < deadline:
            if not self.busy() and self.backlog() == 0 and not self.busy():
                # Twice, a moment apart: SQS counts (and moto's) are approximate, and a delayed message
                # whose delay just ran out can be counted neither delayed nor visible for an instant.
                now = time.monotonic()
                idle_since = idle_since if idle_since is not None else now
                if now - idle_since >= IDLE_CONFIRM_SECONDS:
                    return True
            else:
                idle_since = None
            time.sleep(poll_interval)
        return False
