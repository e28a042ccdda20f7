"""Invoices: finalized by billing runs, read here."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from billing.api.edge import answers, principal, requires, respond, services
from billing.api.models.common import DEFAULT_PAGE_SIZE, Cursor, Id, Page, PageSize, PathId
from billing.api.models.invoices import InvoiceOut
from billing.domain.tenants import Scope

router = Router()
TAG = "Invoices"


@router.get(
    "/v1/invoices",
    summary="A customer's invoices by period, a page at a time",
    tags=[TAG],
    operation_id="listInvoices",
    security=requires(Scope.ADMIN),
    responses=answers(200, Page[InvoiceOut]),
)
def list_invoices(
    customer_id: Annotated[Id, Query(description="The customer")],
    limit: Annotated[PageSize, Query()] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[Cursor | None, Query()] = None,
) -> Response[str]:
    page = services(router).invoices.list_for_customer(
        principal(router).tenant_id, customer_id, limit, cursor
    )
    data = [InvoiceOut.of(invoice) for invoice in page.items]
    return respond(HTTPStatus.OK, Page[InvoiceOut](data=data, next_cursor=page.next_cursor))


@router.get(
    "/v1/invoices/<invoice_id>",
    summary="One invoice with its lines, tax and amounts",
    tags=[TAG],
    operation_id="getInvoice",
    security=requires(Scope.ADMIN),
    responses=answers(200, InvoiceOut, 404),
)
def get_invoice(invoice_id: PathId) -> Response[str]:
    return respond(
        HTTPStatus.OK, InvoiceOut.of(services(router).invoices.get(principal(router).tenant_id, invoice_id))
    )
