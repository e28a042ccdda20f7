"""Usage events on the wire: the native event, a batch, CloudEvents 1.0, and what the API answers.

A batch is validated event by event (one invalid event is rejected alone, the others are accepted), so
the request body is not one model but a list of raw events, each validated by `UsageEventIn` (or
`CloudEventIn`, then mapped to the native shape). Every rule of the consumer is checked here, so an
event answered as accepted is one the events table will store.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from billing.api.models.common import Id, Instant, Period, ResponseModel
from billing.domain.errors import InvalidEvent
from billing.domain.event_status import EventStatus
from billing.domain.pii import shown_name
from billing.domain.rating.periods import format_instant
from billing.domain.usage_events import UsageEvent, check_properties
from billing.services.events import EventReport

MAX_EVENTS_PER_REQUEST = 1000
MAX_REQUEST_BYTES = 1024 * 1024
CLOUDEVENTS_SINGLE = "application/cloudevents+json"
CLOUDEVENTS_BATCH = "application/cloudevents-batch+json"


def _properties(value: dict[str, Any]) -> dict[str, Any]:
    try:
        check_properties(value)
    except InvalidEvent as problem:
        # The problem names its own path (properties.a.b): carried so the answer names that field.
        raise PydanticCustomError(
            "invalid_property", "{message}", {"message": problem.message, "field": problem.field}
        ) from None
    return value


class UsageEventIn(BaseModel):
    """One usage event. `(customer_id, id)` is counted once, however often it is sent, forever."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="UsageEvent")

    id: Id = Field(description="The client's id of the event: its idempotency key within the customer")
    customer_id: Id
    type: Id = Field(description="The event type meters select on, e.g. api.call")
    timestamp: Instant | None = Field(
        default=None, description="When it happened; default: when it was received. At most 35 days old."
    )
    properties: dict[str, Any] = Field(
        default_factory=dict,
        description="What the meters read (nested at most 6 levels; numbers within DynamoDB's range). "
        "Properties that look like personal data are dropped before anything is stored.",
        max_length=1000,
    )

    _check_properties = field_validator("properties")(_properties)

    def to_event(self, tenant_id: str, received_at: datetime) -> UsageEvent:
        return UsageEvent(
            tenant_id=tenant_id,
            customer_id=self.customer_id,
            event_id=self.id,
            type=self.type,
            timestamp=self.timestamp or received_at,
            received_at=received_at,
            properties=dict(self.properties),
        )


class UsageEventBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, title="UsageEventBatch")

    events: list[UsageEventIn] = Field(min_length=1, max_length=MAX_EVENTS_PER_REQUEST)


class CloudEventIn(BaseModel):
    """A CloudEvents 1.0 structured event: `subject` is the customer, `time` the timestamp, `data` the
    properties. Extension attributes are allowed and ignored."""

    model_config = ConfigDict(extra="allow", frozen=True, title="CloudEvent")

    specversion: Literal["1.0"]
    id: Id
    source: str = Field(min_length=1, max_length=1024)
    type: Id
    subject: Id = Field(description="The customer id")
    time: Instant | None = None
    datacontenttype: str | None = Field(default=None, pattern=r"(?i)json", max_length=256)
    data: dict[str, Any] | None = None

    def native(self) -> dict[str, Any]:
        event: dict[str, Any] = {"id": self.id, "customer_id": self.subject, "type": self.type}
        if self.time is not None:
            event["timestamp"] = self.time
        if self.data is not None:
            event["properties"] = self.data
        return event


# ---- reading a request's events one by one -------------------------------------------------------------


def validate_event(raw: Any, *, cloudevent: bool) -> UsageEventIn:
    """One raw event of a request, validated; raises InvalidEvent naming the field of the first problem."""
    try:
        if cloudevent:
            if isinstance(raw, dict) and "data_base64" in raw:
                raise InvalidEvent(
                    "binary data (data_base64) is not supported; send data as a JSON object",
                    code="invalid_field",
                    field="data_base64",
                )
            raw = CloudEventIn.model_validate(raw).native()
        return UsageEventIn.model_validate(raw)
    except ValidationError as exc:
        raise event_problem(exc) from None


def event_problem(exc: ValidationError) -> InvalidEvent:
    """The first problem of a validation error as a per-event error (codes of the events API)."""
    error = exc.errors(include_url=False, include_input=False)[0]
    located = ".".join(shown_name(str(part)) for part in error["loc"])  # a key may be a card number
    field = (error.get("ctx") or {}).get("field") or located or None
    kind = error["type"]
    if kind == "missing":
        return InvalidEvent(f"{field} is required", code="missing_field", field=field)
    if kind == "extra_forbidden":
        allowed = ", ".join(UsageEventIn.model_fields)
        return InvalidEvent(
            f"unknown field {field}; an event has {allowed}", code="unknown_field", field=field
        )
    if field is None:
        return InvalidEvent("each event must be a JSON object", code="invalid_event")
    message = str(error["msg"]).removeprefix("Value error, ")
    if not message.startswith(field):
        message = f"{field}: {message}"
    return InvalidEvent(message, code="invalid_field", field=field)


# ---- answers -----------------------------------------------------------------------------------------


class RejectedError(ResponseModel):
    code: str
    message: str
    field: str | None = Field(default=None, description="The field at fault, when there is one")


class RejectedEvent(ResponseModel):
    index: int = Field(description="Position of the event in the request (0 for a single event)")
    id: str | None = Field(description="The event's id, when it had a readable one")
    error: RejectedError


class IngestAnswer(ResponseModel):
    accepted: int = Field(description="Events accepted: each will be stored once")
    rejected: list[RejectedEvent]


class EventOut(ResponseModel):
    """A stored event and what became of it."""

    id: str
    customer_id: str
    type: str
    timestamp: str
    received_at: str
    stored_at: str
    status: EventStatus = Field(
        description="counted: billed in its period; late: stored after its period was invoiced, billed as "
        "an adjustment on the next invoice; unbilled: no subscription covers its timestamp"
    )
    subscription_id: str | None = Field(description="The subscription that bills it (null when unbilled)")
    period: Period | None = Field(description="The billing period it is billed in (null when unbilled)")

    @classmethod
    def of(cls, report: EventReport) -> EventOut:
        event = report.event
        return cls(
            id=event.event_id,
            customer_id=event.customer_id,
            type=event.type,
            timestamp=format_instant(event.timestamp),
            received_at=format_instant(event.received_at),
            stored_at=format_instant(event.stored_at),
            status=report.status,
            subscription_id=report.subscription_id,
            period=None if report.period is None else Period.of(report.period),
        )
