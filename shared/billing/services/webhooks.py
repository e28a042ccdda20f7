"""The webhook API's use cases: endpoints (with their secrets), deliveries (with replay), events.

A signing secret is made here, encrypted with the stack's webhook key before it is stored, and shown once
(in the answer that created or rotated it); it is never logged and never read back by the API.
"""

from __future__ import annotations

import secrets as random_source
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from aws_lambda_powertools.metrics import MetricUnit

from billing.domain.errors import Conflict, InvalidRequest, MalformedRequest, NotFound, StaleRevision
from billing.domain.ids import is_key_id, shown_id
from billing.domain.pages import Page
from billing.domain.webhooks.addresses import EndpointUrl, UnsafeUrl
from billing.domain.webhooks.deliveries import Delivery, DeliveryStatus
from billing.domain.webhooks.endpoints import (
    ENDPOINT_ID_PREFIX,
    MAX_ENDPOINTS_PER_TENANT,
    InvalidEventTypes,
    SigningSecret,
    WebhookEndpoint,
    event_types,
)
from billing.domain.webhooks.events import WebhookEvent
from billing.domain.webhooks.messages import LaneKick, ReplayRequest, ResumeRequest
from billing.domain.webhooks.signing import SECRET_BYTES, new_secret
from billing.runtime import logger, metrics
from billing.services.webhook_delivery import WebhookQueue, WebhookStore, secret_context

# ---- ports -------------------------------------------------------------------------------------------


class UrlGuard(Protocol):
    def check(self, url: str) -> EndpointUrl:
        """Resolve the URL's host and check every address; raises UnsafeUrl."""


class SecretSealer(Protocol):
    def encrypt(self, plaintext: str, context: dict[str, str]) -> str: ...


class EndpointStore(WebhookStore, Protocol):
    def create_endpoint(self, tenant_id: str, endpoint: WebhookEndpoint) -> None: ...

    def list_endpoints(self, tenant_id: str, limit: int, cursor: str | None) -> Page[WebhookEndpoint]: ...

    def delete_endpoint(self, tenant_id: str, endpoint_id: str) -> bool: ...

    def list_deliveries(
        self,
        tenant_id: str,
        endpoint_id: str,
        status: DeliveryStatus | None,
        limit: int,
        cursor: str | None,
    ) -> Page[Delivery]: ...


class ReplayQueue(WebhookQueue, Protocol):
    def replay(self, request: ReplayRequest) -> None: ...


class EventPages(Protocol):
    def list_page(
        self, tenant_id: str, customer_id: str, limit: int, cursor: str | None
    ) -> Page[WebhookEvent]: ...


@dataclass(frozen=True)
class EndpointWithSecret:
    """An endpoint and its new signing secret, in the one answer that shows it."""

    endpoint: WebhookEndpoint
    secret: str


MAX_RACES = 3


class WebhookEndpointService:
    def __init__(
        self,
        store: EndpointStore,
        sealer: SecretSealer,
        guard: UrlGuard,
        queue: ReplayQueue,
        clock: Callable[[], datetime],
        random_bytes: Callable[[int], bytes] = random_source.token_bytes,
    ) -> None:
        self._store = store
        self._sealer = sealer
        self._guard = guard
        self._queue = queue
        self._clock = clock
        self._random = random_bytes

    def create(
        self, tenant_id: str, url: str, types: Sequence[str], description: str | None
    ) -> EndpointWithSecret:
        """Raises InvalidRequest (URL refused, unknown event type) and Conflict (too many endpoints)."""
        self._check_url(url)
        selected = _event_types(types)
        if len(self._store.all_endpoints(tenant_id)) >= MAX_ENDPOINTS_PER_TENANT:
            raise Conflict(
                f"a tenant has at most {MAX_ENDPOINTS_PER_TENANT} webhook endpoints; delete one first",
                code="too_many_endpoints",
            )
        now = self._clock()
        endpoint_id = ENDPOINT_ID_PREFIX + random_source.token_hex(12)
        secret = new_secret(self._random(SECRET_BYTES))
        endpoint = WebhookEndpoint(
            id=endpoint_id,
            url=url,
            event_types=selected,
            description=description,
            disabled=False,
            disabled_reason=None,
            enabled_since=now,
            created_at=now,
            updated_at=now,
            secrets=(SigningSecret(self._seal(tenant_id, endpoint_id, secret), now),),
        )
        self._store.create_endpoint(tenant_id, endpoint)
        metrics.add_metric(name="WebhookEndpointsCreated", unit=MetricUnit.Count, value=1)
        logger.info("webhook endpoint created", extra={"tenant_id": tenant_id, "endpoint_id": endpoint_id})
        return EndpointWithSecret(endpoint, secret)

    def list(self, tenant_id: str, limit: int, cursor: str | None) -> Page[WebhookEndpoint]:
        return self._store.list_endpoints(tenant_id, limit, cursor)

    def get(self, tenant_id: str, endpoint_id: str) -> WebhookEndpoint:
        endpoint = self._store.get_endpoint(tenant_id, endpoint_id) if is_key_id(endpoint_id) else None
        if endpoint is None:
            raise NotFound(f"webhook endpoint {shown_id(endpoint_id)} not found", code="endpoint_not_found")
        return endpoint

    def update(
        self,
        tenant_id: str,
        endpoint_id: str,
        *,
        disabled: bool | None = None,
        types: Sequence[str] | None = None,
        url: str | None = None,
        description: str | None = None,
    ) -> WebhookEndpoint:
        """Change what is given. Enabling a disabled endpoint resumes its pending deliveries, in order."""
        if url is not None:
            self._check_url(url)
        selected = None if types is None else _event_types(types)
        for _ in range(MAX_RACES):
            current = self.get(tenant_id, endpoint_id)
            now = self._clock()
            changed = current.changed(now, url=url, event_types=selected, description=description)
            if disabled is True:
                changed = changed.disable("disabled through the API", now)
            elif disabled is False:
                changed = changed.enable(now)
            try:
                saved = self._store.save_endpoint(tenant_id, changed)
            except StaleRevision:
                continue
            if disabled is False:
                # Every time it is asked (so a retried request repairs a resume that failed): the sender
                # kicks each of the endpoint's lanes, off this request's path.
                self._queue.resume(ResumeRequest(tenant_id, saved.id))
            return saved
        raise Conflict("the endpoint kept changing meanwhile; retry", code="endpoint_changed")

    def delete(self, tenant_id: str, endpoint_id: str) -> WebhookEndpoint:
        endpoint = self.get(tenant_id, endpoint_id)
        if not self._store.delete_endpoint(tenant_id, endpoint.id):
            raise NotFound(f"webhook endpoint {shown_id(endpoint_id)} not found", code="endpoint_not_found")
        logger.info("webhook endpoint deleted", extra={"tenant_id": tenant_id, "endpoint_id": endpoint.id})
        return endpoint

    def rotate_secret(self, tenant_id: str, endpoint_id: str) -> EndpointWithSecret:
        """A new secret signs from now on; the previous one keeps signing beside it for 24 hours."""
        for _ in range(MAX_RACES):
            current = self.get(tenant_id, endpoint_id)
            secret = new_secret(self._random(SECRET_BYTES))
            rotated = current.rotated(self._seal(tenant_id, current.id, secret), self._clock())
            try:
                saved = self._store.save_endpoint(tenant_id, rotated)
            except StaleRevision:
                continue
            logger.info("webhook secret rotated", extra={"tenant_id": tenant_id, "endpoint_id": current.id})
            return EndpointWithSecret(saved, secret)
        raise Conflict("the endpoint kept changing meanwhile; retry", code="endpoint_changed")

    def _check_url(self, url: str) -> None:
        try:
            self._guard.check(url)
        except UnsafeUrl as exc:
            raise InvalidRequest(exc.message, code=exc.code) from exc

    def _seal(self, tenant_id: str, endpoint_id: str, secret: str) -> str:
        return self._sealer.encrypt(secret, secret_context(tenant_id, endpoint_id))


def _event_types(values: Sequence[str]) -> tuple[str, ...]:
    try:
        return event_types(values)
    except InvalidEventTypes as exc:
        raise InvalidRequest(str(exc), code="invalid_event_types") from exc


class WebhookDeliveryService:
    def __init__(self, store: EndpointStore, queue: ReplayQueue, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._queue = queue
        self._clock = clock

    def list(
        self,
        tenant_id: str,
        endpoint_id: str | None,
        status: DeliveryStatus | None,
        limit: int,
        cursor: str | None,
    ) -> Page[Delivery]:
        """One endpoint's deliveries, newest first; without an endpoint, each endpoint's in turn (the
        cursor carries which endpoint the next page continues)."""
        if endpoint_id is not None:
            endpoint = self._endpoint(tenant_id, endpoint_id)
            return self._store.list_deliveries(tenant_id, endpoint.id, status, limit, cursor)
        endpoints = sorted(endpoint.id for endpoint in self._store.all_endpoints(tenant_id))
        position, inner = _split_cursor(cursor, endpoints)
        items: list[Delivery] = []
        while position < len(endpoints) and len(items) < limit:
            page = self._store.list_deliveries(
                tenant_id, endpoints[position], status, limit - len(items), inner
            )
            items += page.items
            if page.next_cursor is not None:
                return Page(items, _join_cursor(endpoints[position], page.next_cursor))
            position, inner = position + 1, None
        if position < len(endpoints):
            return Page(items, _join_cursor(endpoints[position], None))
        return Page(items, None)

    def get(self, tenant_id: str, delivery_id: str) -> Delivery:
        delivery = self._store.get_delivery(tenant_id, delivery_id) if is_key_id(delivery_id) else None
        if delivery is None:
            raise NotFound(f"webhook delivery {shown_id(delivery_id)} not found", code="delivery_not_found")
        return delivery

    def replay(self, tenant_id: str, delivery_id: str) -> Delivery:
        """Send the delivery again (same `webhook-id`, same body): a finished one gets one attempt now;
        a pending one is made due now, in its lane's order. Raises NotFound, Conflict (endpoint disabled
        or deleted), InvalidRequest (older than the replay window)."""
        for _ in range(MAX_RACES):
            delivery = self.get(tenant_id, delivery_id)
            now = self._clock()
            if not delivery.replayable(now):
                raise InvalidRequest(
                    "deliveries can be replayed for 30 days after they were created",
                    code="replay_window_passed",
                )
            endpoint = self._store.get_endpoint(tenant_id, delivery.endpoint_id)
            if endpoint is None:
                raise Conflict("the delivery's endpoint was deleted", code="endpoint_deleted")
            if endpoint.disabled:
                raise Conflict(
                    "the delivery's endpoint is disabled: enable it (PATCH disabled=false) to replay",
                    code="endpoint_disabled",
                )
            if delivery.status is not DeliveryStatus.PENDING:
                self._queue.replay(ReplayRequest(tenant_id, delivery.id))
                logger.info("webhook replay requested", extra={"delivery_id": delivery.id})
                return delivery
            try:
                saved = self._store.save_delivery(tenant_id, delivery.replay_requested(now))
            except StaleRevision:
                continue
            self._queue.kick([LaneKick(tenant_id, delivery.endpoint_id, delivery.customer_id)])
            return saved
        raise Conflict("the delivery kept changing meanwhile; retry", code="delivery_changed")

    def _endpoint(self, tenant_id: str, endpoint_id: str) -> WebhookEndpoint:
        endpoint = self._store.get_endpoint(tenant_id, endpoint_id) if is_key_id(endpoint_id) else None
        if endpoint is None:
            raise NotFound(f"webhook endpoint {shown_id(endpoint_id)} not found", code="endpoint_not_found")
        return endpoint


def _join_cursor(endpoint_id: str, inner: str | None) -> str:
    return f"{endpoint_id}~{inner or ''}"


def _split_cursor(cursor: str | None, endpoints: list[str]) -> tuple[int, str | None]:
    if cursor is None:
        return 0, None
    endpoint_id, _, inner = cursor.partition("~")
    if endpoint_id not in endpoints:
        raise MalformedRequest(
            "cursor is not a cursor of this list; start again without it", code="invalid_cursor"
        )
    return endpoints.index(endpoint_id), inner or None


class WebhookEventService:
    """`GET /v1/webhook-events`: a customer's events in sequence order, to reconcile with what arrived."""

    def __init__(self, outbox: EventPages) -> None:
        self._outbox = outbox

    def list(self, tenant_id: str, customer_id: str, limit: int, cursor: str | None) -> Page[WebhookEvent]:
        """Every event of the customer (one with no profile too: `usage.unbilled` names customers that
        only sent events), oldest first."""
        return self._outbox.list_page(tenant_id, customer_id, limit, cursor)
