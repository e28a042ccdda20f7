"""Billing runs and the periods they close: the values the cycle-close service and its stores share.

A `DuePeriod` is one subscription's next period waiting to be closed; a `BillingRun` is one execution of
cycle close (started by the API for a tenant, or by the schedule for every tenant) and its outcome.
Timestamps are fixed-width UTC text (`format_timestamp`), so they sort as the instants do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class DuePeriod:
    tenant_id: str
    subscription_id: str
    customer_id: str
    period_start: str  # fixed-width UTC text, as `format_timestamp` writes it
    period_end: str

    def to_json(self) -> dict[str, str]:
        return {
            "tenant_id": self.tenant_id,
            "subscription_id": self.subscription_id,
            "customer_id": self.customer_id,
            "period_start": self.period_start,
            "period_end": self.period_end,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DuePeriod:
        return cls(
            tenant_id=str(data["tenant_id"]),
            subscription_id=str(data["subscription_id"]),
            customer_id=str(data["customer_id"]),
            period_start=str(data["period_start"]),
            period_end=str(data["period_end"]),
        )


@dataclass
class BillingRun:
    id: str
    tenant_id: str | None  # None: a scheduled run over every tenant
    status: str  # running | succeeded | failed
    as_of: str
    customer_id: str | None
    created_at: str
    invoices: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    finished_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The run as the state machine's last step reports it (the execution's output)."""
        return {
            "id": self.id,
            "status": self.status,
            "as_of": self.as_of,
            "customer_id": self.customer_id,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "invoices": self.invoices,
            "errors": self.errors,
        }


def scheduled_run_id(as_of: datetime) -> str:
    """Scheduled runs are named by their instant: a retried schedule start is the same run."""
    return "run_sched_" + as_of.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
