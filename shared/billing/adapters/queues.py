"""SQS: sending packed ingest messages, and dead-lettering what can never be processed."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from billing.adapters.aws_errors import error_code
from billing.domain.errors import TransientFailure
from billing.domain.ingest_messages import group_for_batches

SEND_ATTEMPTS = 4


class SqsIngestQueue:
    def __init__(
        self, queue_url: str, max_batch_bytes: int, client: Any = None, sleep: Any = time.sleep
    ) -> None:
        self._url = queue_url
        self._max_batch_bytes = max_batch_bytes
        self._client = client or boto3.client("sqs")
        self._sleep = sleep
        self.requests_sent = 0  # SendMessageBatch calls made by this instance (for benchmarks)

    def send(self, bodies: Sequence[str]) -> None:
        """Send every body, or raise TransientFailure: the caller answers 2xx only when this returns."""
        for batch in group_for_batches(bodies, self._max_batch_bytes):
            self._send_batch(batch)

    def _send_batch(self, batch: list[str]) -> None:
        entries = {str(index): {"MessageBody": body} for index, body in enumerate(batch)}
        send_entries(
            self._client, self._url, entries, what="ingest queue", sleep=self._sleep, on_request=self._count
        )

    def _count(self) -> None:
        self.requests_sent += 1


def send_entries(
    client: Any,
    queue_url: str,
    entries: dict[str, dict[str, Any]],
    *,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
    on_request: Callable[[], None] | None = None,
) -> None:
    """One SendMessageBatch of `entries` ({entry id: MessageBody, DelaySeconds, ...}), the failed entries
    sent again with backoff; TransientFailure when SQS keeps refusing some, RuntimeError when it calls
    them malformed (our fault: retrying cannot help)."""
    pending = dict(entries)
    for attempt in range(SEND_ATTEMPTS):
        try:
            response = client.send_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": entry_id, **entry} for entry_id, entry in pending.items()],
            )
        except (ClientError, BotoCoreError) as exc:
            if attempt == SEND_ATTEMPTS - 1:
                raise TransientFailure(
                    f"{what} unavailable: {error_code(exc) or type(exc).__name__}"
                ) from exc
            sleep(0.05 * 2**attempt)
            continue
        finally:
            if on_request is not None:
                on_request()
        failed = response.get("Failed", [])
        sender_faults = [entry for entry in failed if entry.get("SenderFault")]
        if sender_faults:
            codes = ", ".join(sorted({entry.get("Code", "?") for entry in sender_faults}))
            raise RuntimeError(f"{what} refused messages as malformed: {codes}")
        pending = {entry["Id"]: pending[entry["Id"]] for entry in failed}
        if not pending:
            return
        if attempt < SEND_ATTEMPTS - 1:
            sleep(0.05 * 2**attempt)
    raise TransientFailure(f"{what} did not accept {len(pending)} message(s) after {SEND_ATTEMPTS} tries")


class SqsDeadLetters:
    """Parks a message that can never succeed on the DLQ, with why, so nothing is silently dropped."""

    def __init__(self, queue_url: str, client: Any = None) -> None:
        self._url = queue_url
        self._client = client or boto3.client("sqs")

    def send(self, body: str, *, reason_code: str, reason: str, source_message_id: str) -> None:
        self._client.send_message(
            QueueUrl=self._url,
            MessageBody=body,
            MessageAttributes={
                "failure_code": {"DataType": "String", "StringValue": reason_code},
                "failure_reason": {"DataType": "String", "StringValue": reason[:1000]},
                "source_message_id": {"DataType": "String", "StringValue": source_message_id},
            },
        )
