"""SQS: the webhook queue the dispatcher, the API and the sender itself put lane kicks and replays on."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import boto3

from billing.adapters.queues import send_entries
from billing.domain.webhooks.messages import MAX_QUEUE_DELAY_SECONDS, LaneKick, ReplayRequest, ResumeRequest

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

    def resume(self, request: ResumeRequest) -> None:
        self._send([(request.body(), 0)])

    def _send(self, messages: list[tuple[str, int]]) -> None:
        entries = {
            str(index): {"MessageBody": body, "DelaySeconds": delay}
            for index, (body, delay) in enumerate(messages)
        }
        send_entries(self._client, self._url, entries, what="webhook queue", sleep=self._sleep)
