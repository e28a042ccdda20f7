"""Meters: which events count, and how they aggregate."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from billing.api.edge import answers, principal, received_at, requires, respond, services
from billing.api.models.catalog import MeterIn, MeterOut
from billing.api.models.common import DEFAULT_PAGE_SIZE, Cursor, Page, PageSize, PathId
from billing.domain.tenants import Scope

router = Router()
TAG = "Meters"


@router.post(
    "/v1/meters",
    summary="Define a meter",
    tags=[TAG],
    operation_id="createMeter",
    security=requires(Scope.ADMIN),
    responses=answers(201, MeterOut, body=True, description="Created (409 meter_exists if the key is taken)"),
)
def create_meter(body: Annotated[MeterIn, Body()]) -> Response[str]:
    record = services(router).catalog.create_meter(
        principal(router).tenant_id, body.model_dump(exclude_unset=True), received_at(router)
    )
    return respond(HTTPStatus.CREATED, MeterOut.of(record))


@router.get(
    "/v1/meters",
    summary="The tenant's meters, a page at a time",
    tags=[TAG],
    operation_id="listMeters",
    security=requires(Scope.ADMIN),
    responses=answers(200, Page[MeterOut]),
)
def list_meters(
    limit: Annotated[PageSize, Query()] = DEFAULT_PAGE_SIZE, cursor: Annotated[Cursor | None, Query()] = None
) -> Response[str]:
    page = services(router).catalog.list_meters(principal(router).tenant_id, limit, cursor)
    return respond(
        HTTPStatus.OK, Page[MeterOut](data=[MeterOut.of(m) for m in page.items], next_cursor=page.next_cursor)
    )


@router.get(
    "/v1/meters/<key>",
    summary="One meter",
    tags=[TAG],
    operation_id="getMeter",
    security=requires(Scope.ADMIN),
    responses=answers(200, MeterOut, 404),
)
def get_meter(key: PathId) -> Response[str]:
    return respond(
        HTTPStatus.OK, MeterOut.of(services(router).catalog.get_meter(principal(router).tenant_id, key))
    )
