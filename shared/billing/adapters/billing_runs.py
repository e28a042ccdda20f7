"""Billing runs and the due index, in the billing table.

The due index holds one item per (subscription, next period to close), sharded over a few partitions
and sorted by period end, so that "what is due before T" is a handful of Queries however many tenants
there are. Closing a period replaces its due item by the next period's in the same transaction that
finalizes the invoice (see the invoice store), so a period is due until it is invoiced, and never after.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from billing.adapters.aws_errors import error_code
from billing.adapters.keys import DUE_SHARDS, due_key, due_partition, run_key
from billing.domain.billing_runs import BillingRun, DuePeriod

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def due_item(due: DuePeriod) -> dict[str, Any]:
    return {
        **due_key(due.tenant_id, due.subscription_id, due.period_end),
        **{name: {"S": value} for name, value in due.to_json().items()},
        "entity": {"S": "due_period"},
    }


def due_item_key(due: DuePeriod) -> dict[str, Any]:
    return due_key(due.tenant_id, due.subscription_id, due.period_end)


class DynamoBillingRuns:
    def __init__(self, table_name: str, client: Any = None) -> None:
        self._table = table_name
        self._client = client or boto3.client("dynamodb")

    # -- the due index --------------------------------------------------------------------------------

    def schedule(self, due: DuePeriod) -> None:
        """Make a period due (idempotent: the item's key is the period)."""
        self._client.put_item(TableName=self._table, Item=due_item(due))

    def advance(self, due: DuePeriod, next_due: DuePeriod | None) -> None:
        """Replace a due period by the next one (or by none), both in one transaction."""
        writes: list[dict[str, Any]] = [{"Delete": {"TableName": self._table, "Key": due_item_key(due)}}]
        if next_due is not None:
            writes.append({"Put": {"TableName": self._table, "Item": due_item(next_due)}})
        self._client.transact_write_items(TransactItems=writes)

    def due_before(
        self, cutoff: str, *, tenant_id: str | None = None, customer_id: str | None = None
    ) -> list[DuePeriod]:
        """Every period whose end is at or before `cutoff` (fixed-width UTC text), all shards in parallel."""
        with ThreadPoolExecutor(max_workers=DUE_SHARDS) as pool:
            shards = list(pool.map(lambda shard: list(self._query_shard(shard, cutoff)), range(DUE_SHARDS)))
        found = [due for shard in shards for due in shard]
        if tenant_id is not None:
            found = [due for due in found if due.tenant_id == tenant_id]
        if customer_id is not None:
            found = [due for due in found if due.customer_id == customer_id]
        return sorted(found, key=lambda due: (due.period_end, due.tenant_id, due.subscription_id))

    def _query_shard(self, shard: int, cutoff: str) -> Iterator[DuePeriod]:
        paginator = self._client.get_paginator("query")
        pages = paginator.paginate(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND sk <= :cutoff",
            # "#" sorts before every character an id may hold after it, "\uffff" after all of them.
            ExpressionAttributeValues={
                ":pk": {"S": due_partition(shard)},
                ":cutoff": {"S": f"{cutoff}#\uffff"},
            },
            ConsistentRead=True,
        )
        for page in pages:
            for item in page.get("Items", []):
                data = {name: _deserializer.deserialize(value) for name, value in item.items()}
                yield DuePeriod.from_json(data)

    # -- runs -----------------------------------------------------------------------------------------

    def create_run(self, run: BillingRun) -> bool:
        """Record a new run; False (and nothing written) when a run with its id exists."""
        item = {**run_key(run.tenant_id, run.id), **self._run_attributes(run)}
        try:
            self._client.put_item(
                TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def get_run(self, tenant_id: str | None, run_id: str) -> BillingRun | None:
        item = self._client.get_item(
            TableName=self._table, Key=run_key(tenant_id, run_id), ConsistentRead=True
        ).get("Item")
        if not item:
            return None
        data = {name: _deserializer.deserialize(value) for name, value in item.items()}
        return BillingRun(
            id=data["run_id"],
            tenant_id=data.get("tenant_id"),
            status=data["status"],
            as_of=data["as_of"],
            customer_id=data.get("customer_id"),
            created_at=data["created_at"],
            invoices=list(data.get("invoices", [])),
            errors=list(data.get("errors", [])),
            finished_at=data.get("finished_at"),
        )

    def finish_run(self, run: BillingRun) -> None:
        """Record the outcome; a second call with the same outcome changes nothing."""
        self._client.put_item(
            TableName=self._table, Item={**run_key(run.tenant_id, run.id), **self._run_attributes(run)}
        )

    @staticmethod
    def _run_attributes(run: BillingRun) -> dict[str, Any]:
        values = {
            "run_id": run.id,
            "tenant_id": run.tenant_id,
            "status": run.status,
            "as_of": run.as_of,
            "customer_id": run.customer_id,
            "created_at": run.created_at,
            "finished_at": run.finished_at,
            "invoices": run.invoices,
            "errors": run.errors,
            "entity": "billing_run",
        }
        return {name: _serializer.serialize(value) for name, value in values.items() if value is not None}
