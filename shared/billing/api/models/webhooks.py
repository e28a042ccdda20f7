"""Webhook endpoints, deliveries and events on the wire."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, WithJsonSchema

from billing.api.models.common import RequestModel, ResponseModel, domain_rule
from billing.domain.errors import InvalidRequest
from billing.domain.rating.periods import format_instant
from billing.domain.webhooks.addresses import MAX_URL_LENGTH
from billing.domain.webhooks.deliveries import Attempt, Delivery
from billing.domain.webhooks.endpoints import (
    EVENT_TYPES,
    MAX_DESCRIPTION_LENGTH,
    WILDCARD,
    InvalidEventTypes,
    WebhookEndpoint,
    event_types,
)
from billing.domain.webhooks.events import WebhookEvent


def _check_event_types(values: list[str]) -> None:
    try:
        event_types(values)
    except InvalidEventTypes as exc:
        raise InvalidRequest(str(exc), code="invalid_event_types") from None


EventTypes = Annotated[
    list[Annotated[str, Field(max_length=64)]],
    Field(min_length=1, max_length=len(EVENT_TYPES)),
    AfterValidator(domain_rule(_check_event_types)),
    WithJsonSchema(
        {
            "type": "array",
            "items": {"type": "string", "enum": [*EVENT_TYPES, WILDCARD]},
            "minItems": 1,
            "maxItems": len(EVENT_TYPES),
            "description": 'The event types to receive, or ["*"] (alone) for every type',
        }
    ),
]
DeliveryStatusName = Literal["pending", "succeeded", "failed"]

_URL_DESCRIPTION = (
    "https URL (plain http only to loopback addresses, in the local runtime); its host must resolve to "
    "public addresses only"
)
Url = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description=_URL_DESCRIPTION,
        examples=["https://example.com/billing/webhooks"],
    ),
]


class WebhookEndpointIn(RequestModel):
    error_code = "invalid_webhook_endpoint"

    url: Url
    event_types: EventTypes = Field(default_factory=lambda: [WILDCARD])
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION_LENGTH)


class WebhookEndpointPatchIn(RequestModel):
    error_code = "invalid_webhook_endpoint"

    disabled: bool | None = Field(
        default=None, description="true stops deliveries; false resumes them (pending ones first, in order)"
    )
    event_types: EventTypes | None = None
    url: Url | None = None
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION_LENGTH)


class WebhookEndpointOut(ResponseModel):
    id: str
    url: str
    event_types: list[str]
    description: str | None
    disabled: bool
    disabled_reason: str | None = Field(description="Why it was disabled (the API, or a 410 Gone answer)")
    created_at: str
    updated_at: str
    secret_created_at: str = Field(description="When the current signing secret was made")
    previous_secret_expires_at: str | None = Field(
        description="During a rotation: until when the previous secret still signs, beside the new one"
    )

    @classmethod
    def of(cls, endpoint: WebhookEndpoint, now: datetime, **extra: Any) -> Any:
        """The endpoint as of `now` (a previous secret whose overlap ended is not mentioned)."""
        current = endpoint.secrets[0]
        previous = [
            secret.expires_at for secret in endpoint.signing_secrets(now)[1:] if secret.expires_at is not None
        ]
        return cls(
            id=endpoint.id,
            url=endpoint.url,
            event_types=list(endpoint.event_types),
            description=endpoint.description,
            disabled=endpoint.disabled,
            disabled_reason=endpoint.disabled_reason,
            created_at=format_instant(endpoint.created_at),
            updated_at=format_instant(endpoint.updated_at),
            secret_created_at=format_instant(current.created_at),
            previous_secret_expires_at=format_instant(max(previous)) if previous else None,
            **extra,
        )


class WebhookEndpointCreated(WebhookEndpointOut):
    secret: str = Field(
        description="The signing secret (whsec_…): shown here once, never again; verify deliveries with it"
    )


class WebhookEndpointDeleted(ResponseModel):
    id: str
    deleted: Literal[True] = True


class AttemptOut(ResponseModel):
    at: str
    status_code: int | None = Field(description="The receiver's HTTP status; null when no answer came")
    error: str | None = Field(description="Why the attempt failed, when it did")
    duration_ms: int
    replay: bool = Field(description="A replay asked for through the API, outside the retry schedule")

    @classmethod
    def of(cls, attempt: Attempt) -> AttemptOut:
        return cls(
            at=format_instant(attempt.at),
            status_code=attempt.status_code,
            error=attempt.error,
            duration_ms=attempt.duration_ms,
            replay=attempt.replay,
        )


class WebhookDeliveryOut(ResponseModel):
    id: str
    endpoint_id: str
    event_id: str = Field(
        description="The webhook-id header of every attempt: the same on retries and replays"
    )
    event_type: str
    customer_id: str
    sequence: int
    status: DeliveryStatusName
    attempts: list[AttemptOut]
    next_attempt_at: str | None
    failure_reason: str | None = Field(description="Why it was dead-lettered (status failed)")
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, delivery: Delivery) -> WebhookDeliveryOut:
        return cls(
            id=delivery.id,
            endpoint_id=delivery.endpoint_id,
            event_id=delivery.event_id,
            event_type=delivery.event_type.value,
            customer_id=delivery.customer_id,
            sequence=delivery.sequence,
            status=delivery.status.value,
            attempts=[AttemptOut.of(attempt) for attempt in delivery.attempts],
            next_attempt_at=format_instant(delivery.next_attempt_at) if delivery.next_attempt_at else None,
            failure_reason=delivery.failure_reason,
            created_at=format_instant(delivery.created_at),
            updated_at=format_instant(delivery.updated_at),
        )


class WebhookEventOut(ResponseModel):
    """A webhook event as every delivery of it sends it."""

    type: str
    id: str
    customer_id: str
    sequence: int = Field(description="The customer's event number: one more per event, no gaps")
    created_at: str
    data: dict[str, Any] = Field(description="Ids and amounts of the fact (never names or e-mail addresses)")

    @classmethod
    def of(cls, event: WebhookEvent) -> WebhookEventOut:
        return cls(**event.payload())
