"""Plans: versioned price lists. A version never changes; publishing a new one never changes what existing
subscriptions are billed."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from billing.api.edge import answers, principal, received_at, requires, respond, services
from billing.api.models.catalog import PlanIn, PlanOut, PlanVersionIn
from billing.api.models.common import DEFAULT_PAGE_SIZE, Cursor, Page, PageSize, PathId
from billing.domain.tenants import Scope

router = Router()
TAG = "Plans"


@router.post(
    "/v1/plans",
    summary="Create a plan (its version 1)",
    description="Prices are decimal strings. Every charge names a meter defined before (422 unknown_meter).",
    tags=[TAG],
    operation_id="createPlan",
    security=requires(Scope.ADMIN),
    responses=answers(201, PlanOut, body=True, description="Created (409 plan_exists if the id is taken)"),
)
def create_plan(body: Annotated[PlanIn, Body()]) -> Response[str]:
    record = services(router).catalog.create_plan(
        principal(router).tenant_id, body.model_dump(exclude_unset=True), received_at(router)
    )
    return respond(HTTPStatus.CREATED, PlanOut.of(record))


@router.post(
    "/v1/plans/<plan_id>/versions",
    summary="Publish the next version of a plan",
    tags=[TAG],
    operation_id="createPlanVersion",
    security=requires(Scope.ADMIN),
    responses=answers(201, PlanOut, 404, body=True),
)
def create_plan_version(plan_id: PathId, body: Annotated[PlanVersionIn, Body()]) -> Response[str]:
    record = services(router).catalog.create_plan_version(
        principal(router).tenant_id, plan_id, body.model_dump(exclude_unset=True), received_at(router)
    )
    return respond(HTTPStatus.CREATED, PlanOut.of(record))


@router.get(
    "/v1/plans",
    summary="The tenant's plans (their latest versions), a page at a time",
    tags=[TAG],
    operation_id="listPlans",
    security=requires(Scope.ADMIN),
    responses=answers(200, Page[PlanOut]),
)
def list_plans(
    limit: Annotated[PageSize, Query()] = DEFAULT_PAGE_SIZE, cursor: Annotated[Cursor | None, Query()] = None
) -> Response[str]:
    page = services(router).catalog.list_plans(principal(router).tenant_id, limit, cursor)
    return respond(
        HTTPStatus.OK, Page[PlanOut](data=[PlanOut.of(p) for p in page.items], next_cursor=page.next_cursor)
    )


@router.get(
    "/v1/plans/<plan_id>",
    summary="A plan: its latest version, or ?version=n",
    tags=[TAG],
    operation_id="getPlan",
    security=requires(Scope.ADMIN),
    responses=answers(200, PlanOut, 404),
)
def get_plan(
    plan_id: PathId, version: Annotated[int | None, Query(ge=1, le=999_999)] = None
) -> Response[str]:
    record = services(router).catalog.get_plan(principal(router).tenant_id, plan_id, version)
    return respond(HTTPStatus.OK, PlanOut.of(record))
