"""The outbox dispatcher: billing-table stream records (outbox events only) → webhook deliveries.

The event source mapping filters the stream to new outbox items, so nothing else of the table (customer
profiles, invoices) ever reaches this function. Partial batch failure: a record that failed is reported by
its sequence number and the stream is retried from there (the records before it are not seen again; a
record seen again creates nothing new: delivery ids are deterministic and written once).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from billing.adapters.outbox_store import event_from_item, tenant_of
from billing.bootstrap import get_services
from billing.runtime import logger, metrics, tracer

processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


@tracer.capture_method
def record_handler(record: DynamoDBRecord) -> None:
    image = record.raw_event["dynamodb"]["NewImage"]
    tenant_id = tenant_of(image)
    event = event_from_item(image)
    logger.append_keys(tenant_id=tenant_id, event_id=event.id)
    get_services().outbox_dispatcher.dispatch([(tenant_id, event)])


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
