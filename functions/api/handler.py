"""The api function: every route of the HTTP API behind API Gateway (REST, Lambda proxy).

Thin by design: the routes, their models, the middlewares and the error answers are `billing.api`; this
module stacks the Powertools decorators around it.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from billing.api.app import BillingApi
from billing.bootstrap import get_services
from billing.runtime import logger, metrics, tracer

api = BillingApi(get_services)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)  # responses carry personal data: not in traces
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return api.resolve(event, context)
