"""Subscriptions: a customer on a plan over time (plan changes and cancellation are segments)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from billing.api.edge import answers, principal, received_at, requires, respond, services
from billing.api.models.catalog import CancelIn, ChangePlanIn, SubscriptionIn, SubscriptionOut
from billing.api.models.common import PathId
from billing.domain.tenants import Scope

router = Router()
TAG = "Subscriptions"


@router.post(
    "/v1/subscriptions",
    summary="Subscribe a customer to a plan (one subscription at a time per customer)",
    tags=[TAG],
    operation_id="createSubscription",
    security=requires(Scope.ADMIN),
    responses=answers(201, SubscriptionOut, body=True),
)
def create_subscription(body: Annotated[SubscriptionIn, Body()]) -> Response[str]:
    record = services(router).catalog.create_subscription(
        principal(router).tenant_id, body.model_dump(exclude_unset=True), received_at(router)
    )
    return respond(HTTPStatus.CREATED, SubscriptionOut.of(record))


@router.get(
    "/v1/subscriptions/<subscription_id>",
    summary="One subscription with its plan segments",
    tags=[TAG],
    operation_id="getSubscription",
    security=requires(Scope.ADMIN),
    responses=answers(200, SubscriptionOut, 404),
)
def get_subscription(subscription_id: PathId) -> Response[str]:
    record = services(router).catalog.get_subscription(principal(router).tenant_id, subscription_id)
    return respond(HTTPStatus.OK, SubscriptionOut.of(record))


@router.post(
    "/v1/subscriptions/<subscription_id>/change-plan",
    summary="Move a subscription to another plan (or version) from effective_at on",
    description="The base fee is prorated by seconds and usage charges are split at the change.",
    tags=[TAG],
    operation_id="changePlan",
    security=requires(Scope.ADMIN),
    responses=answers(200, SubscriptionOut, 404, body=True),
)
def change_plan(subscription_id: PathId, body: Annotated[ChangePlanIn, Body()]) -> Response[str]:
    record = services(router).catalog.change_plan(
        principal(router).tenant_id, subscription_id, body.model_dump(exclude_unset=True), received_at(router)
    )
    return respond(HTTPStatus.OK, SubscriptionOut.of(record))


@router.post(
    "/v1/subscriptions/<subscription_id>/cancel",
    summary="Cancel a subscription, now or at a given time",
    tags=[TAG],
    operation_id="cancelSubscription",
    security=requires(Scope.ADMIN),
    responses=answers(200, SubscriptionOut, 404, body=True),
)
def cancel_subscription(
    subscription_id: PathId, body: Annotated[CancelIn | None, Body()] = None
) -> Response[str]:
    data = {} if body is None else body.model_dump(exclude_unset=True)
    record = services(router).catalog.cancel_subscription(
        principal(router).tenant_id, subscription_id, data, received_at(router)
    )
    return respond(HTTPStatus.OK, SubscriptionOut.of(record))
