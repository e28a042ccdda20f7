"""The ingest queue, its dead-letter queue, and the consumer that writes each event once."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from billing import resources
from billing.resources import QueueSpec
from infra.constructs.function import BillingFunction
from infra.constructs.registry import ResourceRegistry


class IngestConstruct(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        registry: ResourceRegistry,
        layer: lambda_.ILayerVersion,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter_queue = self._build_queue(resources.INGEST_DLQ, registry.key)
        self.queue = self._build_queue(
            resources.INGEST_QUEUE, registry.key, dead_letter=self.dead_letter_queue
        )
        registry.add_queue(resources.INGEST_DLQ, self.dead_letter_queue)
        registry.add_queue(resources.INGEST_QUEUE, self.queue)
        self.consumer = self._build_consumer(registry, layer)

    def _build_queue(
        self, spec: QueueSpec, key: kms.IKey, dead_letter: sqs.IQueue | None = None
    ) -> sqs.Queue:
        if (spec.dead_letter is None) != (dead_letter is None):
            raise ValueError(f"{spec.logical_id}: the spec and the construct disagree on a dead-letter queue")
        queue = sqs.Queue(
            self,
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
            is_dead_letter_queue = (
                "This queue is the dead-letter queue itself; the DLQ-depth alarm watches it."
            )
            cdk.Validations.of(queue).acknowledge(
                cdk.Acknowledgment(id="AwsSolutions-SQS3", reason=is_dead_letter_queue),
                cdk.Acknowledgment(id="Serverless-SQSRedrivePolicy", reason=is_dead_letter_queue),
            )
        return queue

    def _build_consumer(self, registry: ResourceRegistry, layer: lambda_.ILayerVersion) -> BillingFunction:
        consumer = BillingFunction(
            self, "Consumer", spec=resources.INGEST_CONSUMER_FUNCTION, layer=layer, registry=registry
        )
        # Its trigger is not in its spec: the event source mapping reads the queue, the function never does.
        # Adds Receive/Delete/ChangeVisibility/GetAttributes on this queue and kms:Decrypt on its key.
        source = event_sources.SqsEventSource(
            self.queue,
            batch_size=resources.CONSUMER_BATCH_SIZE,
            report_batch_item_failures=True,
        )
        consumer.function.add_event_source(source)
        cdk.Validations.of(consumer.function).acknowledge(
            cdk.Acknowledgment(
                id="Serverless-LambdaEventSourceMappingDestination",
                reason="SQS event source mappings take no on-failure destination; failed messages go to "
                "the ingest queue's redrive dead-letter queue (maxReceiveCount from billing.resources).",
            )
        )
        return consumer


def _cfn_value(value: str) -> object:
    if value.lower() in {"true", "false"}:
        return value.lower() == "true"
    return int(value) if value.isdigit() else value
