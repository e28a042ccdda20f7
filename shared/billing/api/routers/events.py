"""Usage events: send them (native JSON, batches, CloudEvents), read one back, list the unbilled ones."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from billing.api.edge import (
    JSON,
    BodyRules,
    answers,
    body_media_type,
    body_rules,
    principal,
    received_at,
    requires,
    respond,
    services,
)
from billing.api.models.common import DEFAULT_PAGE_SIZE, Cursor, Id, Page, PageSize, PathId
from billing.api.models.events import (
    CLOUDEVENTS_BATCH,
    CLOUDEVENTS_SINGLE,
    MAX_EVENTS_PER_REQUEST,
    MAX_REQUEST_BYTES,
    EventOut,
    IngestAnswer,
    RejectedError,
    RejectedEvent,
    validate_event,
)
from billing.domain.errors import InvalidEvent, MalformedRequest, PayloadTooLarge
from billing.domain.ids import is_valid_id
from billing.domain.tenants import Scope
from billing.domain.usage_events import UsageEvent

router = Router()
TAG = "Usage events"


@router.post(
    "/v1/events",
    summary="Send usage events: one, a batch of up to 1000, or CloudEvents",
    description="Each event is validated on its own: valid events are accepted even when others in the "
    "batch are not (202 names the rejected ones). A single invalid event answers 422. An event's "
    "`(customer_id, id)` is counted once, however often it is sent.",
    tags=[TAG],
    operation_id="sendEvents",
    security=requires(Scope.INGEST),
    responses=answers(
        202, IngestAnswer, body=True, description="Accepted: each accepted event is stored once"
    ),
    openapi_extensions={"requestBody": {"$ref": "#/components/requestBodies/UsageEvents"}},
)
@body_rules(
    BodyRules(
        max_bytes=MAX_REQUEST_BYTES,
        media_types=frozenset({JSON, CLOUDEVENTS_SINGLE, CLOUDEVENTS_BATCH}),
        arrays=True,
        reject_cards=False,  # card numbers in properties are stripped like other personal data
    )
)
def send_events() -> Response[str]:
    media_type = body_media_type(router)
    raw_events, batch = _raw_events(router.current_event.json_body, media_type)
    caller, now = principal(router), received_at(router)
    candidates: list[tuple[int, UsageEvent]] = []
    rejected: list[RejectedEvent] = []
    for index, raw in enumerate(raw_events):
        try:
            model = validate_event(raw, cloudevent=media_type != JSON)
        except InvalidEvent as problem:
            rejected.append(_rejected(index, _raw_id(raw), problem))
            continue
        candidates.append((index, model.to_event(caller.tenant_id, now)))
    result = services(router).ingest.accept(caller.tenant_id, candidates, now)
    rejected += [
        RejectedEvent(
            index=item.index,
            id=item.event_id,
            error=RejectedError(code=item.code, message=item.message, field=item.field),
        )
        for item in result.rejected
    ]
    rejected.sort(key=lambda item: item.index)
    if not batch and rejected:
        # Raised, not returned: an error answer is never kept for an Idempotency-Key replay.
        first = rejected[0].error
        raise InvalidEvent(first.message, code=first.code, field=first.field)
    return respond(HTTPStatus.ACCEPTED, IngestAnswer(accepted=result.accepted, rejected=rejected))


@router.get(
    "/v1/events",
    summary="A customer's unbilled events: those no subscription covers",
    description="Oldest first, a page at a time. Such events are never dropped: they become `counted` if "
    "a subscription that covers them is created later.",
    tags=[TAG],
    operation_id="listEvents",
    security=requires(Scope.ADMIN),
    responses=answers(200, Page[EventOut]),
)
def list_events(
    customer_id: Annotated[Id, Query(description="The customer")],
    status: Annotated[Literal["unbilled"], Query(description="Only `unbilled` can be listed")],
    limit: Annotated[PageSize, Query()] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[Cursor | None, Query()] = None,
) -> Response[str]:
    page = services(router).events.unbilled(principal(router).tenant_id, customer_id, limit, cursor)
    return respond(
        HTTPStatus.OK,
        Page[EventOut](data=[EventOut.of(item) for item in page.items], next_cursor=page.next_cursor),
    )


@router.get(
    "/v1/events/<event_id>",
    summary="A stored event and what became of it: counted, late or unbilled",
    description="404 until the event is stored (a moment after it was accepted).",
    tags=[TAG],
    operation_id="getEvent",
    security=requires(Scope.ADMIN),
    responses=answers(200, EventOut, 404),
)
def get_event(
    event_id: PathId, customer_id: Annotated[Id, Query(description="The event's customer")]
) -> Response[str]:
    report = services(router).events.get(principal(router).tenant_id, customer_id, event_id)
    return respond(HTTPStatus.OK, EventOut.of(report))


def _raw_events(data: Any, media_type: str) -> tuple[list[Any], bool]:
    """The request's raw events and whether it was a batch. Raises for the whole request."""
    if data is None:
        raise MalformedRequest("request body is empty", code="malformed_json")
    if media_type == CLOUDEVENTS_BATCH:
        if not isinstance(data, list):
            raise MalformedRequest("a CloudEvents batch must be a JSON array of events")
        events, batch = data, True
    elif media_type == CLOUDEVENTS_SINGLE:
        if not isinstance(data, dict):
            raise MalformedRequest("a structured CloudEvent must be a JSON object")
        events, batch = [data], False
    elif isinstance(data, dict) and "events" in data:
        if set(data) != {"events"} or not isinstance(data["events"], list):
            raise MalformedRequest('a batch is {"events": [...]} with no other fields')
        events, batch = data["events"], True
    elif isinstance(data, dict):
        events, batch = [data], False
    else:
        raise MalformedRequest('the body must be one event object or {"events": [...]}')
    if not events:
        raise MalformedRequest("the batch holds no events", code="empty_batch")
    if len(events) > MAX_EVENTS_PER_REQUEST:
        raise PayloadTooLarge(
            f"the batch holds {len(events)} events; the limit is {MAX_EVENTS_PER_REQUEST} per request"
        )
    return events, batch


def _raw_id(raw: Any) -> str | None:
    value = raw.get("id") if isinstance(raw, dict) else None
    # Echoed only when it is a valid id: a refused one may be anything, a card number included.
    return value if is_valid_id(value) else None


def _rejected(index: int, event_id: str | None, problem: InvalidEvent) -> RejectedEvent:
    error = RejectedError(code=problem.code, message=problem.message, field=problem.field)
    return RejectedEvent(index=index, id=event_id, error=error)
