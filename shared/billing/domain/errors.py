"""Domain errors: one type per failure a caller handles differently.

Each carries a stable machine `code`; the api function maps types to HTTP statuses in one place.
"""

from __future__ import annotations

from typing import Any


class BillingError(Exception):
    code = "billing_error"

    def __init__(self, message: str, *, code: str | None = None, details: list[Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details or []


class MalformedRequest(BillingError):
    """The request cannot be read at all (not JSON, wrong shape, wrong content type)."""

    code = "malformed_request"


class PayloadTooLarge(BillingError):
    code = "payload_too_large"


class InvalidRequest(BillingError):
    """The request is readable but its content is not acceptable."""

    code = "invalid_request"


class NotFound(BillingError):
    code = "not_found"


class Conflict(BillingError):
    code = "conflict"


class InvalidEvent(BillingError):
    """One usage event failed validation; in a batch it is rejected alone, the rest go on."""

    code = "invalid_event"

    def __init__(self, message: str, *, code: str = "invalid_event", field: str | None = None) -> None:
        super().__init__(message, code=code)
        self.field = field


class PoisonMessage(BillingError):
    """A queued message that can never be processed (undecodable or schema-invalid)."""

    code = "poison_message"


class EventRefused(BillingError):
    """The store refuses one event for good (it can never be stored as it is): it is parked with why."""

    code = "unstorable"


class TransientFailure(BillingError):
    """A dependency is throttling or unavailable; retrying later is expected to succeed."""

    code = "temporarily_unavailable"


class Unauthenticated(BillingError):
    code = "unauthorized"


class Forbidden(BillingError):
    """The key is valid but its scope does not cover this route."""

    code = "forbidden"


# ---- signals between services and their stores (never answered to a caller as they are) --------------


class StaleRevision(Exception):
    """An optimistic write lost a race: the item changed after it was read. Re-read and try again."""


class InvoiceAlreadyFinalized(Exception):
    """The invoice exists: the finalize step ran before (a retry); nothing was written this time."""
