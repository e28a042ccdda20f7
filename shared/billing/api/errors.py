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

from billing.api.models.common import ErrorBody, ErrorObject
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


def validation_error(error: RequestValidationError) -> Response[str]:
    """A request the edge models refuse: 400 for the path, query or headers, 422 for the body."""
    problems = error.errors()
    in_body = any(problem.get("loc", ("body",))[0] == "body" for problem in problems)
    details = [
        {"field": _field(problem.get("loc", ())), "problem": _message(problem)} for problem in problems[:20]
    ]
    first = details[0] if details else {"field": None, "problem": "is not valid"}
    where = first["field"] or "the request"
    if in_body:
        return error_response(
            HTTPStatus.UNPROCESSABLE_ENTITY, "invalid_request", f"{where}: {first['problem']}", details
        )
    missing = any(problem.get("type") == "missing" for problem in problems)
    code = "missing_parameter" if missing else "invalid_parameter"
    return error_response(HTTPStatus.BAD_REQUEST, code, f"{where}: {first['problem']}", details)


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


def _field(location: Sequence[Any]) -> str | None:
    # ("body", "charges", 0, "unit_price") -> "charges[0].unit_price"; ("query", "limit") -> "limit"
    parts = [part for part in location[1:] if part != "body"] if location else []
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or None


def _message(problem: Mapping[str, Any]) -> str:
    # Pydantic's messages never quote the input; card numbers and personal data stay out of answers.
    return str(problem.get("msg", "is not valid")).removeprefix("Value error, ")
