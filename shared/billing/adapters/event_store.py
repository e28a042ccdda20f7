"""The events table: one item per (tenant, customer, event id), written once, ever."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from billing.adapters.aws_errors import error_code, is_transient
from billing.adapters.keys import event_key
from billing.domain.errors import EventRefused, TransientFailure
from billing.domain.event_status import StoredEvent
from billing.domain.usage_events import UsageEvent, format_timestamp, parse_timestamp, shard_for

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class PutOutcome(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"  # same id, same content: a retry or a redelivery
    CONFLICT = "conflict"  # same id, other content: the first one stays, this one is not counted


class DynamoEventStore:
    def __init__(self, table_name: str, shards: int, client: Any = None) -> None:
        self._table = table_name
        self._shards = shards
        self._client = client or boto3.client("dynamodb")

    def key_of(self, tenant_id: str, customer_id: str, event_id: str) -> dict[str, Any]:
        return event_key(tenant_id, customer_id, event_id, shard_for(event_id, self._shards))

    def put_if_absent(self, event: UsageEvent, stored_at: str) -> PutOutcome:
        """The exact dedupe: a conditional Put on the event's key; a second write of the same id fails."""
        content_hash = event.content_hash
        item = {
            **self.key_of(event.tenant_id, event.customer_id, event.event_id),
            "ts": {"S": format_timestamp(event.timestamp)},
            "tenant_id": {"S": event.tenant_id},
            "customer_id": {"S": event.customer_id},
            "event_id": {"S": event.event_id},
            "type": {"S": event.type},
            "received_at": {"S": format_timestamp(event.received_at)},
            "stored_at": {"S": stored_at},
            "content_hash": {"S": content_hash},
        }
        try:
            item["properties"] = _serializer.serialize(event.properties)
        except (TypeError, ArithmeticError) as exc:
            raise EventRefused(f"properties cannot be stored: {type(exc).__name__}") from exc
        try:
            self._client.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                old = exc.response.get("Item") or {}
                old_hash = old.get("content_hash", {}).get("S")
                if old_hash is not None and old_hash != content_hash:
                    return PutOutcome.CONFLICT
                return PutOutcome.DUPLICATE
            if is_transient(exc):
                raise TransientFailure(f"events table: {error_code(exc)}") from exc
            if error_code(exc) == "ValidationException":
                raise EventRefused(
                    f"events table: {exc.response.get('Error', {}).get('Message', '')}"
                ) from exc
            raise
        return PutOutcome.STORED

    def get(self, tenant_id: str, customer_id: str, event_id: str) -> StoredEvent | None:
        response = self._client.get_item(
            TableName=self._table, Key=self.key_of(tenant_id, customer_id, event_id), ConsistentRead=True
        )
        item = response.get("Item")
        if not item:
            return None
        return stored_event_from(item)


def stored_event_from(item: dict[str, Any]) -> StoredEvent:
    """An item of the events table as the domain's stored event."""
    data = {name: _deserializer.deserialize(value) for name, value in item.items()}
    return StoredEvent(
        tenant_id=data["tenant_id"],
        customer_id=data["customer_id"],
        event_id=data["event_id"],
        type=data["type"],
        timestamp=parse_timestamp(data["ts"], "ts"),
        received_at=parse_timestamp(data["received_at"], "received_at"),
        stored_at=parse_timestamp(data["stored_at"], "stored_at"),
        properties=data.get("properties", {}),
    )
