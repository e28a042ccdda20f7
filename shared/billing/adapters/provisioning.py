"""Create the tables, queues and keys of `billing.resources` through boto3.

Used by the local runtime (against moto server) and by tests (against moto in-process); in AWS the CDK
app creates the same resources from the same specs.
"""

from __future__ import annotations

import json
from typing import Any

from billing import resources
from billing.resources import KeySpec, QueueSpec, TableSpec


def table_definition(spec: TableSpec, name: str | None = None) -> dict[str, Any]:
    """The CreateTable request for a spec (on-demand billing, as in AWS)."""
    keys = [spec.partition_key] + ([spec.sort_key] if spec.sort_key else [])
    for index in spec.indexes:
        keys += [index.partition_key] + ([index.sort_key] if index.sort_key else [])
    attributes = {key.name: key.type for key in keys}
    request: dict[str, Any] = {
        "TableName": name or spec.local_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": n, "AttributeType": t} for n, t in attributes.items()],
        "KeySchema": _key_schema(spec.partition_key, spec.sort_key),
    }
    if spec.indexes:
        request["GlobalSecondaryIndexes"] = [
            {
                "IndexName": index.name,
                "KeySchema": _key_schema(index.partition_key, index.sort_key),
                "Projection": {"ProjectionType": "ALL"},
            }
            for index in spec.indexes
        ]
    if spec.stream:
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": spec.stream}
    return request


def _key_schema(partition: resources.Key, sort: resources.Key | None) -> list[dict[str, str]]:
    schema = [{"AttributeName": partition.name, "KeyType": "HASH"}]
    if sort:
        schema.append({"AttributeName": sort.name, "KeyType": "RANGE"})
    return schema


def create_tables(dynamodb: Any, specs: tuple[TableSpec, ...] = resources.TABLES) -> dict[str, str]:
    """Create each table if missing; returns {env var: table name}."""
    existing = set(dynamodb.list_tables()["TableNames"])
    env: dict[str, str] = {}
    for spec in specs:
        if spec.local_name not in existing:
            dynamodb.create_table(**table_definition(spec))
            if spec.ttl_attribute:
                dynamodb.update_time_to_live(
                    TableName=spec.local_name,
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute},
                )
        env[spec.env_var] = spec.local_name
    return env


def create_queues(sqs: Any, specs: tuple[QueueSpec, ...] = resources.QUEUES) -> dict[str, str]:
    """Create each queue (dead-letter queues first); returns {env var: queue URL}."""
    urls: dict[str, str] = {}
    arns: dict[str, str] = {}
    ordered = sorted(specs, key=lambda spec: spec.dead_letter is not None)
    for spec in ordered:
        attributes = {
            "VisibilityTimeout": str(spec.visibility_timeout_seconds),
            "MessageRetentionPeriod": str(spec.retention_seconds),
            **spec.extra_attributes,
        }
        if spec.dead_letter is not None:
            attributes["RedrivePolicy"] = json.dumps(
                {
                    "deadLetterTargetArn": arns[spec.dead_letter.logical_id],
                    "maxReceiveCount": spec.max_receive_count,
                }
            )
        url = sqs.create_queue(QueueName=spec.local_name, Attributes=attributes)["QueueUrl"]
        arns[spec.logical_id] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        urls[spec.env_var] = url
    return urls


LOCAL_ALIAS_PREFIX = "billing-local"


def create_keys(kms: Any, specs: tuple[KeySpec, ...] = resources.KEYS) -> dict[str, str]:
    """Create each KMS key under its alias unless the alias exists; returns {env var: key ARN}."""
    aliases = {
        alias["AliasName"]: alias.get("TargetKeyId")
        for page in kms.get_paginator("list_aliases").paginate()
        for alias in page.get("Aliases", [])
    }
    env: dict[str, str] = {}
    for spec in specs:
        alias = spec.alias(LOCAL_ALIAS_PREFIX)
        key_id = aliases.get(alias)
        if key_id is None:
            key_id = kms.create_key(Description=spec.description)["KeyMetadata"]["KeyId"]
            kms.create_alias(AliasName=alias, TargetKeyId=key_id)
        env[spec.env_var] = kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]
    return env


def create_all(dynamodb: Any, sqs: Any, kms: Any) -> dict[str, str]:
    """Create every table, queue and key; returns the environment variables the functions need."""
    return {**create_tables(dynamodb), **create_queues(sqs), **create_keys(kms)}
