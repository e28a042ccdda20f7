"""Billing runs on the wire."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from billing.api.models.common import Id, Instant, RequestModel, ResponseModel
from billing.domain.billing_runs import BillingRun


class BillingRunIn(RequestModel):
    as_of: Instant | None = Field(
        default=None, description="Close periods that ended before this; default now"
    )
    customer_id: Id | None = Field(default=None, description="Only this customer's periods")


class BillingRunOut(ResponseModel):
    id: str
    status: Literal["running", "succeeded", "failed"]
    as_of: str
    customer_id: str | None
    created_at: str
    finished_at: str | None
    invoices: list[str] = Field(description="Ids of the invoices this run finalized")
    errors: list[dict[str, Any]]

    @classmethod
    def of(cls, run: BillingRun) -> BillingRunOut:
        return cls(
            id=run.id,
            status=run.status,  # type: ignore[arg-type]
            as_of=run.as_of,
            customer_id=run.customer_id,
            created_at=run.created_at,
            finished_at=run.finished_at,
            invoices=list(run.invoices),
            errors=list(run.errors),
        )


class BillingRunStarted(ResponseModel):
    id: str
    status: Literal["running", "succeeded", "failed"] = Field(
        description="running; or, for a run this Idempotency-Key started before, where it stands"
    )
    as_of: str
