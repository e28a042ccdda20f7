"""Webhook events: the business facts the system announces, their ids, their per-customer sequence, and
what each one says (ids and amounts only: never a name, an e-mail or a card number).

An event is written to the outbox in the same transaction as the fact it announces, so the two exist
together or not at all. Its id is derived from the fact (`event_id`), so a re-run of the step that made
the fact writes the same id, and the outbox refuses an id it holds already. Its `sequence` is the
customer's next number: the outbox head moves one by one under a condition, so there is no gap and no
duplicate.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from billing.domain import canonical_json
from billing.domain.invoicing import IssuedInvoice, RecordedPayment
from billing.domain.rating.money import format_major
from billing.domain.rating.periods import format_instant
from billing.domain.usage_events import parse_timestamp


class EventType(StrEnum):
    INVOICE_FINALIZED = "invoice.finalized"
    INVOICE_PAID = "invoice.paid"
    INVOICE_PARTIALLY_PAID = "invoice.partially_paid"
    INVOICE_UNCOLLECTIBLE = "invoice.uncollectible"
    PAYMENT_SUCCEEDED = "payment.succeeded"
    PAYMENT_FAILED = "payment.failed"
    CUSTOMER_ACCESS_CHANGED = "customer.access_changed"
    USAGE_LATE_EVENT = "usage.late_event"
    USAGE_UNBILLED = "usage.unbilled"
    INVOICE_VOIDED = "invoice.voided"
    CREDIT_NOTE_CREATED = "credit_note.created"
    SUBSCRIPTION_TRIAL_WILL_END = "subscription.trial_will_end"
    SUBSCRIPTION_UPDATED = "subscription.updated"


EVENT_ID_PREFIX = "evt_"


def event_id(tenant_id: str, event_type: EventType, *source: str) -> str:
    """The id of the event announcing the fact named by `source` (its item id, and a version where one
    item has several facts of one type): the same fact always gives the same id, in any process."""
    return EVENT_ID_PREFIX + canonical_json.sha256_hex([tenant_id, event_type.value, *source])[:32]


@dataclass(frozen=True)
class NewEvent:
    """An event about to be written to the outbox: everything but its sequence, which the outbox gives."""

    id: str
    type: EventType
    customer_id: str
    created_at: datetime
    data: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _freeze(self)


@dataclass(frozen=True)
class WebhookEvent:
    """An event as the outbox holds it and every delivery sends it."""

    id: str
    type: EventType
    customer_id: str
    sequence: int
    created_at: datetime
    data: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _freeze(self)

    def payload(self) -> dict[str, Any]:
        """The delivery body as a value: `{"type", "id", "customer_id", "sequence", "created_at", "data"}`."""
        return {
            "type": self.type.value,
            "id": self.id,
            "customer_id": self.customer_id,
            "sequence": self.sequence,
            "created_at": format_instant(self.created_at),
            "data": _plain(self.data),
        }

    def body(self) -> bytes:
        """The bytes every attempt and replay sends (canonical JSON: the same event, the same bytes)."""
        return canonical_json.dumps(self.payload()).encode()


def number(events: Sequence[NewEvent], last_sequence: int) -> list[WebhookEvent]:
    """The events as the next ones of a customer whose outbox is at `last_sequence`, in the given order."""
    customers = {event.customer_id for event in events}
    if len(customers) > 1:
        raise ValueError("one outbox append holds one customer's events")
    return [
        WebhookEvent(
            id=event.id,
            type=event.type,
            customer_id=event.customer_id,
            sequence=last_sequence + offset,
            created_at=event.created_at,
            data=event.data,
        )
        for offset, event in enumerate(events, start=1)
    ]


# ---- what each fact announces ----------------------------------------------------------------------


def on_invoice_finalized(tenant_id: str, invoice: IssuedInvoice) -> list[NewEvent]:
    """`invoice.finalized`; `invoice.paid` too when nothing is due at once (credit covered it, or a total
    of zero); and one `usage.late_event` per earlier invoice whose late events this invoice bills."""
    events = [
        NewEvent(
            id=event_id(tenant_id, EventType.INVOICE_FINALIZED, invoice.id),
            type=EventType.INVOICE_FINALIZED,
            customer_id=invoice.customer_id,
            created_at=invoice.finalized_at,
            data=invoice_data(invoice),
        )
    ]
    events += _late_usage(tenant_id, invoice)
    if invoice.amount_due_minor == 0:
        events.append(
            NewEvent(
                id=event_id(tenant_id, EventType.INVOICE_PAID, invoice.id),
                type=EventType.INVOICE_PAID,
                customer_id=invoice.customer_id,
                created_at=invoice.finalized_at,
                data=invoice_data(invoice),
            )
        )
    return events


def on_payment(tenant_id: str, invoice: IssuedInvoice, payment: RecordedPayment) -> list[NewEvent]:
    """`payment.succeeded`, then `invoice.paid` (nothing is due any more: once per invoice) or
    `invoice.partially_paid` (this payment left something due); `invoice` is its state after the payment."""
    payment_data = {
        "payment_id": payment.id,
        "invoice_id": payment.invoice_id,
        "amount": format_major(payment.amount_minor, payment.currency),
        "settled": format_major(payment.settled_minor, payment.currency),
        "credited": format_major(payment.credited_minor, payment.currency),
        "currency": payment.currency.code,
        # Not the client's reference itself (free text, it may name a person): its SHA-256, which the
        # application can compute from the references it sent to match the payment.
        "reference_sha256": hashlib.sha256(payment.reference.encode()).hexdigest(),
        "created_at": format_instant(payment.created_at),
    }
    events = [
        NewEvent(
            id=event_id(tenant_id, EventType.PAYMENT_SUCCEEDED, payment.id),
            type=EventType.PAYMENT_SUCCEEDED,
            customer_id=payment.customer_id,
            created_at=payment.created_at,
            data=payment_data,
        )
    ]
    settled = invoice.amount_due_minor == 0
    kind = EventType.INVOICE_PAID if settled else EventType.INVOICE_PARTIALLY_PAID
    source = invoice.id if settled else payment.id
    events.append(
        NewEvent(
            id=event_id(tenant_id, kind, source),
            type=kind,
            customer_id=payment.customer_id,
            created_at=payment.created_at,
            data={**invoice_data(invoice), "payment_id": payment.id},
        )
    )
    return events


def on_unbilled_usage(
    tenant_id: str,
    customer_id: str,
    day: date,
    *,
    first_event_id: str,
    first_event_type: str,
    first_timestamp: datetime,
    stored_at: datetime,
) -> NewEvent:
    """`usage.unbilled`: the customer's first stored event, on a UTC day, that no subscription covers.

    One per (customer, day), not one per event: it tells the application that this customer's usage is
    not being billed (no subscription yet, or one that ended); `GET /v1/events?status=unbilled` lists
    every such event."""
    return NewEvent(
        id=event_id(tenant_id, EventType.USAGE_UNBILLED, customer_id, day.isoformat()),
        type=EventType.USAGE_UNBILLED,
        customer_id=customer_id,
        created_at=stored_at,
        data={
            "date": day.isoformat(),
            "first_event_id": first_event_id,
            "first_event_type": first_event_type,
            "first_event_timestamp": format_instant(first_timestamp),
        },
    )


def invoice_data(invoice: IssuedInvoice) -> dict[str, Any]:
    major = invoice.major
    return {
        "invoice_id": invoice.id,
        "subscription_id": invoice.subscription_id,
        "status": invoice.status.value,
        "currency": invoice.currency.code,
        "period": invoice.period.to_json(),
        "subtotal": major(invoice.subtotal_minor),
        "tax": major(invoice.tax_minor),
        "total": major(invoice.total_minor),
        "credit_applied": major(invoice.credit_applied_minor),
        "amount_paid": major(invoice.amount_paid_minor),
        "amount_due": major(invoice.amount_due_minor),
        "finalized_at": format_instant(invoice.finalized_at),
    }


def _late_usage(tenant_id: str, invoice: IssuedInvoice) -> list[NewEvent]:
    """One `usage.late_event` per earlier invoice that late events changed: what this invoice bills for it."""
    by_invoice: dict[str, list[Mapping[str, Any]]] = {}
    for line in invoice.rated_lines:
        adjusted = line.get("adjusted_invoice_id")
        if line.get("type") == "adjustment" and adjusted:
            by_invoice.setdefault(str(adjusted), []).append(line)
    events = []
    for adjusted, lines in sorted(by_invoice.items()):
        total = sum(int(line["amount_minor"]) for line in lines)
        events.append(
            NewEvent(
                id=event_id(tenant_id, EventType.USAGE_LATE_EVENT, invoice.id, adjusted),
                type=EventType.USAGE_LATE_EVENT,
                customer_id=invoice.customer_id,
                created_at=invoice.finalized_at,
                data={
                    "invoice_id": invoice.id,
                    "adjusted_invoice_id": adjusted,
                    # Every window its lines correct (one per plan segment when the plan changed in it).
                    "period": {
                        "start": format_instant(min(_instant(line["period"]["start"]) for line in lines)),
                        "end": format_instant(max(_instant(line["period"]["end"]) for line in lines)),
                    },
                    "currency": invoice.currency.code,
                    "amount": invoice.major(total),
                    "lines": [
                        {
                            "meter": line.get("meter"),
                            "adjusts": line.get("adjusts"),
                            "quantity": line.get("quantity"),
                            "amount": invoice.major(int(line["amount_minor"])),
                        }
                        for line in lines
                    ],
                },
            )
        )
    return events


def _instant(text: Any) -> datetime:
    return parse_timestamp(str(text), "period")


def _freeze(event: NewEvent | WebhookEvent) -> None:
    """Its type as the enum (read back from storage as text) and its data read-only, all the way down."""
    object.__setattr__(event, "type", EventType(event.type))
    object.__setattr__(event, "data", _frozen(event.data))


def _frozen(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({str(key): _frozen(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_frozen(item) for item in value)
    return value


def _plain(value: Any) -> Any:
    """Mapping proxies and tuples as plain JSON values."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
