"""Billing runs: close every period that ended (plus the grace window) before `as_of`."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from billing.api.edge import answers, principal, received_at, requires, respond, services
from billing.api.models.billing_runs import BillingRunIn, BillingRunOut, BillingRunStarted
from billing.api.models.common import PathId
from billing.domain.tenants import Scope

router = Router()
TAG = "Billing runs"


@router.post(
    "/v1/billing-runs",
    summary="Start a billing run",
    description="Closes every period that ended, plus the grace window, before `as_of` (default now), for "
    "the tenant or one customer. Running it again creates nothing new. With an Idempotency-Key, requests "
    "sent at once start one run.",
    tags=[TAG],
    operation_id="startBillingRun",
    security=requires(Scope.ADMIN),
    responses=answers(202, BillingRunStarted, 404, body=True, description="Started"),
)
def start_billing_run(body: Annotated[BillingRunIn | None, Body()] = None) -> Response[str]:
    request = body or BillingRunIn()
    run = services(router).billing_runs.start(
        principal(router).tenant_id,
        request.as_of,
        request.customer_id,
        now=received_at(router),
        client_token=router.current_event.headers.get("idempotency-key"),
    )
    started = BillingRunStarted(id=run.id, status=run.status, as_of=run.as_of)  # type: ignore[arg-type]
    return respond(HTTPStatus.ACCEPTED, started)


@router.get(
    "/v1/billing-runs/<run_id>",
    summary="A billing run: running, succeeded or failed, with the invoices it finalized",
    tags=[TAG],
    operation_id="getBillingRun",
    security=requires(Scope.ADMIN),
    responses=answers(200, BillingRunOut, 404),
)
def get_billing_run(run_id: PathId) -> Response[str]:
    return respond(
        HTTPStatus.OK,
        BillingRunOut.of(services(router).billing_runs.get(principal(router).tenant_id, run_id)),
    )
