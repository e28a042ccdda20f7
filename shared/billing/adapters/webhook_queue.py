"""SQS: the webhook queue the dispatcher, the API and the sender itself put lane kicks and replays on."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from billing.adapters.aws_errors import error_code
from billing.domain.errors import TransientFailure
from billing.domain.webhooks.messages import MAX_QUEUE_DELAY_SECONDS, LaneKick, ReplayRequest

SEND_ATTEMPTS = 4
BATCH = 10  # SendMessageBatch's limit


class SqsWebhookQueue:
    def __init__(
        self, queue_url: str, client: Any = None, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._url = queue_url
        self._client = client or boto3.client("sqs")
        self._sleep = sleep

    def kick(self, kicks: Sequence[LaneKick]) -> None:
        """Send lane kicks now, or raise TransientFailure (the caller's step is then retried)."""
        bodies = [kick.body() for kick in kicks]
        for start in range(0, len(bodies), BATCH):
            self._send([(body, 0) for body in bodies[start : start + BATCH]])

    def schedule(self, kick: LaneKick, delay_seconds: int) -> None:
        """A timer: the kick becomes visible after `delay_seconds` (at most the queue's 15 minutes)."""
        self._send([(kick.body(), max(0, min(MAX_QUEUE_DELAY_SECONDS, delay_seconds)))])

    def replay(self, request: ReplayRequest) -> None:
        self._send([(request.body(), 0)])

    def _send(self, messages: list[tuple[str, int]]) -> None:
        pending = {str(index): message for index, message in enumerate(messages)}
        for attempt in range(SEND_ATTEMPTS):
            try:
                response = self._client.send_message_batch(
                    QueueUrl=self._url,
                    Entries=[
                        {"Id": entry_id, "MessageBody": body, "DelaySeconds": delay}
                        for entry_id, (body, delay) in pending.items()
                    ],
                )
            except (ClientError, BotoCoreError) as exc:
                if attempt == SEND_ATTEMPTS - 1:
                    raise TransientFailure(
                        f"webhook queue unavailable: {error_code(exc) or type(exc).__name__}"
                    ) from exc
                self._sleep(0.05 * 2**attempt)
                continue
            pending = {entry["Id"]: pending[entry["Id"]] for entry in response.get("Failed", [])}
            if not pending:
                return
            if attempt < SEND_ATTEMPTS - 1:
                self._sleep(0.05 * 2**attempt)
        raise TransientFailure(f"webhook queue did not accept {len(pending)} message(s)")
