"""The webhook sender: webhook-queue messages (lane kicks, retry timers, replays) → signed deliveries.

The records of a batch are handled side by side (each in its own thread), so one lane waiting 15 s for a
slow endpoint never holds up another customer's lane in the same batch. Partial batch failure: a record
that raised is redelivered by SQS; one that can never be read is dropped with an error log.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from billing.bootstrap import get_services
from billing.domain.errors import PoisonMessage
from billing.domain.webhooks.messages import decode
from billing.runtime import logger, metrics, tracer


def handle_record(record: dict[str, Any], context: LambdaContext) -> str | None:
    """Handle one SQS record; the message id when it failed (for SQS to redeliver it)."""
    message_id = str(record.get("messageId", ""))
    try:
        message = decode(str(record.get("body", "")))
    except PoisonMessage as exc:
        logger.error(
            "webhook queue message dropped", extra={"sqs_message_id": message_id, "reason": exc.code}
        )
        return None
    try:
        get_services().webhook_sender.handle(message, context.get_remaining_time_in_millis)
    except Exception:
        logger.exception("webhook queue message failed", extra={"sqs_message_id": message_id})
        return message_id
    return None


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records = event.get("Records") or []
    if not records:
        return {"batchItemFailures": []}
    with ThreadPoolExecutor(max_workers=len(records), thread_name_prefix="webhook-lane") as pool:
        failed = list(pool.map(lambda record: handle_record(record, context), records))
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed if message_id]}
