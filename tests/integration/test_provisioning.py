"""Local resources are created from `billing.resources`, the specs the CDK app uses too."""

from __future__ import annotations

import json

import boto3
import pytest

from billing import resources
from billing.adapters.provisioning import create_all


@pytest.mark.parametrize("spec", resources.TABLES, ids=lambda spec: spec.logical_id)
def test_tables_match_their_specs(aws: dict[str, str], spec: resources.TableSpec) -> None:
    table = boto3.client("dynamodb").describe_table(TableName=aws[spec.env_var])["Table"]

    keys = {entry["KeyType"]: entry["AttributeName"] for entry in table["KeySchema"]}
    assert keys.get("HASH") == spec.partition_key.name
    assert keys.get("RANGE") == (spec.sort_key.name if spec.sort_key else None)
    assert {index["IndexName"] for index in table.get("GlobalSecondaryIndexes", [])} == {
        index.name for index in spec.indexes
    }
    assert table.get("StreamSpecification", {}).get("StreamViewType") == spec.stream


def test_ingest_queue_redrives_to_its_dlq(aws: dict[str, str]) -> None:
    sqs = boto3.client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=aws["INGEST_QUEUE_URL"], AttributeNames=["All"])[
        "Attributes"
    ]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=aws["INGEST_DLQ_URL"], AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]

    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": resources.INGEST_QUEUE.max_receive_count,
    }
    assert attributes["VisibilityTimeout"] == str(resources.INGEST_QUEUE.visibility_timeout_seconds)


def test_creating_twice_changes_nothing(aws: dict[str, str]) -> None:
    assert create_all(boto3.client("dynamodb"), boto3.client("sqs"), boto3.client("kms")) == aws
