"""Errors to HTTP, in one place: every answer that is not a success has the error shape.

Domain errors map by type to a status; a request the edge cannot read or validate maps by where the
problem is (path, query, header: 400; body: 422); anything else is a 500 whose body carries an error id
that is also in the log line with the traceback, and nothing of the request.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)

from billing.api.models.common import ErrorBody, ErrorObject, RequestModel
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
from billing.domain.pii import shown_name
from billing.domain.rating.errors import RatingFailed
from billing.runtime import logger

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
RETRY_AFTER_SECONDS = "1"
MAX_PROBLEMS_SHOWN = 5


def error_response(
    status: int,
    code: str,
    message: str,
    details: Sequence[Mapping[str, Any]] = (),
    headers: Mapping[str, str] | None = None,
) -> Response[str]:
    body = ErrorBody(error=ErrorObject(code=code, message=message, details=[dict(item) for item in details]))
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=body.model_dump_json(),
        headers=dict(headers or {}),
    )


def status_of(error: BillingError) -> HTTPStatus | None:
    return next((status for kind, status in STATUS_BY_ERROR.items() if isinstance(error, kind)), None)


def billing_error(error: BillingError) -> Response[str]:
    status = status_of(error)
    if status is None:
        # A domain error nobody decided an answer for is a bug, not the client's fault.
        return internal_error(error)
    details = list(error.details)
    if isinstance(error, InvalidEvent) and error.field:
        details.append({"field": error.field})
    headers = {"Retry-After": RETRY_AFTER_SECONDS} if status == HTTPStatus.SERVICE_UNAVAILABLE else None
    return error_response(status, error.code, error.message, details, headers)


def validation_error(
    error: RequestValidationError, body_model: type[RequestModel] | None = None
) -> Response[str]:
    """A request the edge models refuse: 400 for the path, query or headers, 422 for the body.

    A body problem answers the code the domain gave (a rule checked by the model), else the code the
    body's model gives the fields under a path prefix, else the model's own; the message lists the
    problems, each naming its field; `details` has one `{"field"}` per problem.
    """
    problems = error.errors()
    in_body = any(str(problem.get("loc", ("body",))[0]) == "body" for problem in problems)
    tags = body_model.union_tags if body_model is not None else frozenset()
    shown = problems[:MAX_PROBLEMS_SHOWN]
    fields = [_field(problem.get("loc", ()), tags) for problem in shown]
    message = "; ".join(_sentence(field, problem) for field, problem in zip(fields, shown, strict=True))
    details = [{"field": field} for field in dict.fromkeys(fields)]
    if in_body:
        first = shown[0] if shown else {}
        return error_response(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            _body_code(first, fields[0] if fields else None, body_model),
            message,
            details,
        )
    missing = any(problem.get("type") == "missing" for problem in problems)
    code = "missing_parameter" if missing else "invalid_parameter"
    return error_response(HTTPStatus.BAD_REQUEST, code, message, details)


def _body_code(problem: Mapping[str, Any], field: str | None, model: type[RequestModel] | None) -> str:
    domain_code = (problem.get("ctx") or {}).get("code")
    if domain_code:
        return str(domain_code)
    if model is None:
        return "invalid_request"
    path = field or ""
    codes = (code for prefix, code in model.field_codes.items() if path.startswith(prefix))
    return next(codes, model.error_code)


def _sentence(field: str | None, problem: Mapping[str, Any]) -> str:
    # Pydantic's messages never quote the input; card numbers and personal data stay out of answers.
    message = str(problem.get("msg", "is not valid")).removeprefix("Value error, ")
    if problem.get("type") == "extra_forbidden":
        message = "unknown field (not part of this request)"
    if problem.get("type") == "missing":
        message = "is required"
    if field is None:
        return message
    return message if message.startswith(field) else f"{field}: {message}"


def unsupported_content_type(_: RequestUnsupportedContentType) -> Response[str]:
    return error_response(
        HTTPStatus.BAD_REQUEST, "unsupported_media_type", "send the body as application/json"
    )


def idempotency_key_reused(_: IdempotencyValidationError) -> Response[str]:
    return error_response(
        HTTPStatus.UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        "this Idempotency-Key was already used with a different request",
    )


def idempotency_in_progress(_: IdempotencyAlreadyInProgressError) -> Response[str]:
    return error_response(
        HTTPStatus.CONFLICT,
        "idempotency_key_in_progress",
        "a request with this Idempotency-Key is still being processed; retry shortly",
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


def internal_error(error: BaseException) -> Response[str]:
    """A 500 the client can quote: the error id is in the log line that has the traceback."""
    error_id = uuid.uuid4().hex
    logger.exception("unhandled error", extra={"error_id": error_id, "error_type": type(error).__name__})
    return error_response(
        HTTPStatus.INTERNAL_SERVER_ERROR,
        "internal_error",
        f"internal error {error_id}; it has been logged",
        [{"error_id": error_id}],
    )


def _field(location: Sequence[Any], tags: frozenset[str] = frozenset()) -> str | None:
    # ("body", "charges", 0, "per_unit", "unit_price") -> "charges[0].unit_price"; ("query", "limit") ->
    # "limit". A union's tag in the location (which of the shapes was tried) is not a field of the body.
    parts = [part for part in location[1:] if not (isinstance(part, str) and part in tags)]
    text = ""
    for part in parts:
        name = shown_name(str(part))  # an unknown key may be a card number or an e-mail address
        text += f"[{part}]" if isinstance(part, int) else (f".{name}" if text else name)
    return text or None
