"""A billing Lambda function built from its spec (`billing.resources.FunctionSpec`): its own role, its own
log group, the shared layer.

Every function gets the same runtime, architecture, tracing and Powertools settings. The rest comes from
its spec, in this one place: code folder, handler, timeout, memory, description; an environment of exactly
its resources' names, URLs and ARNs plus those of its spec's settings this deployment sets; and IAM grants
derived from its access declarations (`infra.constructs.permissions`). The local runtime builds the same
function from the same spec, so the two cannot drift.
"""

from __future__ import annotations

from collections.abc import Mapping

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from billing.resources import FunctionSpec
from infra.config import FUNCTIONS_DIR, METRICS_NAMESPACE, SERVICE_NAME
from infra.constructs.layer import ARCHITECTURE, RUNTIME
from infra.constructs.permissions import grant_function_access
from infra.constructs.registry import ResourceRegistry


def base_environment() -> dict[str, str]:
    return {
        "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
        "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
    }


def function_environment(spec: FunctionSpec, registry: ResourceRegistry) -> dict[str, str]:
    """Powertools' variables, the spec's resources (name, URL or ARN), and those of its settings this
    deployment sets. Nothing else: a function never sees a table or queue it does not use."""
    resources = {access.env_var: registry.value(access) for access in spec.access}
    settings = {name: value for name, value in registry.settings.items() if name in spec.settings}
    return {**base_environment(), **resources, **settings}


class BillingFunction(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: FunctionSpec,
        layer: lambda_.ILayerVersion,
        registry: ResourceRegistry,
        unscoped_actions: Mapping[str, str] | None = None,
    ) -> None:
        """`unscoped_actions`: {action: what adds it} of actions beyond X-Ray's that its triggers grant on
        Resource '*' because they have no resource-level permissions (a stream's dynamodb:ListStreams)."""
        super().__init__(scope, construct_id)
        self.spec = spec
        self.role = self._build_role(spec.description)
        self.log_group = self._build_log_group()
        self.function = lambda_.Function(
            self,
            "Function",
            description=spec.description,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=spec.handler,
            code=lambda_.Code.from_asset(
                str(FUNCTIONS_DIR / spec.folder), exclude=["**/__pycache__", "**/*.pyc", "tests"]
            ),
            layers=[layer],
            role=self.role,
            environment=function_environment(spec, registry),
            timeout=cdk.Duration.seconds(spec.timeout_seconds),
            memory_size=spec.memory_mb,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
        )
        grant_function_access(self.role, spec.access, registry)
        self._acknowledge_platform_findings(unscoped_actions or {})

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

    def _acknowledge_platform_findings(self, unscoped_actions: Mapping[str, str]) -> None:
        tracing = "xray:PutTraceSegments and xray:PutTelemetryRecords (added by active tracing)"
        if unscoped_actions:
            others = " and ".join(f"{action} ({why})" for action, why in unscoped_actions.items())
            star = (
                f"Only {tracing} and {others} use Resource '*': none of them has resource-level permissions."
            )
        else:
            star = f"Only {tracing} use Resource '*': X-Ray has no resource-level permissions for them."
        cdk.Validations.of(self.role).acknowledge(
            cdk.Acknowledgment(id="AwsSolutions-IAM5[Resource::*]", reason=star)
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
                "synchronously, Step Functions the cycle-close function; the consumer and the webhook sender "
                "are polled from SQS, whose redrive policy dead-letters; the outbox dispatcher from the "
                "table's stream, whose mapping sends failed batches to its on-failure queue), so a Lambda "
                "dead-letter target would never receive anything.",
            ),
        )
