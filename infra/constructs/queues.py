"""An SQS queue built from its spec (`billing.resources.QueueSpec`): SSE with the stack's data key, TLS
only, the spec's timeouts and retention, its redrive to the dead-letter queue the spec names."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from billing.resources import QueueSpec


def build_queue(
    scope: Construct,
    spec: QueueSpec,
    key: kms.IKey,
    *,
    dead_letter: sqs.IQueue | None = None,
    without_dead_letter: str | None = None,
) -> sqs.Queue:
    """The queue of `spec`, its logical id the spec's. A queue with no dead-letter queue of its own (a
    dead-letter queue itself, an on-failure destination) says why in `without_dead_letter`: the reason
    cdk-nag's redrive findings are acknowledged with."""
    if (spec.dead_letter is None) != (dead_letter is None):
        raise ValueError(f"{spec.logical_id}: the spec and the construct disagree on a dead-letter queue")
    if dead_letter is None and not without_dead_letter:
        raise ValueError(f"{spec.logical_id}: a queue without a dead-letter queue needs the reason why")
    queue = sqs.Queue(
        scope,
        spec.logical_id,
        visibility_timeout=cdk.Duration.seconds(spec.visibility_timeout_seconds),
        retention_period=cdk.Duration.seconds(spec.retention_seconds),
        encryption=sqs.QueueEncryption.KMS,
        encryption_master_key=key,
        enforce_ssl=True,
        dead_letter_queue=(
            sqs.DeadLetterQueue(queue=dead_letter, max_receive_count=spec.max_receive_count)
            if dead_letter is not None
            else None
        ),
    )
    cfn_queue: sqs.CfnQueue = queue.node.default_child  # type: ignore[assignment]
    # SQS attribute names are the CloudFormation property names; values arrive as strings.
    for name, value in spec.extra_attributes.items():
        cfn_queue.add_property_override(name, _cfn_value(value))
    cfn_queue.override_logical_id(spec.logical_id)
    if dead_letter is None:
        cdk.Validations.of(queue).acknowledge(
            cdk.Acknowledgment(id="AwsSolutions-SQS3", reason=str(without_dead_letter)),
            cdk.Acknowledgment(id="Serverless-SQSRedrivePolicy", reason=str(without_dead_letter)),
        )
    return queue


def _cfn_value(value: str) -> object:
    if value.lower() in {"true", "false"}:
        return value.lower() == "true"
    return int(value) if value.isdigit() else value


def add_sqs_trigger(
    function: lambda_.Function, queue: sqs.IQueue, *, batch_size: int, queue_name: str
) -> None:
    """The queue as the function's event source, answering with partial batch failures (only failed
    messages come back). Adds Receive/Delete/ChangeVisibility/GetAttributes on the queue and kms:Decrypt
    of its key; the function's spec does not name the queue: it never reads it itself."""
    function.add_event_source(
        event_sources.SqsEventSource(queue, batch_size=batch_size, report_batch_item_failures=True)
    )
    cdk.Validations.of(function).acknowledge(
        cdk.Acknowledgment(
            id="Serverless-LambdaEventSourceMappingDestination",
            reason="SQS event source mappings take no on-failure destination; failed messages go to "
            f"the {queue_name} queue's redrive dead-letter queue (maxReceiveCount from billing.resources).",
        )
    )
