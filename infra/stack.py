"""Usage billing as one stack: it composes the area constructs and exports outputs."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from constructs import Construct

from billing import resources
from infra.config import DeploymentConfig
from infra.constructs.api import ApiConstruct
from infra.constructs.cycle_close import CycleCloseConstruct, function_settings_from_context
from infra.constructs.data import DataConstruct
from infra.constructs.ingest import IngestConstruct
from infra.constructs.layer import SharedLayer
from infra.constructs.observability import ObservabilityConstruct
from infra.constructs.registry import ResourceRegistry
from infra.constructs.webhooks import WebhooksConstruct


class BillingStack(cdk.Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: DeploymentConfig, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.data = DataConstruct(self, "Data")
        # Each function is built from its spec against what the constructs before it added here, so the
        # order below is the order of use: tables, then the queues, then the state machine the api starts,
        # then the webhook queue and secrets key the api uses (sealing secrets, kicking the sender).
        self.registry = ResourceRegistry(self.data.key, function_settings_from_context(self.node))
        for spec in resources.TABLES:
            self.registry.add_table(spec, self.data.table(spec))
        layer = SharedLayer(self, "SharedLayer", build=config.build_layer).layer
        self.ingest = IngestConstruct(self, "Ingest", registry=self.registry, layer=layer)
        self.cycle_close = CycleCloseConstruct(self, "CycleClose", registry=self.registry, layer=layer)
        self.webhooks = WebhooksConstruct(self, "Webhooks", registry=self.registry, layer=layer)
        self.api = ApiConstruct(self, "Api", config=config, registry=self.registry, layer=layer)
        self.observability = ObservabilityConstruct(
            self,
            "Observability",
            config=config,
            key=self.data.key,
            ingest=self.ingest,
            api=self.api,
            cycle_close=self.cycle_close,
            webhooks=self.webhooks,
        )
        self._build_outputs()

    def _build_outputs(self) -> None:
        cdk.CfnOutput(
            self, "ApiUrl", value=self.api.rest_api.url, description="Base URL; routes live under v1/"
        )
        cdk.CfnOutput(
            self,
            "UsagePlanId",
            value=self.api.usage_plan.usage_plan_id,
            description="billing-admin attaches each tenant's API Gateway key to this usage plan",
        )
        for spec in resources.TABLES:
            cdk.CfnOutput(self, f"{spec.logical_id}Name", value=self.data.table(spec).table_name)
        cdk.CfnOutput(self, "IngestQueueUrl", value=self.ingest.queue.queue_url)
        cdk.CfnOutput(self, "IngestDeadLetterQueueUrl", value=self.ingest.dead_letter_queue.queue_url)
        cdk.CfnOutput(
            self,
            "WebhookQueueUrl",
            value=self.webhooks.queue.queue_url,
            description="Lane kicks, retry timers and replays for the webhook sender",
        )
        cdk.CfnOutput(self, "WebhookDeadLetterQueueUrl", value=self.webhooks.dead_letter_queue.queue_url)
        cdk.CfnOutput(
            self,
            "OutboxDispatchFailuresQueueUrl",
            value=self.webhooks.failures_queue.queue_url,
            description="Descriptions of billing-table stream batches the outbox dispatcher failed on",
        )
        cdk.CfnOutput(
            self,
            "WebhookSecretsKeyArn",
            value=self.webhooks.secrets_key.key_arn,
            description="Seals webhook signing secrets (encryption context: tenant and endpoint)",
        )
        cdk.CfnOutput(self, "AlarmTopicArn", value=self.observability.topic.topic_arn)
        cdk.CfnOutput(
            self,
            "CycleCloseStateMachineArn",
            value=self.cycle_close.state_machine.state_machine_arn,
            description="Billing runs (cycle close); the scheduler starts one hourly",
        )
