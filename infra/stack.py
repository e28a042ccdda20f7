"""Usage billing as one stack: it composes the area constructs and exports outputs."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from constructs import Construct

from billing import resources
from infra.config import DeploymentConfig
from infra.constructs.api import ApiConstruct
from infra.constructs.cycle_close import CycleCloseConstruct, grace_seconds_from_context
from infra.constructs.data import DataConstruct
from infra.constructs.ingest import IngestConstruct
from infra.constructs.layer import SharedLayer
from infra.constructs.observability import ObservabilityConstruct


class BillingStack(cdk.Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: DeploymentConfig, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.data = DataConstruct(self, "Data")
        layer = SharedLayer(self, "SharedLayer", build=config.build_layer).layer
        self.ingest = IngestConstruct(self, "Ingest", data=self.data, layer=layer)
        self.cycle_close = CycleCloseConstruct(
            self,
            "CycleClose",
            data=self.data,
            ingest=self.ingest,
            layer=layer,
            grace_seconds=grace_seconds_from_context(self.node),
        )
        self.api = ApiConstruct(self, "Api", config=config, data=self.data, ingest=self.ingest, layer=layer)
        # POST /v1/billing-runs starts a run, GET /v1/billing-runs/{id} reads it.
        self.cycle_close.allow_runs(self.api.api_function)
        self.observability = ObservabilityConstruct(
            self,
            "Observability",
            config=config,
            key=self.data.key,
            ingest=self.ingest,
            api=self.api,
            cycle_close=self.cycle_close,
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
        cdk.CfnOutput(self, "AlarmTopicArn", value=self.observability.topic.topic_arn)
        cdk.CfnOutput(
            self,
            "CycleCloseStateMachineArn",
            value=self.cycle_close.state_machine.state_machine_arn,
            description="Billing runs (cycle close); the scheduler starts one hourly",
        )
