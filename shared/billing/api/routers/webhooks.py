"""Webhooks: endpoints (with their signing secrets), deliveries (with their attempts, and replay), and the
events of a customer for reconciliation."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from billing.api.edge import answers, principal, received_at, requires, respond, services
from billing.api.models.common import DEFAULT_PAGE_SIZE, Cursor, Id, Page, PageSize, PathId, SystemId
from billing.api.models.webhooks import (
    DeliveryStatusName,
    WebhookDeliveryOut,
    WebhookEndpointCreated,
    WebhookEndpointDeleted,
    WebhookEndpointIn,
    WebhookEndpointOut,
    WebhookEndpointPatchIn,
    WebhookEventOut,
)
from billing.domain.tenants import Scope
from billing.domain.webhooks.deliveries import DeliveryStatus

router = Router()
TAG = "Webhooks"


@router.post(
    "/v1/webhook-endpoints",
    summary="Create a webhook endpoint",
    description="Deliveries are signed per Standard Webhooks with the `secret` in this answer: it is shown "
    "here once. The URL must be https and resolve to public addresses only (checked now and at every "
    "delivery). The endpoint receives the events created from now on.",
    tags=[TAG],
    operation_id="createWebhookEndpoint",
    security=requires(Scope.ADMIN),
    responses=answers(201, WebhookEndpointCreated, body=True, description="Created"),
)
def create_endpoint(body: Annotated[WebhookEndpointIn, Body()]) -> Response[str]:
    created = services(router).webhook_endpoints.create(
        principal(router).tenant_id, body.url, body.event_types, body.description
    )
    return respond(
        HTTPStatus.CREATED,
        WebhookEndpointCreated.of(created.endpoint, received_at(router), secret=created.secret),
    )


@router.get(
    "/v1/webhook-endpoints",
    summary="The tenant's webhook endpoints",
    tags=[TAG],
    operation_id="listWebhookEndpoints",
    security=requires(Scope.ADMIN),
    responses=answers(200, Page[WebhookEndpointOut]),
)
def list_endpoints(
    limit: Annotated[PageSize, Query()] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[Cursor | None, Query()] = None,
) -> Response[str]:
    page = services(router).webhook_endpoints.list(principal(router).tenant_id, limit, cursor)
    data = [WebhookEndpointOut.of(endpoint, received_at(router)) for endpoint in page.items]
    return respond(HTTPStatus.OK, Page[WebhookEndpointOut](data=data, next_cursor=page.next_cursor))


@router.get(
    "/v1/webhook-endpoints/<endpoint_id>",
    summary="One webhook endpoint (its secret is never shown again)",
    tags=[TAG],
    operation_id="getWebhookEndpoint",
    security=requires(Scope.ADMIN),
    responses=answers(200, WebhookEndpointOut, 404),
)
def get_endpoint(endpoint_id: PathId) -> Response[str]:
    endpoint = services(router).webhook_endpoints.get(principal(router).tenant_id, endpoint_id)
    return respond(HTTPStatus.OK, WebhookEndpointOut.of(endpoint, received_at(router)))


@router.patch(
    "/v1/webhook-endpoints/<endpoint_id>",
    summary="Disable or enable an endpoint, change its event types, URL or description",
    description="`disabled: true` stops deliveries at once; `false` resumes them: pending deliveries first, "
    "in order, then the events created from now on (events created while it was disabled are not sent; "
    "GET /v1/webhook-events lists them).",
    tags=[TAG],
    operation_id="updateWebhookEndpoint",
    security=requires(Scope.ADMIN),
    responses=answers(200, WebhookEndpointOut, 404, body=True),
)
def update_endpoint(endpoint_id: PathId, body: Annotated[WebhookEndpointPatchIn, Body()]) -> Response[str]:
    endpoint = services(router).webhook_endpoints.update(
        principal(router).tenant_id,
        endpoint_id,
        disabled=body.disabled,
        types=body.event_types,
        url=body.url,
        description=body.description,
    )
    return respond(HTTPStatus.OK, WebhookEndpointOut.of(endpoint, received_at(router)))


@router.delete(
    "/v1/webhook-endpoints/<endpoint_id>",
    summary="Delete an endpoint: nothing more is sent to it",
    tags=[TAG],
    operation_id="deleteWebhookEndpoint",
    security=requires(Scope.ADMIN),
    responses=answers(200, WebhookEndpointDeleted, 404),
)
def delete_endpoint(endpoint_id: PathId) -> Response[str]:
    endpoint = services(router).webhook_endpoints.delete(principal(router).tenant_id, endpoint_id)
    return respond(HTTPStatus.OK, WebhookEndpointDeleted(id=endpoint.id))


@router.post(
    "/v1/webhook-endpoints/<endpoint_id>/rotate-secret",
    summary="Rotate the signing secret",
    description="The new secret (shown here once) signs from now on; the previous one keeps signing beside "
    "it for 24 hours (`webhook-signature` then carries both), so receivers can switch without a gap.",
    tags=[TAG],
    operation_id="rotateWebhookSecret",
    security=requires(Scope.ADMIN),
    responses=answers(200, WebhookEndpointCreated, 404, body=True, description="Rotated"),
)
def rotate_secret(endpoint_id: PathId) -> Response[str]:
    rotated = services(router).webhook_endpoints.rotate_secret(principal(router).tenant_id, endpoint_id)
    return respond(
        HTTPStatus.OK, WebhookEndpointCreated.of(rotated.endpoint, received_at(router), secret=rotated.secret)
    )


@router.get(
    "/v1/webhook-deliveries",
    summary="Deliveries with their attempts, newest first",
    description="One endpoint's (`endpoint_id`), or every endpoint's one after the other.",
    tags=[TAG],
    operation_id="listWebhookDeliveries",
    security=requires(Scope.ADMIN),
    responses=answers(200, Page[WebhookDeliveryOut], 404),
)
def list_deliveries(
    endpoint_id: Annotated[SystemId | None, Query(description="The endpoint")] = None,
    status: Annotated[DeliveryStatusName | None, Query(description="Only deliveries in this state")] = None,
    limit: Annotated[PageSize, Query()] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[Cursor | None, Query()] = None,
) -> Response[str]:
    page = services(router).webhook_deliveries.list(
        principal(router).tenant_id,
        endpoint_id,
        DeliveryStatus(status) if status else None,
        limit,
        cursor,
    )
    data = [WebhookDeliveryOut.of(delivery) for delivery in page.items]
    return respond(HTTPStatus.OK, Page[WebhookDeliveryOut](data=data, next_cursor=page.next_cursor))


@router.get(
    "/v1/webhook-deliveries/<delivery_id>",
    summary="One delivery with its attempts",
    tags=[TAG],
    operation_id="getWebhookDelivery",
    security=requires(Scope.ADMIN),
    responses=answers(200, WebhookDeliveryOut, 404),
)
def get_delivery(delivery_id: PathId) -> Response[str]:
    delivery = services(router).webhook_deliveries.get(principal(router).tenant_id, delivery_id)
    return respond(HTTPStatus.OK, WebhookDeliveryOut.of(delivery))


@router.post(
    "/v1/webhook-deliveries/<delivery_id>/replay",
    summary="Send a delivery again (same webhook-id), up to 30 days after it was created",
    description="A delivered or dead-lettered one gets one attempt now; a pending one is made due now, in "
    "its order. 409 when its endpoint is disabled or deleted; 422 replay_window_passed after 30 days.",
    tags=[TAG],
    operation_id="replayWebhookDelivery",
    security=requires(Scope.ADMIN),
    responses=answers(202, WebhookDeliveryOut, 404, body=True, description="Replay requested"),
)
def replay_delivery(delivery_id: PathId) -> Response[str]:
    delivery = services(router).webhook_deliveries.replay(principal(router).tenant_id, delivery_id)
    return respond(HTTPStatus.ACCEPTED, WebhookDeliveryOut.of(delivery))


@router.get(
    "/v1/webhook-events",
    summary="A customer's webhook events in sequence order, for reconciliation",
    description="Every event the system announced for the customer, whatever was delivered: compare the "
    "`sequence` numbers you received with these to find what you missed.",
    tags=[TAG],
    operation_id="listWebhookEvents",
    security=requires(Scope.ADMIN),
    responses=answers(200, Page[WebhookEventOut]),
)
def list_events(
    customer_id: Annotated[Id, Query(description="The customer")],
    limit: Annotated[PageSize, Query()] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[Cursor | None, Query()] = None,
) -> Response[str]:
    page = services(router).webhook_events.list(principal(router).tenant_id, customer_id, limit, cursor)
    data = [WebhookEventOut.of(event) for event in page.items]
    return respond(HTTPStatus.OK, Page[WebhookEventOut](data=data, next_cursor=page.next_cursor))
