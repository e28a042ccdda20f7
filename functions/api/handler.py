"""The api function: every HTTP route of API.md behind API Gateway (REST, Lambda proxy).

Thin by design: authenticate from the authorizer's context, parse, call one use case, map domain
errors to HTTP in one place.
"""

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyKeyError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from billing.bootstrap import get_services
from billing.domain.errors import (
    BillingError,
    Conflict,
    Forbidden,
    InvalidEvent,
    InvalidRequest,
    MalformedRequest,
    NotFound,
    PayloadTooLarge,
    TransientFailure,
    Unauthenticated,
)
from billing.domain.ledger.chain import balances, balances_to_json, verify_chain
from billing.domain.rating.errors import RatingFailed
from billing.domain.tenants import Principal, Scope
from billing.domain.usage_events import MAX_ID_LENGTH, parse_timestamp
from billing.runtime import logger, metrics, tracer
from billing.services.catalog import Page, page_size, query_instant, query_version, read_catalog_request
from billing.services.idempotent_requests import MAX_KEY_LENGTH
from billing.services.ingest import read_ingest_request

app = APIGatewayRestResolver()

STATUS_BY_ERROR: dict[type[BillingError], HTTPStatus] = {
    MalformedRequest: HTTPStatus.BAD_REQUEST,
    Unauthenticated: HTTPStatus.UNAUTHORIZED,
    Forbidden: HTTPStatus.FORBIDDEN,
    NotFound: HTTPStatus.NOT_FOUND,
    Conflict: HTTPStatus.CONFLICT,
    PayloadTooLarge: HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    InvalidRequest: HTTPStatus.UNPROCESSABLE_ENTITY,
    InvalidEvent: HTTPStatus.UNPROCESSABLE_ENTITY,
    TransientFailure: HTTPStatus.SERVICE_UNAVAILABLE,
    # Stored catalog data that cannot be rated as it is: the request is fine, the state is not.
    RatingFailed: HTTPStatus.CONFLICT,
}


# ---- responses ---------------------------------------------------------------------------------------


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(body, separators=(",", ":"), default=str),
        headers=headers or {},
    )


def error_response(
    status: int,
    code: str,
    message: str,
    details: list[Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    return json_response(
        status, {"error": {"code": code, "message": message, "details": details or []}}, headers
    )


@app.exception_handler(BillingError)
def _billing_error(error: BillingError) -> Response:
    status = next(
        (code for kind, code in STATUS_BY_ERROR.items() if isinstance(error, kind)), HTTPStatus.BAD_REQUEST
    )
    details = list(error.details)
    if isinstance(error, InvalidEvent) and error.field:
        details.append({"field": error.field})
    headers = {"Retry-After": "1"} if status == HTTPStatus.SERVICE_UNAVAILABLE else None
    return error_response(status, error.code, error.message, details, headers)


@app.exception_handler(IdempotencyValidationError)
def _idempotency_reused(_: IdempotencyValidationError) -> Response:
    return error_response(
        HTTPStatus.UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        "this Idempotency-Key was already used with a different request body",
    )


@app.exception_handler(IdempotencyAlreadyInProgressError)
def _idempotency_in_progress(_: IdempotencyAlreadyInProgressError) -> Response:
    return error_response(
        HTTPStatus.CONFLICT,
        "idempotency_key_in_progress",
        "a request with this Idempotency-Key is still being processed; retry shortly",
        headers={"Retry-After": "1"},
    )


@app.not_found
def _not_found(_: Exception) -> Response:
    return error_response(HTTPStatus.NOT_FOUND, "route_not_found", "no such route")


# ---- request helpers ---------------------------------------------------------------------------------


def require(scope: Scope) -> Principal:
    """The caller as the authorizer described it; the scope must cover the route."""
    context = app.current_event.raw_event.get("requestContext", {}).get("authorizer") or {}
    tenant_id, key_id, granted = context.get("tenant_id"), context.get("key_id"), context.get("scope")
    if not tenant_id or not key_id or granted not in {s.value for s in Scope}:
        raise Unauthenticated("a valid API key is required: Authorization: Bearer <key>")
    principal = Principal(tenant_id=tenant_id, key_id=key_id, scope=Scope(granted))
    if not principal.scope.allows(scope):
        raise Forbidden(
            f"this API key has the {principal.scope.value!r} scope; this route needs {scope.value!r}"
        )
    logger.append_keys(tenant_id=principal.tenant_id, key_id=principal.key_id)
    return principal


def raw_body() -> bytes:
    event = app.current_event
    if event.body is None:
        return b""
    if event.is_base64_encoded:
        return base64.b64decode(event.body)
    return event.body.encode()


def received_at() -> datetime:
    epoch_ms = app.current_event.raw_event.get("requestContext", {}).get("requestTimeEpoch")
    if isinstance(epoch_ms, int | float) and epoch_ms > 0:
        return datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return datetime.now(UTC)


def query(name: str) -> str | None:
    return app.current_event.get_query_string_value(name)


def page_response(page: Page[Any], render: Callable[[Any], dict[str, Any]]) -> Response:
    return json_response(
        HTTPStatus.OK, {"data": [render(item) for item in page.items], "next_cursor": page.next_cursor}
    )


def known_shape(identifier: str, what: str) -> None:
    """An id no stored object can have (too long for a key) is simply not found, never a 5xx."""
    if not 1 <= len(identifier) <= MAX_ID_LENGTH:
        raise NotFound(f"{what} not found")


def idempotently(principal: Principal, operation: Callable[[], tuple[int, dict[str, Any]]]) -> Response:
    """Run a POST or PATCH operation, replaying the stored response for an Idempotency-Key seen before."""
    key = app.current_event.headers.get("Idempotency-Key")
    if key is None:
        status, body = operation()
        return json_response(status, body)
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise MalformedRequest(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters", code="invalid_header"
        )
    requests = get_services().idempotent_requests
    try:
        stored = requests.run(
            tenant_id=principal.tenant_id,
            key=key,
            method=app.current_event.http_method,
            path=app.current_event.path,
            body=raw_body(),
            operation=operation,
        )
    except IdempotencyKeyError as exc:  # pragma: no cover - the key is always present here
        raise MalformedRequest(str(exc), code="invalid_header") from exc
    headers = {"Idempotent-Replayed": "true"} if stored.replayed else None
    return json_response(stored.status, stored.body, headers)


# ---- routes ------------------------------------------------------------------------------------------


@app.post("/v1/events", summary="Send usage events (one, a batch, or CloudEvents)")
@tracer.capture_method(capture_response=False)  # responses carry personal data: not in traces
def post_events() -> Response[str]:
    principal = require(Scope.INGEST)
    body = raw_body()
    content_type = app.current_event.headers.get("Content-Type")

    def operation() -> tuple[int, dict[str, Any]]:
        request = read_ingest_request(body, content_type)
        result = get_services().ingest.ingest(principal.tenant_id, request, received_at())
        if not request.batch and result.rejected:
            problem = result.rejected[0]
            return HTTPStatus.UNPROCESSABLE_ENTITY, {
                "error": {"code": problem.code, "message": problem.message, "details": [problem.to_json()]}
            }
        return HTTPStatus.ACCEPTED, result.to_json()

    return idempotently(principal, operation)


@app.get("/v1/events/<event_id>", summary="The stored status of one event")
@tracer.capture_method(capture_response=False)
def get_event(event_id: str) -> Response[str]:
    principal = require(Scope.ADMIN)
    known_shape(event_id, "event")
    customer_id = app.current_event.get_query_string_value("customer_id")
    if not customer_id:
        raise MalformedRequest("the customer_id query parameter is required", code="missing_parameter")
    known_shape(customer_id, "event")
    services = get_services()
    stored = services.event_store.get(principal.tenant_id, customer_id, event_id)
    if stored is None:
        raise NotFound(f"event {event_id!r} of customer {customer_id!r} is not stored (yet)")
    billed = services.usage.event_period(principal.tenant_id, customer_id, parse_timestamp(stored.timestamp))
    return json_response(
        HTTPStatus.OK,
        {
            "id": stored.event_id,
            "customer_id": stored.customer_id,
            "type": stored.type,
            "timestamp": stored.timestamp,
            "received_at": stored.received_at,
            "stored_at": stored.stored_at,
            "status": stored.status,
            # The period of the customer's subscription running at the event's timestamp, if any.
            "subscription_id": None if billed is None else billed.subscription_id,
            "period": None if billed is None else billed.period.to_json(),
        },
    )


# ---- catalog: meters ---------------------------------------------------------------------------------


@app.post("/v1/meters", summary="Define a meter (201; 409 meter_exists)")
@tracer.capture_method(capture_response=False)
def post_meter() -> Response[str]:
    principal = require(Scope.ADMIN)
    body = raw_body()

    def operation() -> tuple[int, dict[str, Any]]:
        data = read_catalog_request(body)
        record = get_services().catalog.create_meter(principal.tenant_id, data, received_at())
        return HTTPStatus.CREATED, record.to_api()

    return idempotently(principal, operation)


@app.get("/v1/meters", summary="The tenant's meters, a page at a time")
@tracer.capture_method(capture_response=False)
def list_meters() -> Response[str]:
    principal = require(Scope.ADMIN)
    page = get_services().catalog.list_meters(principal.tenant_id, page_size(query("limit")), query("cursor"))
    return page_response(page, lambda record: record.to_api())


@app.get("/v1/meters/<key>", summary="One meter")
@tracer.capture_method(capture_response=False)
def get_meter(key: str) -> Response[str]:
    principal = require(Scope.ADMIN)
    return json_response(HTTPStatus.OK, get_services().catalog.get_meter(principal.tenant_id, key).to_api())


# ---- catalog: customers ------------------------------------------------------------------------------


@app.post("/v1/customers", summary="Create a customer (201; 409 customer_exists)")
@tracer.capture_method(capture_response=False)
def post_customer() -> Response[str]:
    principal = require(Scope.ADMIN)
    body = raw_body()

    def operation() -> tuple[int, dict[str, Any]]:
        now = received_at()
        data = read_catalog_request(body)
        profile = get_services().catalog.create_customer(principal.tenant_id, data, now)
        return HTTPStatus.CREATED, profile.to_api(now)

    return idempotently(principal, operation)


@app.get("/v1/customers", summary="The tenant's customers, a page at a time")
@tracer.capture_method(capture_response=False)
def list_customers() -> Response[str]:
    principal = require(Scope.ADMIN)
    now = received_at()
    page = get_services().catalog.list_customers(
        principal.tenant_id, page_size(query("limit")), query("cursor")
    )
    return page_response(page, lambda profile: profile.to_api(now))


@app.get("/v1/customers/<customer_id>", summary="One customer")
@tracer.capture_method(capture_response=False)
def get_customer(customer_id: str) -> Response[str]:
    principal = require(Scope.ADMIN)
    profile = get_services().catalog.get_customer(principal.tenant_id, customer_id)
    return json_response(HTTPStatus.OK, profile.to_api(received_at()))


@app.patch(
    "/v1/customers/<customer_id>", summary="Update a customer (tax location changes are kept as history)"
)
@tracer.capture_method(capture_response=False)
def patch_customer(customer_id: str) -> Response[str]:
    principal = require(Scope.ADMIN)
    body = raw_body()

    def operation() -> tuple[int, dict[str, Any]]:
        now = received_at()
        data = read_catalog_request(body)
        profile = get_services().catalog.update_customer(principal.tenant_id, customer_id, data, now)
        return HTTPStatus.OK, profile.to_api(now)

    return idempotently(principal, operation)


@app.get("/v1/customers/<customer_id>/usage", summary="Usage and estimated amount of the open period")
@tracer.capture_method(capture_response=False)
def get_usage(customer_id: str) -> Response[str]:
    principal = require(Scope.ADMIN)
    at_text = query("at")
    at = received_at() if at_text is None else query_instant(at_text, "at")
    report = get_services().usage.open_period(principal.tenant_id, customer_id, at)
    return json_response(HTTPStatus.OK, report.to_json())


# ---- catalog: plans ----------------------------------------------------------------------------------


@app.post("/v1/plans", summary="Create a plan, version 1 (201; 409 plan_exists)")
@tracer.capture_method(capture_response=False)
def post_plan() -> Response[str]:
    principal = require(Scope.ADMIN)
    body = raw_body()

    def operation() -> tuple[int, dict[str, Any]]:
        data = read_catalog_request(body)
        record = get_services().catalog.create_plan(principal.tenant_id, data, received_at())
        return HTTPStatus.CREATED, record.to_api()

    return idempotently(principal, operation)


@app.post("/v1/plans/<plan_id>/versions", summary="Publish the next version of a plan (201)")
@tracer.capture_method(capture_response=False)
def post_plan_version(plan_id: str) -> Response[str]:
    principal = require(Scope.ADMIN)
    body = raw_body()

    def operation() -> tuple[int, dict[str, Any]]:
        data = read_catalog_request(body)
        record = get_services().catalog.create_plan_version(principal.tenant_id, plan_id, data, received_at())
        return HTTPStatus.CREATED, record.to_api()

    return idempotently(principal, operation)


@app.get("/v1/plans", summary="The tenant's plans (latest versions), a page at a time")
@tracer.capture_method(capture_response=False)
def list_plans() -> Response[str]:
    principal = require(Scope.ADMIN)
    page = get_services().catalog.list_plans(principal.tenant_id, page_size(query("limit")), query("cursor"))
    return page_response(page, lambda record: record.to_api())


@app.get("/v1/plans/<plan_id>", summary="A plan: the latest version, or ?version=n")
@tracer.capture_method(capture_response=False)
def get_plan(plan_id: str) -> Response[str]:
    principal = require(Scope.ADMIN)
    version = query_version(query("version"))
    record = get_services().catalog.get_plan(principal.tenant_id, plan_id, version)
    return json_response(HTTPStatus.OK, record.to_api())


# ---- catalog: subscriptions --------------------------------------------------------------------------


@app.post("/v1/subscriptions", summary="Subscribe a customer to a plan (201; one at a time per customer)")
@tracer.capture_method(capture_response=False)
def post_subscription() -> Response[str]:
    principal = require(Scope.ADMIN)
    body = raw_body()

    def operation() -> tuple[int, dict[str, Any]]:
        data = read_catalog_request(body)
        record = get_services().catalog.create_subscription(principal.tenant_id, data, received_at())
        return HTTPStatus.CREATED, record.to_api()

    return idempotently(principal, operation)


@app.get("/v1/subscriptions/<subscription_id>", summary="One subscription with its plan segments")
@tracer.capture_method(capture_response=False)
def get_subscription(subscription_id: str) -> Response[str]:
    principal = require(Scope.ADMIN)
    record = get_services().catalog.get_subscription(principal.tenant_id, subscription_id)
    return json_response(HTTPStatus.OK, record.to_api())


@app.post("/v1/subscriptions/<subscription_id>/change-plan", summary="Move a subscription to another plan")
@tracer.capture_method(capture_response=False)
def post_change_plan(subscription_id: str) -> Response[str]:
    principal = require(Scope.ADMIN)
    body = raw_body()

    def operation() -> tuple[int, dict[str, Any]]:
        data = read_catalog_request(body)
        record = get_services().catalog.change_plan(principal.tenant_id, subscription_id, data, received_at())
        return HTTPStatus.OK, record.to_api()

    return idempotently(principal, operation)


@app.post(
    "/v1/subscriptions/<subscription_id>/cancel", summary="Cancel a subscription (now, or at a given time)"
)
@tracer.capture_method(capture_response=False)
def post_cancel(subscription_id: str) -> Response[str]:
    principal = require(Scope.ADMIN)
    body = raw_body()

    def operation() -> tuple[int, dict[str, Any]]:
        data = read_catalog_request(body, allow_empty=True)
        record = get_services().catalog.cancel_subscription(
            principal.tenant_id, subscription_id, data, received_at()
        )
        return HTTPStatus.OK, record.to_api()

    return idempotently(principal, operation)


# ---- billing runs, invoices, ledger --------------------------------------------------------------


@app.post("/v1/billing-runs", summary="Close every period that ended (plus grace) before as_of (202)")
@tracer.capture_method(capture_response=False)
def post_billing_run() -> Response[str]:
    principal = require(Scope.ADMIN)
    body = raw_body()

    def operation() -> tuple[int, dict[str, Any]]:
        data = read_catalog_request(body, allow_empty=True)
        unknown = sorted(set(data) - {"as_of", "customer_id"})
        if unknown:
            raise InvalidRequest(
                f"unknown field(s): {', '.join(unknown)}; a billing run takes as_of, customer_id"
            )
        as_of = data.get("as_of")
        if as_of is not None and (not isinstance(as_of, str) or not as_of):
            raise InvalidRequest("as_of must be an RFC 3339 date-time string")
        customer_id = data.get("customer_id")
        if customer_id is not None:
            if not isinstance(customer_id, str):
                raise InvalidRequest("customer_id must be a string")
            get_services().catalog.get_customer(principal.tenant_id, customer_id)  # 404 if unknown
        moment = query_instant(as_of, "as_of") if as_of else None
        run = get_services().billing_runs.start(principal.tenant_id, moment, customer_id)
        return HTTPStatus.ACCEPTED, {"id": run.id, "status": run.status, "as_of": run.as_of}

    return idempotently(principal, operation)


@app.get("/v1/billing-runs/<run_id>", summary="A billing run: running, succeeded or failed")
@tracer.capture_method(capture_response=False)
def get_billing_run(run_id: str) -> Response[str]:
    principal = require(Scope.ADMIN)
    known_shape(run_id, "billing run")
    return json_response(
        HTTPStatus.OK, get_services().billing_runs.get(principal.tenant_id, run_id).to_json()
    )


@app.get("/v1/invoices", summary="A customer's invoices (?customer_id=), a page at a time")
@tracer.capture_method(capture_response=False)
def list_invoices() -> Response[str]:
    principal = require(Scope.ADMIN)
    customer_id = query("customer_id")
    if not customer_id:
        raise MalformedRequest("the customer_id query parameter is required", code="missing_parameter")
    if len(customer_id) > MAX_ID_LENGTH:
        return page_response(Page([], None), lambda invoice: invoice)  # no customer has such an id
    page = get_services().invoice_store.list_for_customer(
        principal.tenant_id, customer_id, page_size(query("limit")), query("cursor")
    )
    return page_response(page, lambda invoice: invoice.data)


@app.get("/v1/invoices/<invoice_id>", summary="One invoice with its lines, tax and amounts")
@tracer.capture_method(capture_response=False)
def get_invoice(invoice_id: str) -> Response[str]:
    principal = require(Scope.ADMIN)
    known_shape(invoice_id, "invoice")
    stored = get_services().invoice_store.get(principal.tenant_id, invoice_id)
    if stored is None:
        raise NotFound(f"invoice {invoice_id!r} not found")
    return json_response(HTTPStatus.OK, stored.data)


@app.post("/v1/invoices/<invoice_id>/payments", summary="Record a payment received outside the gateways")
@tracer.capture_method(capture_response=False)
def post_payment(invoice_id: str) -> Response[str]:
    principal = require(Scope.ADMIN)
    body = raw_body()

    def operation() -> tuple[int, dict[str, Any]]:
        data = read_catalog_request(body)
        created, payment = get_services().payments.record(principal.tenant_id, invoice_id, data)
        return (HTTPStatus.CREATED if created else HTTPStatus.OK), payment

    return idempotently(principal, operation)


@app.get("/v1/customers/<customer_id>/ledger", summary="The customer's journal entries and balances")
@tracer.capture_method(capture_response=False)
def get_ledger(customer_id: str) -> Response[str]:
    principal = require(Scope.ADMIN)
    services = get_services()
    profile = services.catalog.get_customer(principal.tenant_id, customer_id)
    entries = services.ledger_store.entries(principal.tenant_id, customer_id)
    head = services.ledger_store.head(principal.tenant_id, customer_id)
    currency = profile.billing.currency
    return json_response(
        HTTPStatus.OK,
        {
            "customer_id": customer_id,
            "currency": currency.code,
            "entries": [entry.to_json() for entry in entries],
            "balances": balances_to_json(balances(entries, currency)),
            # Anyone can re-check: every entry's hash covers its content and the previous entry's hash.
            "chain": verify_chain(entries, head_hash=head.hash if head.sequence else None).to_json(),
        },
    )


@app.get("/v1/openapi.json", summary="This API's OpenAPI document")
def openapi() -> Response[str]:
    return Response(
        status_code=HTTPStatus.OK,
        content_type=content_types.APPLICATION_JSON,
        body=app.get_openapi_json_schema(title="Usage billing API", version="1"),
    )


# ---- entry point -------------------------------------------------------------------------------------


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        get_services().idempotent_requests.register_lambda_context(context)
        return app.resolve(event, context)
    except Exception:
        # Last line of defence: never a traceback to the caller; the log has it with the request id.
        logger.exception("unhandled error")
        response = error_response(
            HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", "internal error; it has been logged"
        )
        return {
            "statusCode": response.status_code,
            "headers": {"Content-Type": "application/json"},
            "body": response.body,
            "isBase64Encoded": False,
        }
