"""Reading a customer's stored usage events by time from the events table: a window for rating, or a
page of the events whose timestamps lie in some windows (the unbilled ones).

Each of the customer's `EVENT_SHARDS` partitions is queried on the `by_time` index (pk, ts) with
`ts BETWEEN start AND the last microsecond before end`, so the window is half-open, [start, end), as
billing periods are. ts is fixed-width UTC text, so text order is time order. The shards are queried
in parallel and each is paginated to the end.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer

from billing.adapters.dynamo import call
from billing.adapters.event_store import stored_event_from
from billing.adapters.keys import BY_TIME_INDEX, event_partition
from billing.domain.errors import MalformedRequest
from billing.domain.event_status import StoredEvent, Window
from billing.domain.pages import Page
from billing.domain.usage_events import UsageEvent, format_timestamp, parse_timestamp

MAX_PARALLEL_SHARDS = 16
# Bounds of the fixed-width `ts` text for unbounded windows.
_EARLIEST_TS = "0000-01-01T00:00:00.000000Z"
_LATEST_TS = "9999-12-31T23:59:59.999999Z"

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
                lambda shard: self._shard(event_partition(tenant_id, customer_id, shard), low, high),
                range(self._shards),
            )
            return [event for events in shards for event in events]

    def list_in_windows(
        self,
        tenant_id: str,
        customer_id: str,
        windows: Sequence[Window],
        limit: int,
        cursor: str | None,
    ) -> Page[StoredEvent]:
        """The customer's events whose timestamp lies in one of `windows` ([start, end), None unbounded),
        ordered by (timestamp, event id), a page at a time.

        Each shard is read in timestamp order and only as far as this page needs (the first `limit + 1`
        events after the cursor of every shard hold the page's events), then the shards are merged.
        """
        after = _decode_event_cursor(cursor)
        found: list[tuple[str, str, dict[str, Any]]] = []
        for start, end in windows:
            low = _EARLIEST_TS if start is None else format_timestamp(start)
            high = _LATEST_TS if end is None else format_timestamp(end - timedelta(microseconds=1))
            if after is not None:
                if after[0] > high:
                    continue
                low = max(low, after[0])
            if low > high:
                continue
            workers = min(self._shards, MAX_PARALLEL_SHARDS)
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="events-lister") as pool:
                shards = pool.map(
                    lambda shard, low=low, high=high: self._first_after(
                        event_partition(tenant_id, customer_id, shard), low, high, after, limit + 1
                    ),
                    range(self._shards),
                )
                found.extend(row for rows in shards for row in rows)
            if len(found) > limit:
                break
        found.sort(key=_order)
        page = found[:limit]
        more = len(found) > limit
        next_cursor = _encode_event_cursor(page[-1][0], page[-1][1]) if more and page else None
        return Page([stored_event_from(item) for _, _, item in page], next_cursor)

    def _first_after(
        self, partition: str, low: str, high: str, after: tuple[str, str] | None, wanted: int
    ) -> list[tuple[str, str, dict[str, Any]]]:
        """Up to `wanted` events of one shard with low <= ts <= high and (ts, id) after `after`, in order."""
        rows: list[tuple[str, str, dict[str, Any]]] = []
        for response in self._pages(partition, low, high):
            for item in response.get("Items", []):
                row = (item["ts"]["S"], item["event_id"]["S"], item)
                if after is None or (row[0], row[1]) > after:
                    rows.append(row)
            rows.sort(key=_order)
            last = response.get("LastEvaluatedKey")
            # Events with one timestamp come in no particular order: read past the last wanted instant.
            if last and len(rows) >= wanted and rows[wanted - 1][0] < last["ts"]["S"]:
                break
        return rows[:wanted]

    def _shard(self, partition: str, low: str, high: str) -> list[UsageEvent]:
        return [
            _event_from(item)
            for response in self._pages(partition, low, high)
            for item in response.get("Items", [])
        ]

    def _pages(self, partition: str, low: str, high: str) -> Iterator[dict[str, Any]]:
        """The pages of one shard's events with low <= ts <= high, in timestamp order."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": BY_TIME_INDEX,
            "KeyConditionExpression": "pk = :pk AND ts BETWEEN :low AND :high",
            "ExpressionAttributeValues": {":pk": {"S": partition}, ":low": {"S": low}, ":high": {"S": high}},
        }
        while True:
            response = call("events table", lambda: self._client.query(**request))
            yield response
            last = response.get("LastEvaluatedKey")
            if not last:
                return
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


def _order(row: tuple[str, str, dict[str, Any]]) -> tuple[str, str]:
    return row[0], row[1]


def _encode_event_cursor(ts: str, event_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([ts, event_id]).encode()).decode()


def _decode_event_cursor(cursor: str | None) -> tuple[str, str] | None:
    if cursor is None:
        return None
    invalid = MalformedRequest(
        "cursor is not a cursor of this list; start again without it", code="invalid_cursor"
    )
    if len(cursor) > 1024:
        raise invalid
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, binascii.Error, UnicodeError):
        raise invalid from None
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(part, str) for part in value)):
        raise invalid
    return value[0], value[1]
