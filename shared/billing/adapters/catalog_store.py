"""A tenant's catalog in the billing table: meters, customers, plan versions, subscriptions.

Items (billing table, pk/sk + gsi1; `data` is the object as canonical JSON, numbers exact):
  meter         pk=T#<tenant>#METERS               sk=METER#<key>
  customer      pk=T#<tenant>#CUSTOMER#<id>        sk=PROFILE       revision
                gsi1pk=T#<tenant>#CUSTOMERS        gsi1sk=CUSTOMER#<id>        (the tenant's customers)
  plan head     pk=T#<tenant>#PLAN#<id>            sk=HEAD          latest_version, data = latest version
                gsi1pk=T#<tenant>#PLANS            gsi1sk=PLAN#<id>            (the tenant's plans)
  plan version  pk=T#<tenant>#PLAN#<id>            sk=VERSION#<000001>  version  (immutable)
  subscription  pk=T#<tenant>#SUBSCRIPTION#<id>    sk=PROFILE       customer_id, status, revision
Every item also has entity, tenant_id and created_at. Customer items hold personal data (name, e-mail,
tax ids): stream consumers must pick items by `entity` and never log `data`.

The tenant is part of every key, so a request can only ever reach its own tenant's items. Creates are
conditional Puts (`attribute_not_exists`), updates are conditional on the `revision` that was read,
and writes that span items (a subscription and its customer; a plan version and its head) are one
transaction. No scans: reads are GetItem or Query (lists page with `Limit` and an opaque cursor, the
base64 of the last key).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any, TypeVar

import boto3
from botocore.exceptions import ClientError

from billing.adapters.aws_errors import error_code, is_transient
from billing.adapters.billing_runs import DuePeriod, due_item
from billing.domain import canonical_json
from billing.domain.catalog import (
    CustomerProfile,
    MeterRecord,
    PlanRecord,
    SubscriptionRecord,
    parse_instant,
)
from billing.domain.errors import Conflict, MalformedRequest, TransientFailure
from billing.domain.rating.meters import Meter
from billing.domain.rating.periods import format_instant
from billing.domain.rating.plans import Plan
from billing.domain.usage_events import format_timestamp
from billing.services.catalog import Page, StaleRevision

GSI1 = "gsi1"
PROFILE_SK = "PROFILE"
HEAD_SK = "HEAD"
METER_PREFIX = "METER#"
VERSION_PREFIX = "VERSION#"
CUSTOMER_PREFIX = "CUSTOMER#"
PLAN_PREFIX = "PLAN#"
MAX_CURSOR_LENGTH = 4096

T = TypeVar("T")


def meters_partition(tenant_id: str) -> str:
    return f"T#{tenant_id}#METERS"


def customer_partition(tenant_id: str, customer_id: str) -> str:
    return f"T#{tenant_id}#CUSTOMER#{customer_id}"


def customers_index_partition(tenant_id: str) -> str:
    return f"T#{tenant_id}#CUSTOMERS"


def plan_partition(tenant_id: str, plan_id: str) -> str:
    return f"T#{tenant_id}#PLAN#{plan_id}"


def plans_index_partition(tenant_id: str) -> str:
    return f"T#{tenant_id}#PLANS"


def subscription_partition(tenant_id: str, subscription_id: str) -> str:
    return f"T#{tenant_id}#SUBSCRIPTION#{subscription_id}"


def version_sort_key(version: int) -> str:
    return f"{VERSION_PREFIX}{version:06d}"


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _data(item: dict[str, Any]) -> Any:
    return canonical_json.loads(item["data"]["S"])


def _revision(item: dict[str, Any]) -> int:
    return int(item.get("revision", {}).get("N", "0"))


class DynamoCatalogStore:
    """`billing.services.catalog.CatalogStore` on the billing table (low-level client)."""

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self._table = table_name
        self._client = client if client is not None else boto3.client("dynamodb")

    # ---- meters ----------------------------------------------------------------------------------------

    def add_meter(self, tenant_id: str, record: MeterRecord) -> None:
        item = {
            **_key(meters_partition(tenant_id), METER_PREFIX + record.meter.key),
            **self._common("meter", tenant_id, record.created_at),
            "data": {"S": canonical_json.dumps(self._meter_data(record))},
        }
        self._put_new(item, Conflict(f"meter {record.meter.key!r} already exists", code="meter_exists"))

    def get_meter(self, tenant_id: str, key: str) -> MeterRecord | None:
        item = self._get(_key(meters_partition(tenant_id), METER_PREFIX + key))
        return None if item is None else self._meter_from(item)

    def list_meters(self, tenant_id: str, limit: int, cursor: str | None) -> Page[MeterRecord]:
        return self._page(
            index=None,
            partition=meters_partition(tenant_id),
            prefix=METER_PREFIX,
            limit=limit,
            cursor=cursor,
            convert=self._meter_from,
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
        item = self._get(_key(customer_partition(tenant_id, customer_id), PROFILE_SK))
        return None if item is None else CustomerProfile.from_record(_data(item), _revision(item))

    def list_customers(self, tenant_id: str, limit: int, cursor: str | None) -> Page[CustomerProfile]:
        return self._page(
            index=GSI1,
            partition=customers_index_partition(tenant_id),
            prefix=CUSTOMER_PREFIX,
            limit=limit,
            cursor=cursor,
            convert=lambda item: CustomerProfile.from_record(_data(item), _revision(item)),
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
            **_key(customer_partition(tenant_id, profile.id), PROFILE_SK),
            **self._common("customer", tenant_id, profile.created_at),
            "gsi1pk": {"S": customers_index_partition(tenant_id)},
            "gsi1sk": {"S": CUSTOMER_PREFIX + profile.id},
            "customer_id": {"S": profile.id},
            "revision": {"N": str(revision)},
            "data": {"S": canonical_json.dumps(profile.to_record())},
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
        partition = plan_partition(tenant_id, plan.id)
        version_item = {
            **_key(partition, version_sort_key(plan.version)),
            **self._common("plan_version", tenant_id, record.created_at),
            "plan_id": {"S": plan.id},
            "version": {"N": str(plan.version)},
            "data": data,
        }
        head_item = {
            **_key(partition, HEAD_SK),
            **self._common("plan", tenant_id, record.created_at),
            "gsi1pk": {"S": plans_index_partition(tenant_id)},
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
        sort_key = HEAD_SK if version is None else version_sort_key(version)
        item = self._get(_key(plan_partition(tenant_id, plan_id), sort_key))
        return None if item is None else self._plan_from(item)

    def list_plans(self, tenant_id: str, limit: int, cursor: str | None) -> Page[PlanRecord]:
        return self._page(
            index=GSI1,
            partition=plans_index_partition(tenant_id),
            prefix=PLAN_PREFIX,
            limit=limit,
            cursor=cursor,
            convert=self._plan_from,
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
        item = self._get(_key(subscription_partition(tenant_id, subscription_id), PROFILE_SK))
        return None if item is None else SubscriptionRecord.from_record(_data(item), _revision(item))

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
            **_key(subscription_partition(tenant_id, subscription.id), PROFILE_SK),
            **self._common("subscription", tenant_id, subscription.created_at),
            "customer_id": {"S": subscription.customer_id},
            "status": {"S": subscription.status},
            "revision": {"N": str(revision)},
            "data": {"S": canonical_json.dumps(subscription.to_record())},
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
        try:
            return operation()
        except ClientError as exc:
            if is_transient(exc):
                raise TransientFailure(f"billing table: {error_code(exc)}") from exc
            raise

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
        try:
            self._call(lambda: self._client.transact_write_items(TransactItems=writes))
        except ClientError as exc:
            if error_code(exc) != "TransactionCanceledException":
                raise
            reasons = [
                str(reason.get("Code") or "None") for reason in exc.response.get("CancellationReasons", [])
            ]
            if "ConditionalCheckFailed" not in reasons:
                # Cancelled for another reason (a conflicting concurrent transaction): worth a retry.
                raise TransientFailure("billing table: transaction conflict") from exc
            return reasons
        return None

    def _page(
        self,
        *,
        index: str | None,
        partition: str,
        prefix: str,
        limit: int,
        cursor: str | None,
        convert: Callable[[dict[str, Any]], T],
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
        )


def query_page(
    client: Any,
    table: str,
    *,
    index: str | None,
    partition: str,
    prefix: str,
    limit: int,
    cursor: str | None,
    convert: Callable[[dict[str, Any]], T],
    table_prefix: str | None = None,
) -> Page[T]:
    """One page of an item collection; one item more than asked tells whether there is another page.

    `table_prefix`: through an index, what every listed item's table key starts with (by default the
    index partition without its last part).
    """
    pk, sk = ("gsi1pk", "gsi1sk") if index else ("pk", "sk")
    request: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": f"{pk} = :pk AND begins_with({sk}, :prefix)",
        "ExpressionAttributeValues": {":pk": {"S": partition}, ":prefix": {"S": prefix}},
        "Limit": limit + 1,
    }
    if index:
        request["IndexName"] = index
    else:
        request["ConsistentRead"] = True
    key_names = ("pk", "sk", pk, sk)
    if cursor is not None:
        request["ExclusiveStartKey"] = decode_cursor(
            cursor, key_names, pk, partition, sk, prefix, table_prefix
        )
    items: list[dict[str, Any]] = []
    while True:
        try:
            response = client.query(**request)
        except ClientError as exc:
            if is_transient(exc):
                raise TransientFailure(f"{table}: {error_code(exc)}") from exc
            raise
        items += response.get("Items", [])
        last = response.get("LastEvaluatedKey")
        if len(items) > limit or not last:
            break
        request["ExclusiveStartKey"] = last
    if len(items) <= limit:
        return Page([convert(item) for item in items], None)
    kept = items[:limit]
    next_key = {name: kept[-1][name] for name in dict.fromkeys(key_names)}
    return Page([convert(item) for item in kept], encode_cursor(next_key))


def encode_cursor(key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, sort_keys=True, separators=(",", ":")).encode()).decode()


def decode_cursor(
    cursor: str,
    key_names: tuple[str, ...],
    pk: str,
    partition: str,
    sk: str,
    prefix: str,
    table_prefix: str | None = None,
) -> dict[str, Any]:
    """A cursor back to an ExclusiveStartKey, checked to lie in the partition being listed."""
    invalid = MalformedRequest(
        "cursor is not a cursor of this list; start again without it", code="invalid_cursor"
    )
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise invalid
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, binascii.Error, UnicodeError):
        raise invalid from None
    if not isinstance(key, dict) or set(key) != set(key_names):
        raise invalid
    for value in key.values():
        if not isinstance(value, dict) or set(value) != {"S"} or not isinstance(value["S"], str):
            raise invalid
        if not 1 <= len(value["S"]) <= 1024:
            raise invalid
    if key[pk]["S"] != partition or not key[sk]["S"].startswith(prefix):
        raise invalid
    # Through an index, the table key must still be one of this tenant's items of the listed kind.
    expected = table_prefix if table_prefix is not None else partition.rsplit("#", 1)[0] + "#"
    if pk != "pk" and not key["pk"]["S"].startswith(expected):
        raise invalid
    return key
