"""Webhook endpoints, deliveries and delivery lanes in the billing table.

Items (keys from `billing.adapters.keys`): a tenant's endpoints in one partition (a Query lists them all:
the dispatcher reads them per event); each delivery alone, listed per endpoint newest first through gsi1;
one lane item per (endpoint, customer) holding the cursor (the next customer sequence to look at) and the
lease that lets one sender at a time move it. Endpoints and deliveries carry a `revision`: a write is made
only over the revision it was read at. Deliveries expire (TTL `expires_at`) after the replay window and a
margin; endpoints and lanes do not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import boto3
from botocore.exceptions import ClientError

from billing.adapters.aws_errors import error_code, is_transient
from billing.adapters.dynamo import call, query_page, transact
from billing.adapters.keys import (
    DELIVERY_PREFIX,
    ENDPOINT_PREFIX,
    GSI1,
    LANE_PREFIX,
    deliveries_index,
    deliveries_index_sort_key,
    delivery_key,
    endpoint_key,
    endpoints_partition,
    lane_key,
    lanes_index,
    lanes_index_sort_key,
    tenant_prefix,
)
from billing.domain import canonical_json
from billing.domain.errors import StaleRevision, TransientFailure
from billing.domain.pages import Page
from billing.domain.usage_events import format_timestamp, parse_timestamp
from billing.domain.webhooks.deliveries import REPLAY_WINDOW, Attempt, Delivery, DeliveryStatus
from billing.domain.webhooks.endpoints import SigningSecret, WebhookEndpoint

DELIVERY_TTL = REPLAY_WINDOW + timedelta(days=5)
LANE_TRIES = 5


@dataclass(frozen=True)
class Lane:
    """A lane as read when its lease was taken: the next sequence to look at, the retry timer pending."""

    next_sequence: int
    timer_due: str | None


class DynamoWebhookStore:
    def __init__(self, table_name: str, client: Any = None) -> None:
        self._table = table_name
        self._client = client or boto3.client("dynamodb")

    # -- endpoints -------------------------------------------------------------------------------------

    def create_endpoint(self, tenant_id: str, endpoint: WebhookEndpoint) -> None:
        self._put(_endpoint_item(tenant_id, endpoint), "attribute_not_exists(pk)")

    def get_endpoint(self, tenant_id: str, endpoint_id: str) -> WebhookEndpoint | None:
        item = self._get(endpoint_key(tenant_id, endpoint_id))
        return _endpoint_from(item) if item else None

    def all_endpoints(self, tenant_id: str) -> list[WebhookEndpoint]:
        """Every endpoint of the tenant (there are at most a few: one Query)."""
        pages = call(
            self._table,
            lambda: list(
                self._client.get_paginator("query").paginate(
                    TableName=self._table,
                    KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                    ExpressionAttributeValues={
                        ":pk": {"S": endpoints_partition(tenant_id)},
                        ":prefix": {"S": ENDPOINT_PREFIX},
                    },
                    ConsistentRead=True,
                )
            ),
        )
        return [_endpoint_from(item) for page in pages for item in page.get("Items", [])]

    def list_endpoints(self, tenant_id: str, limit: int, cursor: str | None) -> Page[WebhookEndpoint]:
        return query_page(
            self._client,
            self._table,
            index=None,
            partition=endpoints_partition(tenant_id),
            prefix=ENDPOINT_PREFIX,
            limit=limit,
            cursor=cursor,
            convert=_endpoint_from,
            table_prefix=tenant_prefix(tenant_id),
        )

    def save_endpoint(self, tenant_id: str, endpoint: WebhookEndpoint) -> WebhookEndpoint:
        """Write `endpoint` over the revision it was read at; raises StaleRevision if it changed since."""
        saved = _with_revision(endpoint, endpoint.revision + 1)
        self._put(
            _endpoint_item(tenant_id, saved),
            "revision = :read",
            {":read": {"N": str(endpoint.revision)}},
        )
        return saved

    def delete_endpoint(self, tenant_id: str, endpoint_id: str) -> bool:
        """Delete it; False when it did not exist."""
        try:
            call(
                self._table,
                lambda: self._client.delete_item(
                    TableName=self._table,
                    Key=endpoint_key(tenant_id, endpoint_id),
                    ConditionExpression="attribute_exists(pk)",
                ),
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    # -- deliveries ------------------------------------------------------------------------------------

    def create_delivery(self, tenant_id: str, delivery: Delivery) -> bool:
        """Write a new delivery; False (nothing written) when one with its id exists."""
        try:
            self._put(_delivery_item(tenant_id, delivery), "attribute_not_exists(pk)")
        except StaleRevision:
            return False
        return True

    def dispatch_delivery(self, tenant_id: str, delivery: Delivery) -> bool:
        """The dispatcher's write: the new delivery, and its lane registered under its endpoint, in one
        transaction, unless the lane's cursor has passed the event (a sender met it first and decided:
        sent it, or skipped it as not the endpoint's, e.g. under a filter changed since). False when
        nothing was written: the delivery exists, or the lane is past it."""
        lane = {
            "TableName": self._table,
            "Key": lane_key(tenant_id, delivery.endpoint_id, delivery.customer_id),
            "UpdateExpression": "SET entity = :entity, tenant_id = :tenant, gsi1pk = :gpk, gsi1sk = :gsk, "
            "next_sequence = if_not_exists(next_sequence, :first)",
            "ConditionExpression": "attribute_not_exists(next_sequence) OR next_sequence <= :seq",
            "ExpressionAttributeValues": {
                ":entity": {"S": "webhook_lane"},
                ":tenant": {"S": tenant_id},
                ":gpk": {"S": lanes_index(tenant_id, delivery.endpoint_id)},
                ":gsk": {"S": lanes_index_sort_key(delivery.customer_id)},
                ":first": {"N": "1"},
                ":seq": {"N": str(delivery.sequence)},
            },
        }
        writes = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": _delivery_item(tenant_id, delivery),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {"Update": lane},
        ]
        return transact(self._client, self._table, writes) is None

    def lanes(self, tenant_id: str, endpoint_id: str, limit: int, cursor: str | None) -> Page[str]:
        """The customers the endpoint has a lane for (through gsi1)."""
        return query_page(
            self._client,
            self._table,
            index=GSI1,
            partition=lanes_index(tenant_id, endpoint_id),
            prefix=LANE_PREFIX,
            limit=limit,
            cursor=cursor,
            convert=lambda item: str(item["gsi1sk"]["S"]).removeprefix(LANE_PREFIX),
            table_prefix=tenant_prefix(tenant_id),
        )

    def get_delivery(self, tenant_id: str, delivery_id: str) -> Delivery | None:
        item = self._get(delivery_key(tenant_id, delivery_id))
        return _delivery_from(item) if item else None

    def list_deliveries(
        self,
        tenant_id: str,
        endpoint_id: str,
        status: DeliveryStatus | None,
        limit: int,
        cursor: str | None,
    ) -> Page[Delivery]:
        """An endpoint's deliveries, newest first (through gsi1: a delivery just made may lag a moment)."""
        return query_page(
            self._client,
            self._table,
            index=GSI1,
            partition=deliveries_index(tenant_id, endpoint_id),
            prefix=DELIVERY_PREFIX,
            limit=limit,
            cursor=cursor,
            convert=_delivery_from,
            table_prefix=tenant_prefix(tenant_id),
            descending=True,
            only=("status", status.value) if status else None,
        )

    def save_delivery(self, tenant_id: str, delivery: Delivery) -> Delivery:
        """Write `delivery` over the revision it was read at; raises StaleRevision if it changed since."""
        saved = _with_revision(delivery, delivery.revision + 1)
        self._put(
            _delivery_item(tenant_id, saved), "revision = :read", {":read": {"N": str(delivery.revision)}}
        )
        return saved

    def record_attempt(
        self,
        tenant_id: str,
        delivery: Delivery,
        *,
        lane_owner: str,
        advance_to: int | None,
        timer_due: str | None,
    ) -> Delivery:
        """The delivery after an attempt (over the revision it was read at) and the lane it moved, in one
        transaction, only while `lane_owner` holds the lane's lease. Raises StaleRevision otherwise."""
        saved = _with_revision(delivery, delivery.revision + 1)
        lane = self._lane_update(tenant_id, delivery.endpoint_id, delivery.customer_id, lane_owner)
        sets = []
        if advance_to is not None:
            sets.append("next_sequence = :to")
            lane["ExpressionAttributeValues"][":to"] = {"N": str(advance_to)}
        if timer_due is not None:
            sets.append("timer_due = :due")
            lane["ExpressionAttributeValues"][":due"] = {"S": timer_due}
        lane.pop("UpdateExpression")
        lane_write = (
            {"Update": {**lane, "UpdateExpression": "SET " + ", ".join(sets)}}
            if sets
            else {"ConditionCheck": lane}  # the lease is still ours: nothing of the lane changes
        )
        writes: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": _delivery_item(tenant_id, saved),
                    "ConditionExpression": "revision = :read",
                    "ExpressionAttributeValues": {":read": {"N": str(delivery.revision)}},
                }
            },
            lane_write,
        ]
        if transact(self._client, self._table, writes) is not None:
            raise StaleRevision(f"delivery {delivery.id} or its lane changed meanwhile")
        return saved

    # -- lanes -----------------------------------------------------------------------------------------

    def acquire_lane(
        self, tenant_id: str, endpoint_id: str, customer_id: str, owner: str, now: datetime, until: datetime
    ) -> Lane | None:
        """Take the lane's lease; None when another sender holds it (it is then told to walk again)."""
        key = lane_key(tenant_id, endpoint_id, customer_id)
        for _ in range(LANE_TRIES):
            try:
                item = _conditional(
                    lambda: self._client.update_item(
                        TableName=self._table,
                        Key=key,
                        UpdateExpression=(
                            "SET lease_owner = :me, lease_until = :until, entity = :entity, "
                            "tenant_id = :tenant, gsi1pk = :gpk, gsi1sk = :gsk, "
                            "next_sequence = if_not_exists(next_sequence, :first) REMOVE rekick"
                        ),
                        ConditionExpression="attribute_not_exists(lease_until) OR lease_until < :now",
                        ExpressionAttributeValues={
                            ":me": {"S": owner},
                            ":until": {"S": format_timestamp(until)},
                            ":now": {"S": format_timestamp(now)},
                            ":entity": {"S": "webhook_lane"},
                            ":tenant": {"S": tenant_id},
                            ":gpk": {"S": lanes_index(tenant_id, endpoint_id)},
                            ":gsk": {"S": lanes_index_sort_key(customer_id)},
                            ":first": {"N": "1"},
                        },
                        ReturnValues="ALL_NEW",
                    ),
                )["Attributes"]
                return Lane(int(item["next_sequence"]["N"]), item.get("timer_due", {}).get("S"))
            except ClientError as exc:
                if error_code(exc) == "TransactionConflictException":
                    time.sleep(0.05)  # a transaction of the holder is writing the lane: try again
                    continue
                if error_code(exc) != "ConditionalCheckFailedException":
                    raise
            # Held: ask the holder to walk once more before it lets go (it checks at release).
            try:
                _conditional(
                    lambda: self._client.update_item(
                        TableName=self._table,
                        Key=key,
                        UpdateExpression="SET rekick = :yes",
                        ConditionExpression="lease_until >= :now",
                        ExpressionAttributeValues={
                            ":yes": {"BOOL": True},
                            ":now": {"S": format_timestamp(now)},
                        },
                    ),
                )
                return None
            except ClientError as exc:
                if error_code(exc) not in ("ConditionalCheckFailedException", "TransactionConflictException"):
                    raise
            # Released in between (or being written): try to take it again.
        raise TransientFailure(f"lane of {customer_id} kept changing under its lease; retry the kick")

    def lane_timer(self, tenant_id: str, endpoint_id: str, customer_id: str) -> str | None:
        item = self._get(lane_key(tenant_id, endpoint_id, customer_id))
        return item.get("timer_due", {}).get("S") if item else None

    def advance_lane(
        self, tenant_id: str, endpoint_id: str, customer_id: str, owner: str, to_sequence: int
    ) -> None:
        update = self._lane_update(tenant_id, endpoint_id, customer_id, owner)
        update["UpdateExpression"] = "SET next_sequence = :to"
        update["ExpressionAttributeValues"][":to"] = {"N": str(to_sequence)}
        self._lane_write(update)

    def set_lane_timer(
        self, tenant_id: str, endpoint_id: str, customer_id: str, owner: str, due: str
    ) -> None:
        update = self._lane_update(tenant_id, endpoint_id, customer_id, owner)
        update["UpdateExpression"] = "SET timer_due = :due"
        update["ExpressionAttributeValues"][":due"] = {"S": due}
        self._lane_write(update)

    def release_lane(self, tenant_id: str, endpoint_id: str, customer_id: str, owner: str) -> bool:
        """Let go of the lease: True when done; False when another kick came meanwhile (the flag is
        cleared and the lease kept: walk again, then release again)."""
        update = self._lane_update(tenant_id, endpoint_id, customer_id, owner)
        update["UpdateExpression"] = "REMOVE lease_owner, lease_until"
        update["ConditionExpression"] += " AND attribute_not_exists(rekick)"
        try:
            self._lane_write(update)
            return True
        except StaleRevision:
            pass
        cleared = self._lane_update(tenant_id, endpoint_id, customer_id, owner)
        cleared["UpdateExpression"] = "REMOVE rekick"
        try:
            self._lane_write(cleared)
        except StaleRevision:
            return True  # the lease was lost (expired and taken): the new holder walks
        return False

    def hand_over_lane(self, tenant_id: str, endpoint_id: str, customer_id: str, owner: str) -> None:
        """Let go of the lease for another invocation to take on: the rekick flag goes too (the kick the
        caller sends next does what it asked)."""
        update = self._lane_update(tenant_id, endpoint_id, customer_id, owner)
        update["UpdateExpression"] = "REMOVE lease_owner, lease_until, rekick"
        with suppress(StaleRevision):  # the lease ran out and was taken: its holder walks
            self._lane_write(update)

    def _lane_update(self, tenant_id: str, endpoint_id: str, customer_id: str, owner: str) -> dict[str, Any]:
        return {
            "TableName": self._table,
            "Key": lane_key(tenant_id, endpoint_id, customer_id),
            "UpdateExpression": "",
            "ConditionExpression": "#owner = :me",
            "ExpressionAttributeNames": {"#owner": "lease_owner"},
            "ExpressionAttributeValues": {":me": {"S": owner}},
        }

    def _lane_write(self, update: dict[str, Any]) -> None:
        try:
            call(self._table, lambda: self._client.update_item(**update))
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise StaleRevision("the lane's lease is no longer held") from exc
            raise

    # -- helpers ---------------------------------------------------------------------------------------

    def _get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        item: dict[str, Any] | None = call(
            self._table,
            lambda: self._client.get_item(TableName=self._table, Key=key, ConsistentRead=True),
        ).get("Item")
        return item

    def _put(self, item: dict[str, Any], condition: str, values: dict[str, Any] | None = None) -> None:
        request: dict[str, Any] = {"TableName": self._table, "Item": item, "ConditionExpression": condition}
        if values:
            request["ExpressionAttributeValues"] = values
        try:
            call(self._table, lambda: self._client.put_item(**request))
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise StaleRevision(f"{item['pk']['S']} changed meanwhile") from exc
            raise


def _conditional(operation: Callable[[], Any]) -> Any:
    """A conditional write whose failed condition or conflicting transaction the caller handles (they
    come out as ClientError); throttling and service faults become TransientFailure."""
    try:
        return operation()
    except ClientError as exc:
        if error_code(exc) in ("ConditionalCheckFailedException", "TransactionConflictException"):
            raise
        if is_transient(exc):
            raise TransientFailure(f"billing table: {error_code(exc)}") from exc
        raise


def _with_revision(value: Any, revision: int) -> Any:
    return replace(value, revision=revision)


def _time(value: datetime | None) -> str | None:
    return None if value is None else format_timestamp(value)


def _parse(value: str | None) -> datetime | None:
    return None if value is None else parse_timestamp(value, "timestamp")


def _endpoint_item(tenant_id: str, endpoint: WebhookEndpoint) -> dict[str, Any]:
    record = {
        "id": endpoint.id,
        "url": endpoint.url,
        "event_types": list(endpoint.event_types),
        "description": endpoint.description,
        "disabled": endpoint.disabled,
        "disabled_reason": endpoint.disabled_reason,
        "enabled_since": _time(endpoint.enabled_since),
        "created_at": _time(endpoint.created_at),
        "updated_at": _time(endpoint.updated_at),
        "secrets": [
            {
                "ciphertext": secret.ciphertext,
                "created_at": _time(secret.created_at),
                "expires_at": _time(secret.expires_at),
            }
            for secret in endpoint.secrets
        ],
    }
    return {
        **endpoint_key(tenant_id, endpoint.id),
        "entity": {"S": "webhook_endpoint"},
        "tenant_id": {"S": tenant_id},
        "revision": {"N": str(endpoint.revision)},
        "data": {"S": canonical_json.dumps(record)},
    }


def _endpoint_from(item: dict[str, Any]) -> WebhookEndpoint:
    record = canonical_json.loads(item["data"]["S"])
    return WebhookEndpoint(
        id=record["id"],
        url=record["url"],
        event_types=tuple(record["event_types"]),
        description=record["description"],
        disabled=bool(record["disabled"]),
        disabled_reason=record["disabled_reason"],
        enabled_since=parse_timestamp(record["enabled_since"]),
        created_at=parse_timestamp(record["created_at"]),
        updated_at=parse_timestamp(record["updated_at"]),
        secrets=tuple(
            SigningSecret(
                ciphertext=secret["ciphertext"],
                created_at=parse_timestamp(secret["created_at"]),
                expires_at=_parse(secret["expires_at"]),
            )
            for secret in record["secrets"]
        ),
        revision=int(item["revision"]["N"]),
    )


def _delivery_item(tenant_id: str, delivery: Delivery) -> dict[str, Any]:
    created = format_timestamp(delivery.created_at)
    record = {
        "id": delivery.id,
        "endpoint_id": delivery.endpoint_id,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type.value,
        "customer_id": delivery.customer_id,
        "sequence": delivery.sequence,
        "status": delivery.status.value,
        "created_at": created,
        "updated_at": _time(delivery.updated_at),
        "next_attempt_at": _time(delivery.next_attempt_at),
        "scheduled_attempts": delivery.scheduled_attempts,
        "failure_reason": delivery.failure_reason,
        "attempts": [
            {
                "at": _time(attempt.at),
                "status_code": attempt.status_code,
                "error": attempt.error,
                "duration_ms": attempt.duration_ms,
                "replay": attempt.replay,
            }
            for attempt in delivery.attempts
        ],
    }
    # Kept while it moves (attempts, replays), and for the replay window after it was made.
    expires = max(delivery.created_at, delivery.updated_at) + DELIVERY_TTL
    return {
        **delivery_key(tenant_id, delivery.id),
        "entity": {"S": "webhook_delivery"},
        "tenant_id": {"S": tenant_id},
        "endpoint_id": {"S": delivery.endpoint_id},
        "status": {"S": delivery.status.value},
        "revision": {"N": str(delivery.revision)},
        "gsi1pk": {"S": deliveries_index(tenant_id, delivery.endpoint_id)},
        "gsi1sk": {"S": deliveries_index_sort_key(created, delivery.id)},
        "expires_at": {"N": str(int(expires.timestamp()))},
        "data": {"S": canonical_json.dumps(record)},
    }


def _delivery_from(item: dict[str, Any]) -> Delivery:
    record = canonical_json.loads(item["data"]["S"])
    return Delivery(
        id=record["id"],
        endpoint_id=record["endpoint_id"],
        event_id=record["event_id"],
        event_type=record["event_type"],
        customer_id=record["customer_id"],
        sequence=int(record["sequence"]),
        status=DeliveryStatus(record["status"]),
        created_at=parse_timestamp(record["created_at"]),
        updated_at=parse_timestamp(record["updated_at"]),
        next_attempt_at=_parse(record["next_attempt_at"]),
        scheduled_attempts=int(record["scheduled_attempts"]),
        failure_reason=record["failure_reason"],
        attempts=tuple(
            Attempt(
                at=parse_timestamp(attempt["at"]),
                status_code=attempt["status_code"],
                error=attempt["error"],
                duration_ms=int(attempt["duration_ms"]),
                replay=bool(attempt["replay"]),
            )
            for attempt in record["attempts"]
        ),
        revision=int(item["revision"]["N"]),
    )
