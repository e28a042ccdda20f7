"""The ingest queue, its dead-letter queue, and the consumer that writes each event once."""

from __future__ import annotations

from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from billing import resources
from infra.constructs.function import BillingFunction
from infra.constructs.queues import add_sqs_trigger, build_queue
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
        self.dead_letter_queue = build_queue(
            self,
            resources.INGEST_DLQ,
            registry.key,
            without_dead_letter="This queue is the dead-letter queue itself; the DLQ-depth alarm watches it.",
        )
        self.queue = build_queue(
            self, resources.INGEST_QUEUE, registry.key, dead_letter=self.dead_letter_queue
        )
        registry.add_queue(resources.INGEST_DLQ, self.dead_letter_queue)
        registry.add_queue(resources.INGEST_QUEUE, self.queue)
        self.consumer = self._build_consumer(registry, layer)

    def _build_consumer(self, registry: ResourceRegistry, layer: lambda_.ILayerVersion) -> BillingFunction:
        consumer = BillingFunction(
            self, "Consumer", spec=resources.INGEST_CONSUMER_FUNCTION, layer=layer, registry=registry
        )
        add_sqs_trigger(
            consumer.function, self.queue, batch_size=resources.CONSUMER_BATCH_SIZE, queue_name="ingest"
        )
        return consumer
