"""Webhook endpoints: what an endpoint subscribes to, when it may receive, and its signing secrets.

An endpoint receives the events created while it is enabled (from `enabled_since` on) whose type it
subscribes to. A disabled endpoint receives nothing; deliveries made for it before stay pending and go
on, in order, once it is enabled again. Its signing secrets are held encrypted (`ciphertext` is opaque
here); after a rotation the old secret still signs, beside the new one, for `ROTATION_OVERLAP`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from billing.domain.webhooks.events import EventType, WebhookEvent

WILDCARD = "*"
ENDPOINT_ID_PREFIX = "we_"
MAX_ENDPOINTS_PER_TENANT = 16
MAX_DESCRIPTION_LENGTH = 500
ROTATION_OVERLAP = timedelta(hours=24)
EVENT_TYPES = tuple(event_type.value for event_type in EventType)


class InvalidEventTypes(ValueError):
    """An `event_types` list that names no type, an unknown one, or the wildcard beside others."""


def normalized_types(values: Sequence[str]) -> tuple[str, ...]:
    """The normalized filter: `("*",)`, or the named types once each, sorted."""
    if not values:
        raise InvalidEventTypes('event_types names no event type; use ["*"] for every type')
    unknown = sorted({value for value in values if value != WILDCARD and value not in EVENT_TYPES})
    if unknown:
        raise InvalidEventTypes(
            f"unknown event types {unknown}; known: {', '.join(EVENT_TYPES)} (or * for all)"
        )
    if WILDCARD in values:
        if len(set(values)) > 1:
            raise InvalidEventTypes('"*" already selects every type: list it alone')
        return (WILDCARD,)
    return tuple(sorted(set(values)))


@dataclass(frozen=True)
class SigningSecret:
    """One secret, encrypted; `expires_at` is set once a newer one replaced it."""

    ciphertext: str
    created_at: datetime
    expires_at: datetime | None = None

    def active(self, at: datetime) -> bool:
        return self.expires_at is None or at < self.expires_at


@dataclass(frozen=True)
class WebhookEndpoint:
    id: str
    url: str
    event_types: tuple[str, ...]
    description: str | None
    disabled: bool
    disabled_reason: str | None
    enabled_since: datetime
    created_at: datetime
    updated_at: datetime
    secrets: tuple[SigningSecret, ...]  # newest first
    revision: int = 0

    def subscribes(self, event_type: EventType | str) -> bool:
        return WILDCARD in self.event_types or str(event_type) in self.event_types

    def should_deliver(self, event: WebhookEvent) -> bool:
        """Whether `event` is this endpoint's to receive (decided the same way by the dispatcher, which
        creates deliveries, and the sender, which may meet an event before the dispatcher did)."""
        return not self.disabled and self.subscribes(event.type) and event.created_at >= self.enabled_since

    def signing_secrets(self, at: datetime) -> tuple[SigningSecret, ...]:
        """The secrets that sign at `at`, newest first (two during a rotation's overlap)."""
        return tuple(secret for secret in self.secrets if secret.active(at))

    # -- changes ---------------------------------------------------------------------------------------

    def rotated(self, ciphertext: str, at: datetime) -> WebhookEndpoint:
        """A new secret signs from now on; the current ones sign beside it for ROTATION_OVERLAP more."""
        overlap_ends = at + ROTATION_OVERLAP
        kept = tuple(
            replace(secret, expires_at=min(secret.expires_at or overlap_ends, overlap_ends))
            for secret in self.signing_secrets(at)
        )
        return replace(self, secrets=(SigningSecret(ciphertext, at), *kept), updated_at=at)

    def disable(self, reason: str, at: datetime) -> WebhookEndpoint:
        if self.disabled:
            return self
        return replace(self, disabled=True, disabled_reason=reason, updated_at=at)

    def enable(self, at: datetime) -> WebhookEndpoint:
        """Enabled again: it receives the events created from now on, and its pending deliveries."""
        if not self.disabled:
            return self
        return replace(self, disabled=False, disabled_reason=None, enabled_since=at, updated_at=at)

    def changed(
        self,
        at: datetime,
        *,
        url: str | None = None,
        event_types: Iterable[str] | None = None,
        description: str | None = None,
    ) -> WebhookEndpoint:
        return replace(
            self,
            url=self.url if url is None else url,
            event_types=self.event_types if event_types is None else normalized_types(list(event_types)),
            description=self.description if description is None else description,
            updated_at=at,
        )


event_types = normalized_types  # the name the API and services use
