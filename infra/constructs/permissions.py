"""Least-privilege grants written out action by action.

CDK's `grant_*` helpers add wildcard actions (`kms:GenerateDataKey*`, `kms:ReEncrypt*`) and index
wildcards (`table/index/*`); these helpers name exact actions and the exact indexes of the spec.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs

from billing.resources import TableSpec

KEY_READ = ("kms:Decrypt", "kms:DescribeKey")
KEY_WRITE = (*KEY_READ, "kms:Encrypt", "kms:GenerateDataKey")
# A TransactWriteItems call is authorized per item by these actions; IAM has no TransactWriteItems action.
TRANSACT_WRITE = ("dynamodb:ConditionCheckItem", "dynamodb:PutItem", "dynamodb:UpdateItem")


def grant_table(
    grantee: iam.IGrantable,
    table: dynamodb.ITable,
    spec: TableSpec,
    actions: Sequence[str],
    *,
    with_indexes: bool = False,
) -> None:
    """Allow `actions` on the table, and on each of its spec's indexes when `with_indexes`."""
    resources = [table.table_arn]
    if with_indexes:
        resources += [f"{table.table_arn}/index/{index.name}" for index in spec.indexes]
    grantee.grant_principal.add_to_principal_policy(
        iam.PolicyStatement(actions=sorted(set(actions)), resources=resources)
    )


def grant_key(grantee: iam.IGrantable, key: kms.IKey, *, write: bool) -> None:
    """Use of the data key: decrypt only, or decrypt and encrypt (for writers)."""
    grantee.grant_principal.add_to_principal_policy(
        iam.PolicyStatement(actions=list(KEY_WRITE if write else KEY_READ), resources=[key.key_arn])
    )


def grant_send(grantee: iam.IGrantable, queue: sqs.IQueue) -> None:
    """SendMessage (which also authorizes SendMessageBatch); the key use is granted with grant_key."""
    grantee.grant_principal.add_to_principal_policy(
        iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[queue.queue_arn])
    )
