"""The outbox in the billing table: each customer's webhook events, numbered, written with their facts.

Items (keys from `billing.adapters.keys`): per customer a head (the last sequence given) and one item per
event at `EVENT#<sequence>` (entity `outbox_event`: the only items the dispatcher's stream filter lets
through, holding ids and amounts only), and per event id a claim. `append_items` gives the
`TransactWriteItems` actions that write events after the head the caller read: the claim and the event
are conditional Puts and the head moves only from the sequence read, so a re-run of a fact's step (its id
claimed already) or a concurrent writer (the head moved) makes the transaction fail instead of leaving a
duplicate or a gap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import boto3

from billing.adapters.dynamo import call, query_page, transact
from billing.adapters.keys import (
    OUTBOX_EVENT_PREFIX,
    event_claim_key,
    outbox_event_key,
    outbox_event_sort_key,
    outbox_head_key,
    outbox_partition,
    tenant_prefix,
)
from billing.domain import canonical_json
from billing.domain.errors import TransientFailure
from billing.domain.pages import Page
from billing.domain.usage_events import format_timestamp, parse_timestamp
from billing.domain.webhooks.events import NewEvent, WebhookEvent, number

OUTBOX_ENTITY = "outbox_event"
MAX_HEAD_RACES = 5


class DynamoOutbox:
    def __init__(self, table_name: str, client: Any = None) -> None:
        self._table = table_name
        self._client = client or boto3.client("dynamodb")

    # -- writing ---------------------------------------------------------------------------------------

    def head(self, tenant_id: str, customer_id: str) -> int:
        """The customer's last sequence (0: no event yet), read consistently."""
        item = call(
            self._table,
            lambda: self._client.get_item(
                TableName=self._table, Key=outbox_head_key(tenant_id, customer_id), ConsistentRead=True
            ),
        ).get("Item")
        return int(item["sequence"]["N"]) if item else 0

    def append_items(
        self, tenant_id: str, customer_id: str, last_sequence: int, events: Sequence[NewEvent]
    ) -> tuple[list[dict[str, Any]], list[WebhookEvent]]:
        """The transaction actions that write `events` after `last_sequence`, and the numbered events.

        Per event: a claim of its id (fails if it was written before) and the event; then the head, moved
        from `last_sequence` (fails if another writer moved it meanwhile).
        """
        if not events:
            return [], []
        numbered = number(events, last_sequence)
        actions: list[dict[str, Any]] = []
        for event in numbered:
            actions.append(
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": {
                            **event_claim_key(tenant_id, event.id),
                            "entity": {"S": "outbox_event_id"},
                            "tenant_id": {"S": tenant_id},
                            "customer_id": {"S": customer_id},
                            "sequence": {"N": str(event.sequence)},
                        },
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            )
            actions.append(
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": event_item(tenant_id, event),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            )
        head: dict[str, Any] = {
            "TableName": self._table,
            "Key": outbox_head_key(tenant_id, customer_id),
            "UpdateExpression": "SET #seq = :seq, entity = :entity, tenant_id = :tenant",
            "ExpressionAttributeNames": {"#seq": "sequence"},
            "ExpressionAttributeValues": {
                ":seq": {"N": str(numbered[-1].sequence)},
                ":entity": {"S": "outbox_head"},
                ":tenant": {"S": tenant_id},
            },
        }
        if last_sequence == 0:
            head["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            head["ConditionExpression"] = "#seq = :read"
            head["ExpressionAttributeValues"][":read"] = {"N": str(last_sequence)}
        actions.append({"Update": head})
        return actions, numbered

    def announce(self, tenant_id: str, customer_id: str, events: Sequence[NewEvent]) -> list[WebhookEvent]:
        """Write events that come with no other fact (the ingest path's `usage.unbilled`).

        Returns what was written; an event whose id was written before is left out (nothing to do: its
        announcement exists). Retries a lost race for the head; raises TransientFailure when it keeps
        losing.
        """
        pending = list(events)
        for _ in range(MAX_HEAD_RACES):
            if not pending:
                return []
            last = self.head(tenant_id, customer_id)
            actions, numbered = self.append_items(tenant_id, customer_id, last, pending)
            reasons = transact(self._client, self._table, actions)
            if reasons is None:
                return numbered
            claimed = {
                pending[index // 2].id
                for index, reason in enumerate(reasons[:-1])
                if index % 2 == 0 and reason == "ConditionalCheckFailed"
            }
            pending = [event for event in pending if event.id not in claimed]
        raise TransientFailure(f"the outbox of customer {customer_id} kept moving; retry")

    # -- reading ---------------------------------------------------------------------------------------

    def get(self, tenant_id: str, customer_id: str, sequence: int) -> WebhookEvent | None:
        item = call(
            self._table,
            lambda: self._client.get_item(
                TableName=self._table,
                Key=outbox_event_key(tenant_id, customer_id, sequence),
                ConsistentRead=True,
            ),
        ).get("Item")
        return event_from_item(item) if item else None

    def events_from(
        self, tenant_id: str, customer_id: str, first_sequence: int, limit: int
    ) -> list[WebhookEvent]:
        """Up to `limit` of the customer's events from `first_sequence` on, in sequence order."""
        response = call(
            self._table,
            lambda: self._client.query(
                TableName=self._table,
                KeyConditionExpression="pk = :pk AND sk BETWEEN :from AND :to",
                ExpressionAttributeValues={
                    ":pk": {"S": outbox_partition(tenant_id, customer_id)},
                    ":from": {"S": outbox_event_sort_key(max(first_sequence, 1))},
                    ":to": {"S": outbox_event_sort_key(10**12 - 1)},
                },
                ConsistentRead=True,
                Limit=limit,
            ),
        )
        return [event_from_item(item) for item in response.get("Items", [])]

    def list_page(
        self, tenant_id: str, customer_id: str, limit: int, cursor: str | None
    ) -> Page[WebhookEvent]:
        """The customer's events in sequence order (`GET /v1/webhook-events`)."""
        return query_page(
            self._client,
            self._table,
            index=None,
            partition=outbox_partition(tenant_id, customer_id),
            prefix=OUTBOX_EVENT_PREFIX,
            limit=limit,
            cursor=cursor,
            convert=event_from_item,
            table_prefix=tenant_prefix(tenant_id),
        )


def event_item(tenant_id: str, event: WebhookEvent) -> dict[str, Any]:
    return {
        **outbox_event_key(tenant_id, event.customer_id, event.sequence),
        "entity": {"S": OUTBOX_ENTITY},
        "tenant_id": {"S": tenant_id},
        "customer_id": {"S": event.customer_id},
        "event_id": {"S": event.id},
        "type": {"S": event.type.value},
        "sequence": {"N": str(event.sequence)},
        "created_at": {"S": format_timestamp(event.created_at)},
        "data": {"S": canonical_json.dumps(event.payload()["data"])},
    }


def event_from_item(item: dict[str, Any]) -> WebhookEvent:
    """An outbox item, from the table or a stream record's NewImage (the same attribute-value form)."""
    return WebhookEvent(
        id=item["event_id"]["S"],
        type=item["type"]["S"],
        customer_id=item["customer_id"]["S"],
        sequence=int(item["sequence"]["N"]),
        created_at=parse_timestamp(item["created_at"]["S"], "created_at"),
        data=canonical_json.loads(item["data"]["S"]),
    )


def tenant_of(item: dict[str, Any]) -> str:
    return str(item["tenant_id"]["S"])
