"""A tenant's catalog in the billing table: meters, customers, plan versions, subscriptions.

Items (billing table, keys from `billing.adapters.keys`; `data` is the object's record from
`billing.adapters.records` as canonical JSON, numbers exact): meters, customers (with a `revision`),
plan heads (the latest version) and immutable plan versions, subscriptions (with a `revision`).
Every item also has entity, tenant_id and created_at. Customer items hold personal data (name, e-mail,
tax ids): stream consumers must pick items by `entity` and never log `data`.

The tenant is part of every key, so a request can only ever reach its own tenant's items. Creates are
conditional Puts (`attribute_not_exists`), updates are conditional on the `revision` that was read,
and writes that span items (a subscription and its customer; a plan version and its head) are one
transaction. No scans: reads are GetItem or Query (lists page with `Limit` and an opaque cursor, the
base64 of the last key).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import boto3
from botocore.exceptions import ClientError

from billing.adapters import records
from billing.adapters.aws_errors import error_code
from billing.adapters.billing_runs import due_item
from billing.adapters.dynamo import call, query_page, transact
from billing.adapters.keys import (
    CUSTOMER_PREFIX,
    GSI1,
    METER_PREFIX,
    PLAN_PREFIX,
    customer_key,
    customers_index,
    meter_key,
    meters_partition,
    plan_key,
    plans_index,
    subscription_key,
    tenant_prefix,
)
from billing.domain import canonical_json
from billing.domain.billing_runs import DuePeriod
from billing.domain.catalog import CustomerProfile, MeterRecord, PlanRecord, SubscriptionRecord, parse_instant
from billing.domain.errors import Conflict, StaleRevision
from billing.domain.pages import Page
from billing.domain.rating.meters import Meter
from billing.domain.rating.periods import format_instant
from billing.domain.rating.plans import Plan
from billing.domain.usage_events import format_timestamp

T = TypeVar("T")


def _data(item: dict[str, Any]) -> Any:
    return canonical_json.loads(item["data"]["S"])


def _revision(item: dict[str, Any]) -> int:
    return int(item.get("revision", {}).get("N", "0"))


class DynamoCatalogStore:
    """The catalog port of `billing.services.catalog` on the billing table (low-level client)."""

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self._table = table_name
        self._client = client if client is not None else boto3.client("dynamodb")

    # ---- meters ----------------------------------------------------------------------------------------

    def add_meter(self, tenant_id: str, record: MeterRecord) -> None:
        item = {
            **meter_key(tenant_id, record.meter.key),
            **self._common("meter", tenant_id, record.created_at),
            "data": {"S": canonical_json.dumps(self._meter_data(record))},
        }
        self._put_new(item, Conflict(f"meter {record.meter.key!r} already exists", code="meter_exists"))

    def get_meter(self, tenant_id: str, key: str) -> MeterRecord | None:
        item = self._get(meter_key(tenant_id, key))
        return None if item is None else self._meter_from(item)

    def list_meters(self, tenant_id: str, limit: int, cursor: str | None) -> Page[MeterRecord]:
        return self._page(
            index=None,
            partition=meters_partition(tenant_id),
            prefix=METER_PREFIX,
            limit=limit,
            cursor=cursor,
            convert=self._meter_from,
            tenant_id=tenant_id,
        )

    def all_meters(self, tenant_id: str) -> list[Meter]:
        pages = self._call(
            lambda: list(
                self._client.get_paginator("query").paginate(
                    TableName=self._table,
                    ConsistentRead=True,
                    KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                    ExpressionAttributeValues={
                        ":pk": {"S": meters_partition(tenant_id)},
                        ":prefix": {"S": METER_PREFIX},
                    },
                )
            )
        )
        return [self._meter_from(item).meter for page in pages for item in page.get("Items", [])]

    @staticmethod
    def _meter_data(record: MeterRecord) -> dict[str, Any]:
        return {"meter": record.meter.to_json(), "created_at": format_instant(record.created_at)}

    @staticmethod
    def _meter_from(item: dict[str, Any]) -> MeterRecord:
        data = _data(item)
        return MeterRecord(Meter.from_json(data["meter"]), parse_instant(data["created_at"], "created_at"))

    # ---- customers -------------------------------------------------------------------------------------

    def add_customer(self, tenant_id: str, profile: CustomerProfile) -> None:
        self._put_new(
            self._customer_item(tenant_id, profile, revision=0),
            Conflict(f"customer {profile.id!r} already exists", code="customer_exists"),
        )

    def get_customer(self, tenant_id: str, customer_id: str) -> CustomerProfile | None:
        item = self._get(customer_key(tenant_id, customer_id))
        return None if item is None else records.customer_from_record(_data(item), _revision(item))

    def list_customers(self, tenant_id: str, limit: int, cursor: str | None) -> Page[CustomerProfile]:
        return self._page(
            index=GSI1,
            partition=customers_index(tenant_id),
            prefix=CUSTOMER_PREFIX,
            limit=limit,
            cursor=cursor,
            convert=lambda item: records.customer_from_record(_data(item), _revision(item)),
            tenant_id=tenant_id,
        )

    def save_customer(self, tenant_id: str, profile: CustomerProfile) -> None:
        try:
            self._call(lambda: self._client.put_item(**self._customer_put(tenant_id, profile)))
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise StaleRevision(profile.id) from None
            raise

    def _customer_item(self, tenant_id: str, profile: CustomerProfile, *, revision: int) -> dict[str, Any]:
        return {
            **customer_key(tenant_id, profile.id),
            **self._common("customer", tenant_id, profile.created_at),
            "gsi1pk": {"S": customers_index(tenant_id)},
            "gsi1sk": {"S": CUSTOMER_PREFIX + profile.id},
            "customer_id": {"S": profile.id},
            "revision": {"N": str(revision)},
            "data": {"S": canonical_json.dumps(records.customer_record(profile))},
        }

    def _customer_put(self, tenant_id: str, profile: CustomerProfile) -> dict[str, Any]:
        """A Put of the customer's next revision, on the condition that it is still at `profile.revision`."""
        return {
            "TableName": self._table,
            "Item": self._customer_item(tenant_id, profile, revision=profile.revision + 1),
            "ConditionExpression": "revision = :read",
            "ExpressionAttributeValues": {":read": {"N": str(profile.revision)}},
        }

    # ---- plans -----------------------------------------------------------------------------------------

    def add_plan(self, tenant_id: str, record: PlanRecord) -> None:
        plan = record.plan
        data = {"S": canonical_json.dumps(self._plan_data(record))}
        version_item = {
            **plan_key(tenant_id, plan.id, plan.version),
            **self._common("plan_version", tenant_id, record.created_at),
            "plan_id": {"S": plan.id},
            "version": {"N": str(plan.version)},
            "data": data,
        }
        head_item = {
            **plan_key(tenant_id, plan.id),
            **self._common("plan", tenant_id, record.created_at),
            "gsi1pk": {"S": plans_index(tenant_id)},
            "gsi1sk": {"S": PLAN_PREFIX + plan.id},
            "plan_id": {"S": plan.id},
            "latest_version": {"N": str(plan.version)},
            "data": data,
        }
        head_put: dict[str, Any] = {"TableName": self._table, "Item": head_item}
        if plan.version == 1:
            head_put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            # Only the successor of the latest version may be published: two concurrent publishers
            # cannot both create version n+1.
            head_put["ConditionExpression"] = "latest_version = :previous"
            head_put["ExpressionAttributeValues"] = {":previous": {"N": str(plan.version - 1)}}
        reasons = self._transact(
            [
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": version_item,
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {"Put": head_put},
            ]
        )
        if reasons is None:
            return
        if plan.version == 1:
            raise Conflict(f"plan {plan.id!r} already exists", code="plan_exists")
        raise StaleRevision(plan.id)

    def get_plan(self, tenant_id: str, plan_id: str, version: int | None = None) -> PlanRecord | None:
        item = self._get(plan_key(tenant_id, plan_id, version))
        return None if item is None else self._plan_from(item)

    def list_plans(self, tenant_id: str, limit: int, cursor: str | None) -> Page[PlanRecord]:
        return self._page(
            index=GSI1,
            partition=plans_index(tenant_id),
            prefix=PLAN_PREFIX,
            limit=limit,
            cursor=cursor,
            convert=self._plan_from,
            tenant_id=tenant_id,
        )

    @staticmethod
    def _plan_data(record: PlanRecord) -> dict[str, Any]:
        return {"plan": record.plan.to_json(), "created_at": format_instant(record.created_at)}

    @staticmethod
    def _plan_from(item: dict[str, Any]) -> PlanRecord:
        data = _data(item)
        plan = Plan.from_json(data["plan"], version=int(data["plan"]["version"]))
        return PlanRecord(plan, parse_instant(data["created_at"], "created_at"))

    # ---- subscriptions ---------------------------------------------------------------------------------

    def add_subscription(
        self, tenant_id: str, subscription: SubscriptionRecord, customer: CustomerProfile
    ) -> None:
        put_subscription = {
            "TableName": self._table,
            "Item": self._subscription_item(tenant_id, subscription, revision=0),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        # The subscription's first period becomes due in the same transaction: a subscription is never
        # without a period waiting to be closed (cycle close replaces it by the next one).
        first = customer.billing.cycle.period_containing(subscription.start)
        first_due = DuePeriod(
            tenant_id,
            subscription.id,
            customer.id,
            format_timestamp(first.start_utc),
            format_timestamp(first.end_utc),
        )
        reasons = self._transact(
            [
                {"Put": put_subscription},
                {"Put": self._customer_put(tenant_id, customer)},
                {"Put": {"TableName": self._table, "Item": due_item(first_due)}},
            ]
        )
        if reasons is None:
            return
        if reasons[:1] == ["ConditionalCheckFailed"]:
            raise Conflict(f"subscription {subscription.id!r} already exists", code="subscription_exists")
        raise StaleRevision(customer.id)

    def get_subscription(self, tenant_id: str, subscription_id: str) -> SubscriptionRecord | None:
        item = self._get(subscription_key(tenant_id, subscription_id))
        return None if item is None else records.subscription_from_record(_data(item), _revision(item))

    def save_subscription(
        self, tenant_id: str, subscription: SubscriptionRecord, customer: CustomerProfile | None = None
    ) -> None:
        put_subscription = {
            "TableName": self._table,
            "Item": self._subscription_item(tenant_id, subscription, revision=subscription.revision + 1),
            "ConditionExpression": "revision = :read",
            "ExpressionAttributeValues": {":read": {"N": str(subscription.revision)}},
        }
        writes: list[dict[str, Any]] = [{"Put": put_subscription}]
        if customer is not None:
            writes.append({"Put": self._customer_put(tenant_id, customer)})
        if self._transact(writes) is not None:
            raise StaleRevision(subscription.id)

    def _subscription_item(
        self, tenant_id: str, subscription: SubscriptionRecord, *, revision: int
    ) -> dict[str, Any]:
        return {
            **subscription_key(tenant_id, subscription.id),
            **self._common("subscription", tenant_id, subscription.created_at),
            "customer_id": {"S": subscription.customer_id},
            "status": {"S": subscription.status},
            "revision": {"N": str(revision)},
            "data": {"S": canonical_json.dumps(records.subscription_record(subscription))},
        }

    # ---- DynamoDB --------------------------------------------------------------------------------------

    @staticmethod
    def _common(entity: str, tenant_id: str, created_at: Any) -> dict[str, Any]:
        return {
            "entity": {"S": entity},
            "tenant_id": {"S": tenant_id},
            "created_at": {"S": format_instant(created_at)},
        }

    def _call(self, operation: Callable[[], T]) -> T:
        return call(self._table, operation)

    def _get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        response = self._call(
            lambda: self._client.get_item(TableName=self._table, Key=key, ConsistentRead=True)
        )
        item: dict[str, Any] | None = response.get("Item")
        return item

    def _put_new(self, item: dict[str, Any], exists: Conflict) -> None:
        try:
            self._call(
                lambda: self._client.put_item(
                    TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)"
                )
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise exists from None
            raise

    def _transact(self, writes: list[dict[str, Any]]) -> list[str] | None:
        """Run the writes as one transaction; None when it committed, else each write's failure code."""
        return transact(self._client, self._table, writes)

    def _page(
        self,
        *,
        index: str | None,
        partition: str,
        prefix: str,
        limit: int,
        cursor: str | None,
        convert: Callable[[dict[str, Any]], T],
        tenant_id: str,
    ) -> Page[T]:
        return query_page(
            self._client,
            self._table,
            index=index,
            partition=partition,
            prefix=prefix,
            limit=limit,
            cursor=cursor,
            convert=convert,
            # Through an index, the table key must still be one of this tenant's items.
            table_prefix=tenant_prefix(tenant_id),
        )
