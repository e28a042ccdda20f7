"""Payments received outside the gateways (a wire, a cheque), recorded against an invoice."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from billing.api.edge import answers, principal, requires, respond, services
from billing.api.models.common import PathId
from billing.api.models.invoices import PaymentIn, PaymentOut
from billing.domain.tenants import Scope

router = Router()
TAG = "Payments"


@router.post(
    "/v1/invoices/<invoice_id>/payments",
    summary="Record a payment received outside the gateways",
    description="Partial payments are allowed; what exceeds the amount due becomes customer credit. The "
    "reference makes it idempotent: the same reference again answers 200 with the payment recorded first "
    "(409 payment_reference_reused with another amount).",
    tags=[TAG],
    operation_id="recordPayment",
    security=requires(Scope.ADMIN),
    responses={
        **answers(201, PaymentOut, 404, body=True, description="Recorded"),
        200: {
            "description": "Already recorded with this reference",
            "content": {"application/json": {"model": PaymentOut}},
        },
    },
)
def record_payment(invoice_id: PathId, body: Annotated[PaymentIn, Body()]) -> Response[str]:
    outcome = services(router).payments.record(
        principal(router).tenant_id, invoice_id, body.amount_decimal, body.reference
    )
    return respond(HTTPStatus.CREATED if outcome.created else HTTPStatus.OK, PaymentOut.of(outcome))
