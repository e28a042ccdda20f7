"""A billing Lambda function with its own role, its own log group and the shared layer.

Every function gets the same runtime, architecture, tracing and environment; what differs (code folder,
timeout, memory, permissions) is passed in. Permissions are granted by the construct that owns the
resource, through `infra.constructs.permissions`.
"""

from __future__ import annotations

from collections.abc import Mapping

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config import FUNCTIONS_DIR, METRICS_NAMESPACE, SERVICE_NAME
from infra.constructs.layer import ARCHITECTURE, RUNTIME

HANDLER = "handler.handler"


def base_environment() -> dict[str, str]:
    return {
        "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
        "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
    }


class BillingFunction(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        folder: str,
        description: str,
        layer: lambda_.ILayerVersion,
        environment: Mapping[str, str],
        timeout: cdk.Duration,
        memory_size: int = 512,
    ) -> None:
        super().__init__(scope, construct_id)
        self.role = self._build_role(description)
        self.log_group = self._build_log_group()
        self.function = lambda_.Function(
            self,
            "Function",
            description=description,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=HANDLER,
            code=lambda_.Code.from_asset(
                str(FUNCTIONS_DIR / folder), exclude=["**/__pycache__", "**/*.pyc", "tests"]
            ),
            layers=[layer],
            role=self.role,
            environment={**base_environment(), **environment},
            timeout=timeout,
            memory_size=memory_size,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
        )
        self._acknowledge_platform_findings()

    def _build_role(self, description: str) -> iam.Role:
        # Our own role instead of AWSLambdaBasicExecutionRole: logs are granted on this function's log
        # group only (see _build_log_group), not on every log group of the account.
        return iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Execution role: {description}",
        )

    def _build_log_group(self) -> logs.LogGroup:
        log_group = logs.LogGroup(
            self,
            "Logs",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        log_group.grant_write(self.role)
        return log_group

    def _acknowledge_platform_findings(self) -> None:
        cdk.Validations.of(self.role).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="Only xray:PutTraceSegments and xray:PutTelemetryRecords (added by active tracing) "
                "use Resource '*': X-Ray has no resource-level permissions for them.",
            )
        )
        pinned_runtime = (
            "Pinned to python3.13 on purpose: the shared layer's binary wheels (pydantic_core) are built "
            "for cp313; a runtime upgrade changes the layer and every function together."
        )
        cdk.Validations.of(self.function).acknowledge(
            cdk.Acknowledgment(id="AwsSolutions-L1", reason=pinned_runtime),
            cdk.Acknowledgment(id="Serverless-LambdaLatestVersion", reason=pinned_runtime),
            cdk.Acknowledgment(
                id="Serverless-LambdaDLQ",
                reason="No function here is invoked asynchronously (API Gateway and the authorizer invoke "
                "synchronously; the consumer is polled from SQS, whose redrive policy dead-letters), so a "
                "Lambda dead-letter target would never receive anything.",
            ),
        )
