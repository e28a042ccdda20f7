"""What became of stored usage events: one event's status, and a customer's unbilled events.

The status is decided when it is asked (`billing.domain.event_status`), from the customer's
subscriptions and the invoices finalized so far, so it is true as of the moment it is read: an unbilled
event becomes counted when a subscription covering it is created, a counted one reads late when it
was stored after its period's invoice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from billing.domain.catalog import CustomerProfile
from billing.domain.errors import NotFound
from billing.domain.event_status import EventStatus, StoredEvent, Window, event_status, uncovered_windows
from billing.domain.ids import is_valid_id, shown_id
from billing.domain.invoicing import IssuedInvoice
from billing.domain.pages import Page
from billing.domain.rating.invoices import invoice_id
from billing.domain.rating.periods import BillingPeriod
from billing.services.ports import CustomerLookup


class EventReader(Protocol):
    def get(self, tenant_id: str, customer_id: str, event_id: str) -> StoredEvent | None: ...


class EventLister(Protocol):
    def list_in_windows(
        self, tenant_id: str, customer_id: str, windows: list[Window], limit: int, cursor: str | None
    ) -> Page[StoredEvent]:
        """The customer's events whose timestamp lies in one of the windows, by (timestamp, id)."""


class InvoiceLookup(Protocol):
    def get(self, tenant_id: str, invoice_id: str) -> IssuedInvoice | None: ...


@dataclass(frozen=True)
class EventReport:
    """A stored event and what became of it: its status and, when billed, the period it is billed in."""

    event: StoredEvent
    status: EventStatus
    subscription_id: str | None = None
    period: BillingPeriod | None = None


class EventService:
    def __init__(
        self, events: EventReader, lister: EventLister, customers: CustomerLookup, invoices: InvoiceLookup
    ) -> None:
        self._events = events
        self._lister = lister
        self._customers = customers
        self._invoices = invoices

    def get(self, tenant_id: str, customer_id: str, event_id: str) -> EventReport:
        event = (
            self._events.get(tenant_id, customer_id, event_id)
            if is_valid_id(customer_id) and is_valid_id(event_id)
            else None
        )
        if event is None:
            raise NotFound(
                f"event {shown_id(event_id)} of customer {shown_id(customer_id)} is not stored (yet)",
                code="event_not_found",
            )
        return self._report(tenant_id, self._customers.get_customer(tenant_id, customer_id), event)

    def unbilled(self, tenant_id: str, customer_id: str, limit: int, cursor: str | None) -> Page[EventReport]:
        """The customer's events that no subscription covers, oldest first (all of an unknown customer's)."""
        if not is_valid_id(customer_id):
            return Page([], None)
        customer = self._customers.get_customer(tenant_id, customer_id)
        windows = uncovered_windows(customer.subscriptions if customer else ())
        page = self._lister.list_in_windows(tenant_id, customer_id, windows, limit, cursor)
        return Page([EventReport(event, EventStatus.UNBILLED) for event in page.items], page.next_cursor)

    def _report(self, tenant_id: str, customer: CustomerProfile | None, event: StoredEvent) -> EventReport:
        span = None if customer is None else customer.subscription_at(event.timestamp)
        if customer is None or span is None:
            return EventReport(event, EventStatus.UNBILLED)
        period = customer.billing.cycle.period_containing(event.timestamp)
        invoice = self._invoices.get(tenant_id, invoice_id(tenant_id, span.id, period.start_utc))
        status = event_status(event.stored_at, span, None if invoice is None else invoice.finalized_at)
        return EventReport(event, status, span.id, period)
