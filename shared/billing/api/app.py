"""The API as one Powertools resolver: the routers of every resource, the edge middlewares, the error
answers, the OpenAPI document and its docs page. Built once per process by the api function."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, get_args

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
    OpenAPIRequestValidationMiddleware,
)
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.types import EventHandlerInstance
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)

from billing.api import errors
from billing.api.edge import authenticate, idempotent, parse_json, read_body
from billing.api.idempotency import IdempotentRequests
from billing.api.models.common import RequestModel
from billing.api.openapi import build_document, docs_page, document_text
from billing.api.routers import (
    billing_runs,
    customers,
    events,
    invoices,
    ledger,
    meters,
    payments,
    plans,
    subscriptions,
    usage,
    webhooks,
)
from billing.domain.errors import BillingError

if TYPE_CHECKING:
    from billing.bootstrap import Services

ROUTERS = (
    events,
    meters,
    customers,
    plans,
    subscriptions,
    usage,
    billing_runs,
    invoices,
    payments,
    ledger,
    webhooks,
)
OPENAPI_PATH = "/v1/openapi.json"
DOCS_PATH = "/docs"


class BillingApi:
    """The resolver and what it needs per process: the services and the idempotency records."""

    def __init__(self, services: Callable[[], Services]) -> None:
        self._services = services
        self.resolver = APIGatewayRestResolver(json_body_deserializer=parse_json)
        for module in ROUTERS:
            self.resolver.include_router(module.router)
        self.resolver.use(
            middlewares=[
                self._provide,
                authenticate,
                read_body,
                OpenAPIRequestValidationMiddleware(),
                idempotent,
            ]
        )
        self._register_error_answers()
        self._register_documents()

    @cached_property
    def idempotent_requests(self) -> IdempotentRequests:
        services = self._services()
        return IdempotentRequests(services.idempotency_store, services.settings.idempotency_ttl_seconds)

    @cached_property
    def document(self) -> dict[str, Any]:
        return build_document(self.resolver)

    @cached_property
    def document_text(self) -> str:
        return document_text(self.document)

    @cached_property
    def docs_page(self) -> str:
        return docs_page(self.document)

    def resolve(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        try:
            return self.resolver.resolve(event, context)
        except Exception as exc:  # the last line of defence: an answer in the error shape, never a traceback
            response = errors.internal_error(exc)
            return {
                "statusCode": response.status_code,
                "headers": {"Content-Type": content_types.APPLICATION_JSON},
                "body": response.body,
                "isBase64Encoded": False,
            }

    def _provide(self, app: EventHandlerInstance, next_middleware: NextMiddleware) -> Response:
        """Hand the services to the routes and middlewares of this invocation."""
        services = self._services()
        requests = self.idempotent_requests
        requests.register_lambda_context(app.lambda_context)
        app.append_context(services=services, idempotent_requests=requests)
        return next_middleware(app)

    def _register_error_answers(self) -> None:
        resolver = self.resolver
        resolver.exception_handler(BillingError)(errors.billing_error)
        resolver.exception_handler(RequestValidationError)(
            lambda error: errors.validation_error(error, self._body_model())
        )
        resolver.exception_handler(RequestUnsupportedContentType)(errors.unsupported_content_type)
        resolver.exception_handler(IdempotencyValidationError)(errors.idempotency_key_reused)
        resolver.exception_handler(IdempotencyAlreadyInProgressError)(errors.idempotency_in_progress)
        resolver.exception_handler(Exception)(errors.internal_error)

        @resolver.not_found
        def _no_route(_: Exception) -> Response[str]:
            return errors.error_response(HTTPStatus.NOT_FOUND, "route_not_found", "no such route")

    def _body_model(self) -> type[RequestModel] | None:
        """The request model of the body of the route being answered, if it has one."""
        route = self.resolver.context.get("_route")
        for param in getattr(getattr(route, "dependant", None), "body_params", None) or ():
            for candidate in (param.field_info.annotation, *get_args(param.field_info.annotation)):
                if isinstance(candidate, type) and issubclass(candidate, RequestModel):
                    return candidate
        return None

    def _register_documents(self) -> None:
        resolver = self.resolver

        @resolver.get(OPENAPI_PATH, include_in_schema=False, compress=True)
        def openapi() -> Response[str]:
            return Response(HTTPStatus.OK, content_types.APPLICATION_JSON, self.document_text)

        @resolver.get(DOCS_PATH, include_in_schema=False, compress=True)
        def docs() -> Response[str]:
            return Response(HTTPStatus.OK, "text/html; charset=utf-8", self.docs_page)
