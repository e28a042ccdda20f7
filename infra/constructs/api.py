"""The public REST API: Lambda TOKEN authorizer, per-tenant usage plan, `/v1/{proxy+}` to the api function.

API Gateway v1 (REST) because usage plans are a REST API feature: the authorizer resolves the bearer
key to a tenant and returns the tenant's API Gateway key as `usageIdentifierKey`, so the usage plan
throttles each tenant separately. Gateway responses speak the API's error shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from billing import resources
from infra.config import DeploymentConfig
from infra.constructs.function import BillingFunction
from infra.constructs.registry import ResourceRegistry

AUTHORIZER_CACHE_TTL = cdk.Duration.seconds(60)
RETRY_AFTER_SECONDS = 1
_MESSAGE_FROM_GATEWAY = "$context.error.messageString"  # already a quoted JSON string


def error_body(code: str, message: str) -> str:
    """A gateway response template in the API's error shape (`$context.error.messageString` allowed)."""
    body = json.dumps({"error": {"code": code, "message": "__MESSAGE__", "details": []}})
    rendered = message if message == _MESSAGE_FROM_GATEWAY else json.dumps(message)
    return body.replace('"__MESSAGE__"', rendered)


# (response type, status or None to keep API Gateway's, code, message, extra headers)
GATEWAY_RESPONSES: tuple[tuple[apigw.ResponseType, str | None, str, str, Mapping[str, str]], ...] = (
    (
        apigw.ResponseType.UNAUTHORIZED,
        "401",
        "unauthorized",
        "Missing or invalid API key.",
        {"WWW-Authenticate": "'Bearer'"},
    ),
    # The authorizer denies an unknown or revoked key.
    (
        apigw.ResponseType.ACCESS_DENIED,
        "401",
        "unauthorized",
        "Invalid API key.",
        {"WWW-Authenticate": "'Bearer'"},
    ),
    # The usage identifier the authorizer returned is not a key of the usage plan.
    (
        apigw.ResponseType.INVALID_API_KEY,
        "401",
        "unauthorized",
        "Invalid API key.",
        {"WWW-Authenticate": "'Bearer'"},
    ),
    (
        apigw.ResponseType.THROTTLED,
        "429",
        "rate_limited",
        "Too many requests; retry later.",
        {"Retry-After": f"'{RETRY_AFTER_SECONDS}'"},
    ),
    (
        apigw.ResponseType.QUOTA_EXCEEDED,
        "429",
        "quota_exceeded",
        "Request quota exceeded.",
        {"Retry-After": f"'{RETRY_AFTER_SECONDS}'"},
    ),
    (apigw.ResponseType.REQUEST_TOO_LARGE, "413", "payload_too_large", "Request body too large.", {}),
    # Outside /v1 no route exists; API Gateway calls that "missing authentication token" (403).
    (apigw.ResponseType.MISSING_AUTHENTICATION_TOKEN, "404", "not_found", "No such route.", {}),
    (apigw.ResponseType.WAF_FILTERED, "403", "forbidden", "Request blocked.", {}),
    (apigw.ResponseType.DEFAULT_4_XX, None, "bad_request", _MESSAGE_FROM_GATEWAY, {}),
    (
        apigw.ResponseType.DEFAULT_5_XX,
        None,
        "internal_error",
        "The service could not complete the request.",
        {},
    ),
)

ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTime",
    "ip": "$context.identity.sourceIp",
    "tenant": "$context.authorizer.tenant_id",
    "keyId": "$context.authorizer.principalId",
    "apiKeyId": "$context.identity.apiKeyId",
    "httpMethod": "$context.httpMethod",
    "resourcePath": "$context.resourcePath",
    "path": "$context.path",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationLatency": "$context.integrationLatency",
    "errorType": "$context.error.responseType",
    "authorizerStatus": "$context.authorizer.status",
    "wafStatus": "$context.waf.status",
    "xrayTraceId": "$context.xrayTraceId",
}


class ApiConstruct(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        registry: ResourceRegistry,
        layer: lambda_.ILayerVersion,
    ) -> None:
        super().__init__(scope, construct_id)
        # Built from their specs; the registry must already hold the ingest queue, the cycle-close state
        # machine (POST /v1/billing-runs starts a run, GET /v1/billing-runs/{id} reads it), the webhook
        # secrets key (secrets are sealed, never opened, here) and the webhook queue (replays).
        self.authorizer_function = BillingFunction(
            self, "Authorizer", spec=resources.AUTHORIZER_FUNCTION, layer=layer, registry=registry
        )
        self.api_function = BillingFunction(
            self, "Handler", spec=resources.API_FUNCTION, layer=layer, registry=registry
        )
        self.access_logs = self._build_access_logs()
        self.rest_api = self._build_rest_api(config)
        self.authorizer = self._build_authorizer()
        self._build_routes()
        self.usage_plan = self._build_usage_plan()
        self._build_gateway_responses()
        if config.waf_enabled:
            self._build_web_acl()
        else:
            cdk.Validations.of(self.rest_api.deployment_stage).acknowledge(
                cdk.Acknowledgment(
                    id="AwsSolutions-APIG3",
                    reason="WAF disabled by the waf_enabled=false context flag (development deployments).",
                )
            )

    def _build_access_logs(self) -> logs.LogGroup:
        return logs.LogGroup(
            self,
            "AccessLogs",
            retention=logs.RetentionDays.THREE_MONTHS,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )

    def _build_rest_api(self, config: DeploymentConfig) -> apigw.RestApi:
        rest_api = apigw.RestApi(
            self,
            "RestApi",
            # Unique per stack: API Gateway metrics (and so the 5xx alarm) are keyed by the API's name.
            rest_api_name=f"{cdk.Stack.of(self).stack_name}-api",
            description="usage-billing public API (v1)",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            api_key_source_type=apigw.ApiKeySourceType.AUTHORIZER,
            # The execution-logging role is an account-wide setting of API Gateway in this region;
            # retain it so deleting this stack does not break logging of the account's other APIs.
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=cdk.RemovalPolicy.RETAIN,
            deploy_options=apigw.StageOptions(
                stage_name=config.stage_name,
                throttling_rate_limit=config.stage_throttle_rate,
                throttling_burst_limit=config.stage_throttle_burst,
                tracing_enabled=True,
                metrics_enabled=True,
                logging_level=apigw.MethodLoggingLevel.ERROR,
                # Full request/response logging would write tenants' payloads to CloudWatch.
                data_trace_enabled=False,
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FIELDS)),
            ),
        )
        # The stack exports its own ApiUrl output; drop the RestApi's automatic duplicate.
        rest_api.node.try_remove_child("Endpoint")
        cdk.Validations.of(rest_api.node.find_child("CloudWatchRole")).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AmazonAPIGatewayPushToCloudWatchLogs]",
                reason="API Gateway's account-level CloudWatch role serves every REST API of the account "
                "and region, so it cannot be scoped to this API's log groups; AWS maintains this policy "
                "for exactly that role.",
            )
        )
        return rest_api

    def _build_authorizer(self) -> apigw.TokenAuthorizer:
        return apigw.TokenAuthorizer(
            self,
            "TokenAuthorizer",
            handler=self.authorizer_function.function,
            identity_source=apigw.IdentitySource.header("Authorization"),
            results_cache_ttl=AUTHORIZER_CACHE_TTL,
        )

    def _build_routes(self) -> None:
        integration = apigw.LambdaIntegration(self.api_function.function, proxy=True, allow_test_invoke=False)
        validator = self.rest_api.add_request_validator(
            "RequestValidator", validate_request_parameters=True, validate_request_body=False
        )
        cdk.Validations.of(self.rest_api.node.default_child).acknowledge(  # type: ignore[arg-type]
            cdk.Acknowledgment(
                id="AwsSolutions-APIG2",
                reason="Request parameters are validated by API Gateway; bodies are validated by the api "
                "function against the pydantic models its OpenAPI document is generated from. Copies of "
                "those schemas as API Gateway models would drift from the code.",
            )
        )
        v1 = self.rest_api.root.add_resource("v1")
        proxy = v1.add_proxy(any_method=False)
        protected = proxy.add_method(
            "ANY",
            integration,
            authorizer=self.authorizer,
            authorization_type=apigw.AuthorizationType.CUSTOM,
            api_key_required=True,
            request_validator=validator,
            request_parameters={"method.request.header.Authorization": True},
        )
        cdk.Validations.of(protected).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-COG4",
                reason="Tenants are machines holding API keys: the Lambda TOKEN authorizer resolves the key "
                "to a tenant and its usage-plan key; there are no Cognito users.",
            )
        )
        # The API's description is open: the OpenAPI document and the page that renders it.
        for parent, part in ((v1, "openapi.json"), (self.rest_api.root, "docs")):
            public = parent.add_resource(part).add_method(
                "GET",
                integration,
                authorization_type=apigw.AuthorizationType.NONE,
                api_key_required=False,
                request_validator=validator,
            )
            for rule in ("AwsSolutions-APIG4", "AwsSolutions-COG4"):
                cdk.Validations.of(public).acknowledge(
                    cdk.Acknowledgment(
                        id=rule,
                        reason=f"GET {parent.path.rstrip('/')}/{part} is the public description of the "
                        "API (the OpenAPI document, or the page rendering it); it returns no tenant data, so "
                        "it is deliberately open.",
                    )
                )

    def _build_usage_plan(self) -> apigw.UsagePlan:
        throttle = resources.DEFAULT_TENANT_THROTTLE
        plan = self.rest_api.add_usage_plan(
            "TenantUsagePlan",
            name=f"{cdk.Stack.of(self).stack_name}-tenants",
            description="Per-tenant limits; billing-admin attaches each tenant's API key to this plan.",
            throttle=apigw.ThrottleSettings(rate_limit=throttle.rate_per_second, burst_limit=throttle.burst),
        )
        plan.add_api_stage(stage=self.rest_api.deployment_stage)
        return plan

    def _build_gateway_responses(self) -> None:
        for response_type, status, code, message, headers in GATEWAY_RESPONSES:
            self.rest_api.add_gateway_response(
                response_type.response_type,
                type=response_type,
                status_code=status,
                response_headers={"Content-Type": "'application/json'", **headers},
                templates={"application/json": error_body(code, message)},
            )

    def _build_web_acl(self) -> wafv2.CfnWebACL:
        # Managed groups that inspect headers and known exploit patterns only. The common rule set is left
        # out on purpose: its body-size and XSS body rules would reject legitimate event batches.
        managed = ("AWSManagedRulesAmazonIpReputationList", "AWSManagedRulesKnownBadInputsRuleSet")
        acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=_visibility("usage-billing-api"),
            rules=[
                wafv2.CfnWebACL.RuleProperty(
                    name=name,
                    priority=priority,
                    override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                            vendor_name="AWS", name=name
                        )
                    ),
                    visibility_config=_visibility(name),
                )
                for priority, name in enumerate(managed)
            ],
        )
        wafv2.CfnWebACLAssociation(
            self,
            "WebAclAssociation",
            resource_arn=self.rest_api.deployment_stage.stage_arn,
            web_acl_arn=acl.attr_arn,
        )
        return acl


def _visibility(metric_name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=metric_name, sampled_requests_enabled=True
    )
