"""Usage of the open period: what the customer would be billed so far (before tax)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from billing.api.edge import answers, principal, received_at, requires, respond, services
from billing.api.models.common import Instant, PathId
from billing.api.models.usage import UsageOut
from billing.domain.tenants import Scope

router = Router()
TAG = "Usage"


@router.get(
    "/v1/customers/<customer_id>/usage",
    summary="Usage and estimated amount of the open billing period",
    tags=[TAG],
    operation_id="getUsage",
    security=requires(Scope.ADMIN),
    responses=answers(200, UsageOut, 404, 409),
)
def get_usage(
    customer_id: PathId,
    at: Annotated[
        Instant | None, Query(description="The period containing this instant; default now")
    ] = None,
) -> Response[str]:
    report = services(router).usage.open_period(
        principal(router).tenant_id, customer_id, at or received_at(router)
    )
    return respond(HTTPStatus.OK, UsageOut.of(report))
