"""Least-privilege grants written out action by action.

CDK's `grant_*` helpers add wildcard actions (`kms:GenerateDataKey*`, `kms:ReEncrypt*`) and index
wildcards (`table/index/*`); these helpers name exact actions, and the exact indexes a function queries.
`grant_function_access` turns a function spec's access declarations (`billing.resources`) into grants.
"""

from __future__ import annotations

from collections.abc import Iterable

import aws_cdk as cdk
import jsii
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn

from billing.resources import (
    Access,
    KeyAccess,
    QueueAccess,
    StateMachineAccess,
    StateMachineSpec,
    TableAccess,
)
from infra.constructs.registry import ResourceRegistry

KEY_READ = ("kms:Decrypt", "kms:DescribeKey")
KEY_WRITE = (*KEY_READ, "kms:Encrypt", "kms:GenerateDataKey")
# Table actions that only read encrypted items: the key is used to decrypt, never to encrypt.
_READ_ONLY_TABLE_ACTIONS = frozenset(
    {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:ConditionCheckItem"}
)
# State machine actions that name an execution rather than the state machine.
_EXECUTION_ACTIONS = frozenset({"states:DescribeExecution"})


def grant_function_access(role: iam.Role, accesses: Iterable[Access], registry: ResourceRegistry) -> None:
    """Every grant the accesses declare, plus the data key: decrypt for readers, encrypt for writers."""
    accesses = tuple(accesses)
    for access in accesses:
        if isinstance(access, TableAccess):
            grant_table(role, registry.table(access.table), access)
        elif isinstance(access, QueueAccess):
            grant_queue(role, registry.queue(access.queue), access)
        elif isinstance(access, KeyAccess):
            grant_key_access(role, registry.key_for(access.key), access)
        else:
            grant_state_machine(role, registry.state_machine(access.state_machine), access)
    # Tables and queues are encrypted with the data key; state machines are not, and a key of its own
    # (`KeyAccess`) is granted exactly as declared, never with the data key.
    encrypted = [access for access in accesses if isinstance(access, TableAccess | QueueAccess)]
    if encrypted:
        grant_key(role, registry.key, write=any(_writes(access) for access in encrypted))


def _writes(access: TableAccess | QueueAccess) -> bool:
    if isinstance(access, QueueAccess):
        return True  # sending encrypts the message
    return not set(access.actions) <= _READ_ONLY_TABLE_ACTIONS


def grant_table(grantee: iam.IGrantable, table: dynamodb.ITable, access: TableAccess) -> None:
    """The access's actions on the table (on the items its `leading_keys` match, when it names some);
    Query (the only action an index serves) on its named indexes."""
    conditions = None
    if access.leading_keys:
        conditions = {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": list(access.leading_keys)}}
    grantee.grant_principal.add_to_principal_policy(
        iam.PolicyStatement(
            actions=sorted(set(access.actions)), resources=[table.table_arn], conditions=conditions
        )
    )
    if access.indexes:
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["dynamodb:Query"],
                resources=[f"{table.table_arn}/index/{name}" for name in access.indexes],
            )
        )


def grant_queue(grantee: iam.IGrantable, queue: sqs.IQueue, access: QueueAccess) -> None:
    grantee.grant_principal.add_to_principal_policy(
        iam.PolicyStatement(actions=sorted(set(access.actions)), resources=[queue.queue_arn])
    )


def grant_state_machine(role: iam.Role, state_machine: sfn.StateMachine, access: StateMachineAccess) -> None:
    """StartExecution on the state machine; DescribeExecution on its executions (acknowledged for cdk-nag:
    execution ARNs are created per run, so only a pattern can name them)."""
    on_machine = sorted(set(access.actions) - _EXECUTION_ACTIONS)
    on_executions = sorted(set(access.actions) & _EXECUTION_ACTIONS)
    if on_machine:
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=on_machine, resources=[state_machine.state_machine_arn])
        )
    if on_executions:
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=on_executions, resources=[execution_arn(state_machine)])
        )
        cdk.Validations.of(role).acknowledge(
            cdk.Acknowledgment(
                id=nag_execution_finding(access.state_machine),
                reason=f"{', '.join(on_executions)} on the executions of the "
                f"{access.state_machine.logical_id} state machine only: execution ARNs are created per "
                "execution (per billing run), so they can only be named by this pattern.",
            )
        )


def grant_key_access(grantee: iam.IGrantable, key: kms.IKey, access: KeyAccess) -> None:
    """Exactly the declared actions (kms:Encrypt, kms:Decrypt) on that key: sealing never implies opening.

    When the key's spec names its encryption context, the grant requires exactly those context keys: a
    call without the context (or with another) is refused by IAM, not only by the ciphertext.
    """
    conditions = None
    if access.key.context_keys:
        conditions = {
            "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": list(access.key.context_keys)},
            "Null": {"kms:EncryptionContextKeys": "false"},
        }
    grantee.grant_principal.add_to_principal_policy(
        iam.PolicyStatement(
            actions=sorted(set(access.actions)), resources=[key.key_arn], conditions=conditions
        )
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


@jsii.implements(lambda_.IEventSourceDlq)
class SqsOnFailure:
    """An event source mapping's on-failure destination on an SQS queue, granted action by action.

    CDK's `SqsDlq` binds with the queue's `grant_send_messages` (GetQueueAttributes, GetQueueUrl and, for an
    encrypted queue, `kms:ReEncrypt*` and `kms:GenerateDataKey*`); Lambda only sends the failed batch's
    description, which needs `sqs:SendMessage` and the queue key's use for writing.
    """

    def __init__(self, queue: sqs.IQueue, key: kms.IKey) -> None:
        self.queue = queue
        self.key = key

    def bind(
        self, target: lambda_.IEventSourceMapping, target_handler: lambda_.IFunction
    ) -> lambda_.DlqDestinationConfig:
        grant_send(target_handler, self.queue)
        grant_key(target_handler, self.key, write=True)
        return lambda_.DlqDestinationConfig(destination=self.queue.queue_arn)


def execution_arn(state_machine: sfn.StateMachine, separator: str = ":") -> str:
    """The ARN pattern of a machine's executions: `:` top-level runs, `/` Distributed Map children."""
    return cdk.Stack.of(state_machine).format_arn(
        service="states",
        resource="execution",
        resource_name=f"{state_machine.state_machine_name}{separator}*",
        arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
    )


def nag_execution_finding(spec: StateMachineSpec, separator: str = ":") -> str:
    """cdk-nag's finding id for `execution_arn` (the state machine keeps its spec's logical id)."""
    return (
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:"
        f"<{spec.logical_id}.Name>{separator}*]"
    )
