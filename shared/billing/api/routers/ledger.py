"""A customer's ledger: journal entries, balances and the verification of the hash chain."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from billing.api.edge import answers, principal, requires, respond, services
from billing.api.models.common import Cursor, PathId
from billing.api.models.ledger import LedgerOut
from billing.domain.tenants import Scope

router = Router()
TAG = "Ledger"
MAX_ENTRIES_PER_PAGE = 1000


@router.get(
    "/v1/customers/<customer_id>/ledger",
    summary="The customer's journal entries (oldest first, paged), balances and chain check",
    tags=[TAG],
    operation_id="getLedger",
    security=requires(Scope.ADMIN),
    responses=answers(200, LedgerOut, 404),
)
def get_ledger(
    customer_id: PathId,
    limit: Annotated[int, Query(ge=1, le=MAX_ENTRIES_PER_PAGE, description="Entries per page")] = 100,
    cursor: Annotated[Cursor | None, Query()] = None,
) -> Response[str]:
    statement = services(router).ledger.statement(principal(router).tenant_id, customer_id, limit, cursor)
    return respond(HTTPStatus.OK, LedgerOut.of(statement))
