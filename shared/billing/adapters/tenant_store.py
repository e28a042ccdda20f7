"""Tenants and hashed API keys in the billing table, and tenants' API Gateway usage-plan keys.

Items (billing table, keys from `billing.adapters.keys`):
  tenant   tenant_key        tenant_id, name, created_at, pii_policy{allow?, deny}, usage_key
  API key  api_key_key       key_id, tenant_id, scope, created_at, revoked_at?; gsi1: the tenant's keys
The raw key is never stored: the authorizer finds a key with one GetItem on the hash of what it received.
"""

from __future__ import annotations

from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from billing.adapters.keys import APIKEY_PREFIX, GSI1, api_key_key, api_keys_index, tenant_key
from billing.domain.api_keys import ApiKeyRecord
from billing.domain.tenants import (
    ApiKeyExists,
    ApiKeyNotFound,
    PiiPolicy,
    Tenant,
    TenantExists,
    TenantNotFound,
)

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(value) for name, value in values.items() if value is not None}


def _from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _deserializer.deserialize(value) for name, value in item.items()}


def _pii_policy_value(policy: PiiPolicy) -> dict[str, Any]:
    value: dict[str, Any] = {"deny": list(policy.deny)}
    if policy.allow is not None:
        value["allow"] = list(policy.allow)
    return value


def _tenant_from_item(item: dict[str, Any]) -> Tenant:
    values = _from_item(item)
    policy = values.get("pii_policy") or {}
    return Tenant(
        tenant_id=values["tenant_id"],
        name=values["name"],
        created_at=values["created_at"],
        usage_key=values["usage_key"],
        pii_policy=PiiPolicy(
            allow=tuple(policy["allow"]) if policy.get("allow") is not None else None,
            deny=tuple(policy.get("deny") or ()),
        ),
    )


def _api_key_from_item(item: dict[str, Any]) -> ApiKeyRecord:
    values = _from_item(item)
    return ApiKeyRecord(
        key_id=values["key_id"],
        tenant_id=values["tenant_id"],
        scope=values["scope"],
        created_at=values["created_at"],
        revoked_at=values.get("revoked_at"),
    )


def _is_condition_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class DynamoTenantStore:
    """`billing.services.tenants.TenantStore` on the billing table (low-level client, no scans)."""

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self._table = table_name
        self._client = client if client is not None else boto3.client("dynamodb")

    def create_tenant(self, tenant: Tenant) -> None:
        item = _to_item(
            {
                "tenant_id": tenant.tenant_id,
                "name": tenant.name,
                "created_at": tenant.created_at,
                "usage_key": tenant.usage_key,
                "entity": "tenant",
            }
        )
        item.update(tenant_key(tenant.tenant_id))
        item["pii_policy"] = _serializer.serialize(_pii_policy_value(tenant.pii_policy))
        try:
            self._client.put_item(
                TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                raise TenantExists(tenant.tenant_id) from exc
            raise

    def get_tenant(self, tenant_id: str) -> Tenant | None:
        response = self._client.get_item(
            TableName=self._table, Key=tenant_key(tenant_id), ConsistentRead=True
        )
        item = response.get("Item")
        return _tenant_from_item(item) if item else None

    def set_pii_policy(self, tenant_id: str, policy: PiiPolicy) -> Tenant:
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=tenant_key(tenant_id),
                UpdateExpression="SET pii_policy = :policy",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":policy": _serializer.serialize(_pii_policy_value(policy))},
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                raise TenantNotFound(tenant_id) from exc
            raise
        return _tenant_from_item(response["Attributes"])

    def create_api_key(self, record: ApiKeyRecord, key_hash: str) -> None:
        """Store the key only if its tenant exists, in one transaction (no key can outlive a check)."""
        item = _to_item(
            {
                "key_id": record.key_id,
                "tenant_id": record.tenant_id,
                "scope": record.scope.value,
                "created_at": record.created_at,
                "revoked_at": record.revoked_at,
                "gsi1pk": api_keys_index(record.tenant_id),
                "gsi1sk": APIKEY_PREFIX + record.key_id,
                "entity": "api_key",
            }
        )
        item.update(api_key_key(key_hash))
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "ConditionCheck": {
                            "TableName": self._table,
                            "Key": tenant_key(record.tenant_id),
                            "ConditionExpression": "attribute_exists(pk)",
                        }
                    },
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": item,
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                ]
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            reasons = [reason.get("Code") for reason in exc.response.get("CancellationReasons", [])]
            if reasons[:1] == ["ConditionalCheckFailed"]:
                raise TenantNotFound(record.tenant_id) from exc
            if reasons[1:2] == ["ConditionalCheckFailed"]:
                raise ApiKeyExists(record.key_id) from exc
            raise

    def find_api_key_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        # Consistent read: a revocation takes effect on the next authorization, not "eventually".
        response = self._client.get_item(
            TableName=self._table, Key=api_key_key(key_hash), ConsistentRead=True
        )
        item = response.get("Item")
        return _api_key_from_item(item) if item else None

    def list_api_keys(self, tenant_id: str) -> list[ApiKeyRecord]:
        paginator = self._client.get_paginator("query")
        pages = paginator.paginate(
            TableName=self._table,
            IndexName=GSI1,
            KeyConditionExpression="gsi1pk = :pk AND begins_with(gsi1sk, :prefix)",
            ExpressionAttributeValues={
                ":pk": {"S": api_keys_index(tenant_id)},
                ":prefix": {"S": APIKEY_PREFIX},
            },
        )
        return [_api_key_from_item(item) for page in pages for item in page.get("Items", [])]

    def revoke_api_key(self, tenant_id: str, key_id: str, revoked_at: str) -> ApiKeyRecord:
        # gsi1 is scoped by tenant, so another tenant's key id is simply not found here.
        # (GSIs are eventually consistent: a key issued a moment ago may need a retry to be revoked.)
        response = self._client.query(
            TableName=self._table,
            IndexName=GSI1,
            KeyConditionExpression="gsi1pk = :pk AND gsi1sk = :sk",
            ExpressionAttributeValues={
                ":pk": {"S": api_keys_index(tenant_id)},
                ":sk": {"S": APIKEY_PREFIX + key_id},
            },
        )
        items = response.get("Items", [])
        if not items:
            raise ApiKeyNotFound(tenant_id, key_id)
        key = {"pk": items[0]["pk"], "sk": items[0]["sk"]}
        try:
            updated = self._client.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression="SET revoked_at = :at",
                ConditionExpression=(
                    "attribute_exists(pk) AND tenant_id = :tenant AND attribute_not_exists(revoked_at)"
                ),
                ExpressionAttributeValues={":at": {"S": revoked_at}, ":tenant": {"S": tenant_id}},
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise
            current = self._client.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item")
            if current and _from_item(current).get("tenant_id") == tenant_id:
                return _api_key_from_item(current)  # already revoked: revoking is idempotent
            raise ApiKeyNotFound(tenant_id, key_id) from exc
        return _api_key_from_item(updated["Attributes"])


class ApiGatewayUsagePlans:
    """`billing.services.tenants.UsagePlanPort` on an API Gateway (REST) usage plan."""

    def __init__(self, usage_plan_id: str, client: Any | None = None) -> None:
        self._usage_plan_id = usage_plan_id
        self._client = client if client is not None else boto3.client("apigateway")

    def attach_key(self, name: str, value: str) -> str:
        key_id = self._find_key(name, value)
        if key_id is None:
            key_id = self._client.create_api_key(
                name=name,
                value=value,
                enabled=True,
                description="Usage identifier of a billing tenant (returned by the Lambda authorizer)",
            )["id"]
        try:
            self._client.create_usage_plan_key(
                usagePlanId=self._usage_plan_id, keyId=key_id, keyType="API_KEY"
            )
        except ClientError as exc:
            # Already in the plan (a retried attach): that is the state we want.
            if exc.response.get("Error", {}).get("Code") != "ConflictException":
                raise
        return str(key_id)

    def _find_key(self, name: str, value: str) -> str | None:
        paginator = self._client.get_paginator("get_api_keys")
        for page in paginator.paginate(nameQuery=name, includeValues=True):
            for item in page.get("items", []):
                if item.get("name") == name and item.get("value") == value:
                    return str(item["id"])
        return None
