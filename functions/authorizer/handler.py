"""API Gateway TOKEN authorizer: `Authorization: Bearer <api key>` → an IAM policy for the whole API.

The policy allows every route of the stage because API Gateway caches the result per token across
routes; scope (ingest vs admin) is enforced by the api function from the `scope` in the context.
"""

from __future__ import annotations

from typing import Any, NoReturn

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerResponse,
    APIGatewayAuthorizerTokenEvent,
    APIGatewayRouteArn,
    parse_api_gateway_arn,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from billing.bootstrap import get_services
from billing.domain.api_keys import key_id_for, parse_bearer
from billing.runtime import logger, metrics, tracer
from billing.services.tenants import TenantNotFound, TenantService


def _deny(reason: str, **keys: str) -> NoReturn:
    metrics.add_metric(name="AuthFailures", unit=MetricUnit.Count, value=1)
    metrics.add_metadata(key="reason", value=reason)
    logger.info("authorization denied", extra={"reason": reason, **keys})
    # This exact message is what API Gateway turns into a 401 (any other error becomes a 500).
    raise Exception("Unauthorized")


def _route_arn(method_arn: object) -> APIGatewayRouteArn | None:
    if not isinstance(method_arn, str) or not method_arn.startswith("arn:"):
        return None
    try:
        arn = parse_api_gateway_arn(method_arn)
    except IndexError:
        return None
    return arn if arn.api_id and arn.stage else None


@tracer.capture_method(capture_response=False)
def authorize(event: APIGatewayAuthorizerTokenEvent, service: TenantService) -> dict[str, Any]:
    arn = _route_arn(event.get("methodArn"))
    if arn is None:
        _deny("malformed_method_arn")
    raw_key = parse_bearer(event.get("authorizationToken"))
    if raw_key is None:
        _deny("malformed_token")  # nothing of the header is logged: it may be a mistyped secret
    principal = service.authenticate(raw_key)
    if principal is None:
        _deny("unknown_or_revoked_key", key_id=key_id_for(raw_key))
    try:
        tenant = service.get_tenant(principal.tenant_id)
    except TenantNotFound:
        _deny("tenant_missing", key_id=principal.key_id, tenant_id=principal.tenant_id)

    logger.append_keys(tenant_id=principal.tenant_id, key_id=principal.key_id)
    logger.info("authorization granted", extra={"scope": principal.scope.value})
    metrics.add_metric(name="AuthSuccesses", unit=MetricUnit.Count, value=1)
    response = APIGatewayAuthorizerResponse(
        principal_id=principal.key_id,
        region=arn.region,
        aws_account_id=arn.aws_account_id,
        api_id=arn.api_id,
        stage=arn.stage,
        partition=arn.partition,
        context={
            "tenant_id": principal.tenant_id,
            "key_id": principal.key_id,
            "scope": principal.scope.value,
        },
        usage_identifier_key=tenant.usage_key,
    )
    response.allow_all_routes()
    return response.asdict()


# log_event is pinned off: the event carries the raw key, whatever POWERTOOLS_LOGGER_LOG_EVENT says.
@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return authorize(APIGatewayAuthorizerTokenEvent(event), get_services().tenants)
