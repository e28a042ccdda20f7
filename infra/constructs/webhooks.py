"""The outbox and webhooks: the webhook secrets key, the webhook queues, the outbox dispatcher on the billing
table's stream and the webhook sender on the webhook queue.

Writers put an outbox event into the billing table in the same transaction as the fact it announces; the
table's stream (NEW_IMAGE, `billing.resources.BILLING_TABLE`) carries it to the dispatcher, filtered by the
event source mapping to new outbox events only (`OUTBOX_STREAM_FILTER`), so no other item of the table
(customer profiles, invoices) ever reaches it. The dispatcher creates one delivery per endpoint and kicks its
lane on the webhook queue; the sender walks the lanes, signs and sends. A batch the dispatcher fails on is
bisected and retried, then described on the outbox failures queue; a message the sender fails on is
redelivered, then dead-lettered by the webhook queue's redrive.

The key, the queues and the two functions are built from their specs and added to the resource registry:
the api function (sealing secrets, kicking the sender on replays) is built afterwards and gets the webhook
key's ARN, the queue's URL and its grants from there.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from constructs import Construct

from billing import resources
from billing.resources import KeySpec
from infra.config import METRICS_NAMESPACE, SERVICE_NAME
from infra.constructs.function import BillingFunction
from infra.constructs.permissions import SqsOnFailure
from infra.constructs.queues import add_sqs_trigger, build_queue
from infra.constructs.registry import ResourceRegistry

# Emitted by the sender (Powertools Metrics, dimension service) when a delivery exhausts its retries.
DEAD_LETTERED_METRIC = resources.WEBHOOK_DEAD_LETTERED_METRIC


class WebhooksConstruct(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        registry: ResourceRegistry,
        layer: lambda_.ILayerVersion,
    ) -> None:
        super().__init__(scope, construct_id)
        self.secrets_key = self._build_key(resources.WEBHOOK_SECRETS_KEY)
        registry.add_key(resources.WEBHOOK_SECRETS_KEY, self.secrets_key)
        self.failures_queue = build_queue(
            self,
            resources.OUTBOX_FAILURES_QUEUE,
            registry.key,
            without_dead_letter="This queue is the outbox dispatcher's on-failure destination: it holds the "
            "descriptions (shard and sequence numbers) of stream batches that failed every retry, for an "
            "operator to replay; nothing consumes it, so a redrive would never fire. Its depth alarm "
            "watches it.",
        )
        self.dead_letter_queue = build_queue(
            self,
            resources.WEBHOOK_DLQ,
            registry.key,
            without_dead_letter="This queue is the webhook queue's dead-letter queue itself; the DLQ-depth "
            "alarm watches it.",
        )
        self.queue = build_queue(
            self, resources.WEBHOOK_QUEUE, registry.key, dead_letter=self.dead_letter_queue
        )
        for spec, queue in (
            (resources.OUTBOX_FAILURES_QUEUE, self.failures_queue),
            (resources.WEBHOOK_DLQ, self.dead_letter_queue),
            (resources.WEBHOOK_QUEUE, self.queue),
        ):
            registry.add_queue(spec, queue)
        self.dispatcher = self._build_dispatcher(registry, layer)
        self.sender = self._build_sender(registry, layer)

    def metric_deliveries_dead_lettered(self) -> cloudwatch.Metric:
        """Deliveries the sender gave up on (their retries exhausted) in five minutes."""
        return cloudwatch.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name=DEAD_LETTERED_METRIC,
            dimensions_map={"service": SERVICE_NAME},
            statistic=cloudwatch.Stats.SUM,
            period=cdk.Duration.minutes(5),
        )

    def _build_key(self, spec: KeySpec) -> kms.Key:
        key = kms.Key(
            self,
            spec.logical_id,
            description=spec.description,
            alias=spec.alias(cdk.Stack.of(self).stack_name),
            enable_key_rotation=True,
            # As the data key: the secrets it sealed live in a retained table and open only while it exists.
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        # A stable logical id: replacing the key would leave every sealed secret unreadable.
        key.node.default_child.override_logical_id(spec.logical_id)  # type: ignore[union-attr]
        return key

    def _build_dispatcher(self, registry: ResourceRegistry, layer: lambda_.ILayerVersion) -> BillingFunction:
        dispatcher = BillingFunction(
            self,
            "Dispatcher",
            spec=resources.OUTBOX_DISPATCHER_FUNCTION,
            layer=layer,
            registry=registry,
            unscoped_actions={"dynamodb:ListStreams": "added by the billing table's stream event source"},
        )
        # Its trigger is not in its spec: the event source mapping reads the stream (DescribeStream,
        # GetRecords, GetShardIterator on the stream, ListStreams, kms:Decrypt of the data key), the function
        # never reads it, and nothing of the table beyond its spec is granted.
        source = event_sources.DynamoEventSource(
            registry.table(resources.BILLING_TABLE),
            starting_position=lambda_.StartingPosition.TRIM_HORIZON,
            batch_size=resources.OUTBOX_BATCH_SIZE,
            bisect_batch_on_error=True,
            report_batch_item_failures=True,
            retry_attempts=resources.OUTBOX_RETRY_ATTEMPTS,
            max_record_age=cdk.Duration.seconds(resources.OUTBOX_MAX_RECORD_AGE_SECONDS),
            on_failure=SqsOnFailure(self.failures_queue, registry.key),
            filters=[lambda_.FilterCriteria.filter(resources.OUTBOX_STREAM_FILTER)],
        )
        dispatcher.function.add_event_source(source)
        return dispatcher

    def _build_sender(self, registry: ResourceRegistry, layer: lambda_.ILayerVersion) -> BillingFunction:
        # Outside any VPC, as every function here: it calls customers' HTTPS endpoints on the internet.
        sender = BillingFunction(
            self, "Sender", spec=resources.WEBHOOK_SENDER_FUNCTION, layer=layer, registry=registry
        )
        add_sqs_trigger(
            sender.function, self.queue, batch_size=resources.SENDER_BATCH_SIZE, queue_name="webhook"
        )
        return sender
