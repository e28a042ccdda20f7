"""The middlewares every route goes through, in order, so that no route repeats them:

1. `authenticate`: the caller as API Gateway's authorizer described it; the key's scope must cover the
   route's (the scope a route needs is the role in its OpenAPI security requirement).
2. `read_body`: the body's size, media type and JSON (numbers parsed exactly, as Decimal); a card number
   anywhere in a body (outside event properties, which are stripped instead) is refused.
3. the request models (Powertools' OpenAPI request validation: path, query, headers and body).
4. `idempotent`: a POST or PATCH with an `Idempotency-Key` runs once; the same key and request replays
   the first response byte for byte, the same key with another request answers 422.
Routes then call one service method and answer with `respond`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import BaseRouter, Route
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.types import EventHandlerInstance
from pydantic import BaseModel

from billing.api.idempotency import IdempotentRequests, StoredResponse
from billing.domain import canonical_json
from billing.domain.catalog import reject_card_numbers
from billing.domain.errors import Forbidden, MalformedRequest, PayloadTooLarge, Unauthenticated
from billing.domain.tenants import Principal, Scope
from billing.runtime import logger

if TYPE_CHECKING:
    from billing.bootstrap import Services

BEARER = "bearer"
MAX_BODY_BYTES = 256 * 1024
MAX_IDEMPOTENCY_KEY_LENGTH = 255
WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
JSON = "application/json"


def requires(scope: Scope) -> list[dict[str, list[str]]]:
    """A route's OpenAPI security requirement: the bearer key, with the scope it must have."""
    return [{BEARER: [scope.value]}]


def required_scope(route: Route) -> Scope | None:
    for requirement in route.security or ():
        roles = requirement.get(BEARER)
        if roles:
            return Scope(roles[0])
    return None


class BodyRules:
    """What a route's body may be: its size limit, media types, shapes; set with `body_rules`."""

    def __init__(
        self,
        *,
        max_bytes: int = MAX_BODY_BYTES,
        media_types: frozenset[str] = frozenset({JSON}),
        arrays: bool = False,
        reject_cards: bool = True,
    ) -> None:
        self.max_bytes = max_bytes
        self.media_types = media_types
        self.arrays = arrays
        self.reject_cards = reject_cards


_BODY_RULES: dict[Callable[..., Any], BodyRules] = {}


def body_rules(rules: BodyRules) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a route function other body rules than the default (JSON object, 256 KiB, no card numbers)."""

    def register(function: Callable[..., Any]) -> Callable[..., Any]:
        _BODY_RULES[function] = rules
        return function

    return register


# ---- the middlewares -------------------------------------------------------------------------------------


def authenticate(app: EventHandlerInstance, next_middleware: NextMiddleware) -> Response:
    route: Route = app.context["_route"]
    needed = required_scope(route)
    if needed is None:
        return next_middleware(app)  # a public route (the OpenAPI document, the docs page)
    context = app.current_event.raw_event.get("requestContext", {}).get("authorizer") or {}
    tenant_id, key_id, granted = context.get("tenant_id"), context.get("key_id"), context.get("scope")
    if not tenant_id or not key_id or granted not in {scope.value for scope in Scope}:
        raise Unauthenticated("a valid API key is required: Authorization: Bearer <key>")
    principal = Principal(tenant_id=tenant_id, key_id=key_id, scope=Scope(granted))
    if not principal.scope.allows(needed):
        raise Forbidden(
            f"this API key has the {principal.scope.value!r} scope; this route needs {needed.value!r}"
        )
    logger.append_keys(tenant_id=principal.tenant_id, key_id=principal.key_id)
    app.append_context(principal=principal)
    return next_middleware(app)


def read_body(app: EventHandlerInstance, next_middleware: NextMiddleware) -> Response:
    event = app.current_event
    if event.http_method.upper() not in WITH_BODY:
        return next_middleware(app)
    route: Route = app.context["_route"]
    rules = _BODY_RULES.get(route.func, BodyRules())
    raw = raw_body(app)
    if len(raw) > rules.max_bytes:
        raise PayloadTooLarge(f"request body is {len(raw)} bytes; the limit is {rules.max_bytes}")
    if not raw.strip():
        return next_middleware(app)  # no body: the route's model says whether it needs one
    media_type = body_media_type(app)
    if media_type not in rules.media_types:
        allowed = ", ".join(sorted(rules.media_types))
        raise MalformedRequest(
            f"unsupported Content-Type {media_type[:100]!r}; send {allowed}", code="unsupported_media_type"
        )
    try:
        data = event.json_body  # parsed once, exactly (see `parse_json`), and kept for the models
    except RecursionError:
        raise MalformedRequest("request body nests too deeply", code="malformed_json") from None
    except (ValueError, UnicodeError):
        # The parser's message may quote the body; it is not echoed (it could hold personal data).
        raise MalformedRequest("request body is not valid JSON", code="malformed_json") from None
    if not isinstance(data, dict) and not (rules.arrays and isinstance(data, list)):
        raise MalformedRequest("the request body must be a JSON object", code="malformed_request")
    if rules.reject_cards:
        reject_card_numbers(data)
    return next_middleware(app)


def idempotent(app: EventHandlerInstance, next_middleware: NextMiddleware) -> Response:
    event = app.current_event
    key = event.headers.get("idempotency-key")
    if key is None or event.http_method.upper() not in WITH_BODY:
        return next_middleware(app)
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise MalformedRequest(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters",
            code="invalid_header",
        )
    principal: Principal = app.context["principal"]
    requests: IdempotentRequests = app.context["idempotent_requests"]

    def operation() -> StoredResponse:
        response = next_middleware(app)
        return StoredResponse(
            status=response.status_code,
            body=response.body if isinstance(response.body, str) else json.dumps(response.body),
            content_type=str(response.headers.get("Content-Type", JSON)),
        )

    stored = requests.run(
        tenant_id=principal.tenant_id,
        key=key,
        method=event.http_method,
        path=event.path,
        body=raw_body(app),
        operation=operation,
    )
    headers = {"Idempotent-Replayed": "true"} if stored.replayed else {}
    return Response(
        status_code=stored.status, content_type=stored.content_type, body=stored.body, headers=headers
    )


# ---- what routes use -------------------------------------------------------------------------------------


def body_media_type(app: BaseRouter) -> str:
    """The request's media type, lower case, without parameters (JSON when the header is missing)."""
    return (app.current_event.headers.get("content-type") or JSON).split(";")[0].strip().lower()


def parse_json(text: str) -> Any:
    """How request bodies are parsed: numbers exactly (Decimal, never float)."""
    return canonical_json.loads(text)


def raw_body(app: BaseRouter) -> bytes:
    event = app.current_event
    if event.body is None:
        return b""
    if event.is_base64_encoded:
        import base64

        return base64.b64decode(event.body)
    return event.body.encode("utf-8", errors="surrogatepass")


def services(app: BaseRouter) -> Services:
    """The composition root of this invocation (`billing.bootstrap`), put in the context by `provide`."""
    return app.context["services"]


def principal(app: BaseRouter) -> Principal:
    return app.context["principal"]


def received_at(app: BaseRouter) -> datetime:
    """When API Gateway received the request (not when this function runs)."""
    epoch_ms = app.current_event.raw_event.get("requestContext", {}).get("requestTimeEpoch")
    if isinstance(epoch_ms, int | float) and not isinstance(epoch_ms, bool) and epoch_ms > 0:
        return datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return datetime.now(UTC)


def respond(
    status: HTTPStatus | int, model: BaseModel, headers: Mapping[str, str] | None = None
) -> Response[str]:
    """A JSON answer, serialized once: what is sent (and kept for a replay) is exactly these bytes."""
    return Response(
        status_code=int(status),
        content_type=content_types.APPLICATION_JSON,
        body=model.model_dump_json(),
        headers=dict(headers or {}),
    )


def invalid_query(field: str, message: str) -> RequestValidationError:
    """A query parameter the route's model cannot express (a rule across parameters)."""
    return RequestValidationError([{"type": "value_error", "loc": ("query", field), "msg": message}])


# ---- what routes declare ----------------------------------------------------------------------------------

ERROR_MEANINGS: dict[int, str] = {
    400: "Malformed: the body is not JSON, a query parameter or header is invalid",
    401: "No API key, or an unknown or revoked one",
    403: "The API key's scope does not cover this route",
    404: "No such object (another tenant's objects do not exist for you)",
    409: "Conflict with the object's state, or a request with this Idempotency-Key still in progress",
    413: "The body is too large",
    422: "The body is readable but not acceptable; the details name the field",
    429: "Rate limited: retry after the Retry-After header's seconds",
    500: "Internal error: the message carries an id that is in the logs",
    503: "A dependency is unavailable: nothing was changed, retry after Retry-After",
}
_EVERY_ROUTE = (400, 401, 403, 429, 500, 503)
_WITH_BODY = (409, 413, 422)


def answers(
    status: int,
    model: type[BaseModel] | None,
    *errors: int,
    description: str = "Success",
    body: bool = False,
    media_type: str = JSON,
) -> dict[int, Any]:
    """The OpenAPI responses of a route: its success and every error it can answer (in the error shape).

    `body`: the route takes a body (and an Idempotency-Key): 409, 413 and 422 can happen as well.
    """
    from billing.api.models.common import ErrorBody

    success: dict[str, Any] = {"description": description}
    if model is not None:
        success["content"] = {media_type: {"model": model}}
    documented: dict[int, Any] = {status: success}
    for code in sorted({*_EVERY_ROUTE, *errors, *(_WITH_BODY if body else ())}):
        documented[code] = {
            "description": ERROR_MEANINGS[code],
            "content": {JSON: {"model": ErrorBody}},
        }
    return documented
