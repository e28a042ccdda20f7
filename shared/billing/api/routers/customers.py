"""Customers: who is billed, in which currency and time zone, where they are taxed, how they pay."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from billing.api.edge import answers, principal, received_at, requires, respond, services
from billing.api.models.catalog import CustomerIn, CustomerOut, CustomerPatchIn
from billing.api.models.common import DEFAULT_PAGE_SIZE, Cursor, Page, PageSize, PathId
from billing.domain.tenants import Scope

router = Router()
TAG = "Customers"


@router.post(
    "/v1/customers",
    summary="Create a customer",
    tags=[TAG],
    operation_id="createCustomer",
    security=requires(Scope.ADMIN),
    responses=answers(
        201, CustomerOut, body=True, description="Created (409 customer_exists if the id is taken)"
    ),
)
def create_customer(body: Annotated[CustomerIn, Body()]) -> Response[str]:
    now = received_at(router)
    profile = services(router).catalog.create_customer(
        principal(router).tenant_id, body.model_dump(exclude_unset=True), now
    )
    return respond(HTTPStatus.CREATED, CustomerOut.of(profile, now))


@router.get(
    "/v1/customers",
    summary="The tenant's customers, a page at a time",
    tags=[TAG],
    operation_id="listCustomers",
    security=requires(Scope.ADMIN),
    responses=answers(200, Page[CustomerOut]),
)
def list_customers(
    limit: Annotated[PageSize, Query()] = DEFAULT_PAGE_SIZE, cursor: Annotated[Cursor | None, Query()] = None
) -> Response[str]:
    now = received_at(router)
    page = services(router).catalog.list_customers(principal(router).tenant_id, limit, cursor)
    data = [CustomerOut.of(profile, now) for profile in page.items]
    return respond(HTTPStatus.OK, Page[CustomerOut](data=data, next_cursor=page.next_cursor))


@router.get(
    "/v1/customers/<customer_id>",
    summary="One customer",
    tags=[TAG],
    operation_id="getCustomer",
    security=requires(Scope.ADMIN),
    responses=answers(200, CustomerOut, 404),
)
def get_customer(customer_id: PathId) -> Response[str]:
    profile = services(router).catalog.get_customer(principal(router).tenant_id, customer_id)
    return respond(HTTPStatus.OK, CustomerOut.of(profile, received_at(router)))


@router.patch(
    "/v1/customers/<customer_id>",
    summary="Update a customer (a tax location change is kept as history)",
    description="Fields present are replaced; null clears name, email or payment_method. A new `tax` "
    "location applies from `tax_effective_at` (default now) and corrects what was billed from then on. "
    "Currency, time zone and anchor day change only while the customer has no subscription.",
    tags=[TAG],
    operation_id="updateCustomer",
    security=requires(Scope.ADMIN),
    responses=answers(200, CustomerOut, 404, body=True),
)
def update_customer(customer_id: PathId, body: Annotated[CustomerPatchIn, Body()]) -> Response[str]:
    now = received_at(router)
    profile = services(router).catalog.update_customer(
        principal(router).tenant_id, customer_id, body.model_dump(exclude_unset=True), now
    )
    return respond(HTTPStatus.OK, CustomerOut.of(profile, now))
