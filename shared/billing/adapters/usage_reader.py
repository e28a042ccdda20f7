"""Reading a customer's stored usage events of a time window from the events table.

Each of the customer's `EVENT_SHARDS` partitions is queried on the `by_time` index (pk, ts) with
`ts BETWEEN start AND the last microsecond before end`, so the window is half-open, [start, end), as
billing periods are. ts is fixed-width UTC text, so text order is time order. The shards are queried
in parallel and each is paginated to the end.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from billing.adapters.aws_errors import error_code, is_transient
from billing.adapters.event_store import event_partition_key
from billing.domain.errors import TransientFailure
from billing.domain.usage_events import UsageEvent, format_timestamp, parse_timestamp

BY_TIME_INDEX = "by_time"
MAX_PARALLEL_SHARDS = 16

_deserializer = TypeDeserializer()


class DynamoEventsReader:
    """`billing.services.usage.EventsReader` on the events table."""

    def __init__(self, table_name: str, shards: int, client: Any | None = None) -> None:
        self._table = table_name
        self._shards = shards
        self._client = client if client is not None else boto3.client("dynamodb")

    def events_in(self, tenant_id: str, customer_id: str, start: datetime, end: datetime) -> list[UsageEvent]:
        """The customer's stored events with start <= timestamp < end, in no particular order."""
        if end <= start:
            return []
        low = format_timestamp(start)
        high = format_timestamp(end - timedelta(microseconds=1))
        workers = min(self._shards, MAX_PARALLEL_SHARDS)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="events-reader") as pool:
            shards = pool.map(
                lambda shard: self._shard(event_partition_key(tenant_id, customer_id, shard), low, high),
                range(self._shards),
            )
            return [event for events in shards for event in events]

    def _shard(self, partition: str, low: str, high: str) -> list[UsageEvent]:
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": BY_TIME_INDEX,
            "KeyConditionExpression": "pk = :pk AND ts BETWEEN :low AND :high",
            "ExpressionAttributeValues": {":pk": {"S": partition}, ":low": {"S": low}, ":high": {"S": high}},
        }
        events: list[UsageEvent] = []
        while True:
            try:
                response = self._client.query(**request)
            except ClientError as exc:
                if is_transient(exc):
                    raise TransientFailure(f"events table: {error_code(exc)}") from exc
                raise
            events += [_event_from(item) for item in response.get("Items", [])]
            last = response.get("LastEvaluatedKey")
            if not last:
                return events
            request["ExclusiveStartKey"] = last


def _event_from(item: dict[str, Any]) -> UsageEvent:
    properties = _deserializer.deserialize(item["properties"]) if "properties" in item else {}
    return UsageEvent(
        tenant_id=item["tenant_id"]["S"],
        customer_id=item["customer_id"]["S"],
        event_id=item["event_id"]["S"],
        type=item["type"]["S"],
        timestamp=parse_timestamp(item["ts"]["S"], "ts"),
        received_at=parse_timestamp(item["received_at"]["S"], "received_at"),
        properties=properties,
    )
