"""Cycle close: the steps of the state machine (list due → rate → tax → finalize → summarize).

Every step is idempotent. `rate` and `tax` are pure functions of stored data (events, catalog, invoices
already finalized) and hand their result to the next step through the execution state; `finalize`
writes the invoice, its audit record, its journal entries and the next due period in one transaction
whose condition (the invoice must not exist) makes a retry, or a second run, a no-op.

Late events: the periods before the one being closed that are still open to events (the 35-day window)
are re-rated with every stored event; what differs from what was billed for them becomes adjustment
lines on this invoice. Re-rating unchanged data gives no line, so nothing is ever counted twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from aws_lambda_powertools.metrics import MetricUnit

from billing.domain import canonical_json
from billing.domain.billing_runs import BillingRun, DuePeriod, scheduled_run_id
from billing.domain.catalog import CustomerProfile, SubscriptionRecord
from billing.domain.errors import InvalidRequest, InvoiceAlreadyFinalized, NotFound
from billing.domain.ids import is_key_id, shown_id
from billing.domain.invoicing import IssuedInvoice, tax_correction
from billing.domain.ledger.accounts import AccountKind
from billing.domain.ledger.chain import LedgerSnapshot
from billing.domain.ledger.transactions import JournalTransaction
from billing.domain.rating.invoices import InvoiceLine, LineType, adjustment_for, build_invoice
from billing.domain.rating.invoices import invoice_id as make_invoice_id
from billing.domain.rating.meters import Meter
from billing.domain.rating.money import Currency
from billing.domain.rating.periods import BillingPeriod
from billing.domain.rating.plans import SubscriptionSegment
from billing.domain.tax.locations import LineWindow, LocationChange, split_by_location
from billing.domain.tax.model import (
    SellerConfig,
    TaxCustomer,
    TaxLocation,
    TaxQuote,
    TaxRequest,
)
from billing.domain.usage_events import format_timestamp, parse_timestamp
from billing.domain.webhooks.events import NewEvent, on_invoice_finalized
from billing.runtime import logger, metrics
from billing.services.ports import CustomerLookup
from billing.services.usage import CatalogReader, EventsReader, loaded_segments

# ---- ports -------------------------------------------------------------------------------------------


class DueIndex(Protocol):
    def due_before(
        self, cutoff: str, *, tenant_id: str | None = None, customer_id: str | None = None
    ) -> list[DuePeriod]: ...

    def schedule(self, due: DuePeriod) -> None: ...

    def advance(self, due: DuePeriod, next_due: DuePeriod | None) -> None:
        """Replace a due period by the next one (or by none) in one write, without an invoice."""

    def create_run(self, run: BillingRun) -> bool:
        """Record a new run; False (and nothing written) when a run with its id exists."""

    def get_run(self, tenant_id: str | None, run_id: str) -> BillingRun | None: ...

    def finish_run(self, run: BillingRun) -> None: ...


class InvoiceStore(Protocol):
    def get(self, tenant_id: str, invoice_id: str) -> IssuedInvoice | None: ...

    def finalize(
        self,
        tenant_id: str,
        customer_id: str,
        issue: Callable[[LedgerSnapshot], tuple[IssuedInvoice, Sequence[JournalTransaction]]],
        announce: Callable[[IssuedInvoice], Sequence[NewEvent]],
        audit: dict[str, Any],
        due: DuePeriod,
        next_due: DuePeriod | None,
    ) -> IssuedInvoice:
        """Write the invoice `issue` makes from the customer's journal, with its entries, the webhook
        events `announce` makes of it and the due index, in one transaction. Raises
        InvoiceAlreadyFinalized when the invoice exists."""


class TaxQuoter(Protocol):
    def quote(self, request: TaxRequest) -> TaxQuote: ...


class WorkflowStarter(Protocol):
    def start(self, run_id: str, payload: dict[str, Any]) -> None: ...

    def status(self, run_id: str) -> str | None: ...


_BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)  # a tax location recorded "from the beginning"
EARLIEST_AS_OF = datetime(2000, 1, 1, tzinfo=UTC)
MAX_RUN_ITEMS = 400  # items and their results share Step Functions' 256 KiB state limit


# ---- the service -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CloseSettings:
    grace: timedelta
    event_max_age: timedelta
    seller: SellerConfig


class CycleCloseService:
    def __init__(
        self,
        *,
        catalog: CatalogReader,
        events: EventsReader,
        due_index: DueIndex,
        invoices: InvoiceStore,
        tax: TaxQuoter,
        settings: CloseSettings,
        clock: Callable[[], datetime],
    ) -> None:
        self._catalog = catalog
        self._events = events
        self._due = due_index
        self._invoices = invoices
        self._tax = tax
        self._settings = settings
        self._clock = clock

    # -- list_due -------------------------------------------------------------------------------------

    def list_due(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The run's periods to close: every due period that ended, plus the grace window, before as_of."""
        as_of = parse_timestamp(payload["as_of"], "as_of") if payload.get("as_of") else self._clock()
        tenant_id = payload.get("tenant_id")
        run_id = payload.get("run_id") or scheduled_run_id(as_of)
        self._due.create_run(
            BillingRun(
                id=run_id,
                tenant_id=tenant_id,
                status="running",
                as_of=format_timestamp(as_of),
                customer_id=payload.get("customer_id"),
                created_at=format_timestamp(self._clock()),
            )
        )
        cutoff = format_timestamp(as_of - self._settings.grace)
        due = self._due.due_before(cutoff, tenant_id=tenant_id, customer_id=payload.get("customer_id"))
        # One item per subscription: its periods are closed in order inside the item (see `finalize`).
        first_per_subscription: dict[tuple[str, str], DuePeriod] = {}
        for period in due:
            first_per_subscription.setdefault((period.tenant_id, period.subscription_id), period)
        run = {"id": run_id, "tenant_id": tenant_id, "as_of": format_timestamp(as_of), "cutoff": cutoff}
        logger.info("billing run listed", extra={"run_id": run_id, "due": len(first_per_subscription)})
        # The item list travels in the execution state (256 KiB): a run takes the oldest MAX_RUN_ITEMS
        # subscriptions; the others stay due and the next run (hourly) takes them.
        oldest = list(first_per_subscription.values())[:MAX_RUN_ITEMS]
        if len(first_per_subscription) > MAX_RUN_ITEMS:
            metrics.add_metric(
                name="RunItemsDeferred",
                unit=MetricUnit.Count,
                value=len(first_per_subscription) - len(oldest),
            )
        items = [{"due": period.to_json(), "invoices": []} for period in oldest]
        return {"run": run, "items": items}

    # -- rate -----------------------------------------------------------------------------------------

    def rate(self, run: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
        due = DuePeriod.from_json(item["due"])
        tenant_id = due.tenant_id
        customer, subscription = self._load(tenant_id, due)
        period = BillingPeriod(parse_timestamp(due.period_start), parse_timestamp(due.period_end))
        segments = loaded_segments(self._catalog, tenant_id, subscription)
        meters = {meter.key: meter for meter in self._catalog.all_meters(tenant_id)}
        adjustments = (
            self._late_adjustments(tenant_id, customer, period, meters)
            if carrier_of(customer, period) == subscription.id
            else []
        )
        events = self._events.events_in(tenant_id, customer.id, period.start_utc, period.end_utc)
        invoice = build_invoice(
            tenant_id, customer.billing, subscription.id, period, segments, meters, events, adjustments
        )
        metrics.add_metric(name="InvoicesRated", unit=MetricUnit.Count, value=1)
        return {"run": run, "item": {**_carry(item), "invoice": invoice.to_dict()}}

    def _late_adjustments(
        self, tenant_id: str, customer: CustomerProfile, period: BillingPeriod, meters: dict[str, Meter]
    ) -> list[InvoiceLine]:
        """Corrections of the customer's earlier periods that late events (still within the event window)
        changed, whichever of the customer's subscriptions billed them: a late event of a subscription
        that has since been cancelled is billed on the customer's next invoice all the same."""
        finalized = self._earlier_finalized(tenant_id, customer, period)
        currency = customer.billing.currency
        segments_of: dict[str, list[SubscriptionSegment]] = {}
        lines: list[InvoiceLine] = []
        for index, (old_period, stored) in enumerate(finalized):
            billed = [
                InvoiceLine.from_json(line, currency)
                for line in stored.rated_lines
                if line["type"] != LineType.ADJUSTMENT
            ]
            # Corrections already issued for it, on the invoices finalized after it.
            for _, later in finalized[index + 1 :]:
                billed += [
                    InvoiceLine.from_json(line, currency)
                    for line in later.rated_lines
                    if line["type"] == LineType.ADJUSTMENT and line.get("adjusted_invoice_id") == stored.id
                ]
            if stored.subscription_id not in segments_of:
                segments_of[stored.subscription_id] = self._segments(tenant_id, stored.subscription_id)
            events = self._events.events_in(tenant_id, customer.id, old_period.start_utc, old_period.end_utc)
            re_rated = build_invoice(
                tenant_id,
                customer.billing,
                stored.subscription_id,
                old_period,
                segments_of[stored.subscription_id],
                meters,
                events,
            )
            found = adjustment_for(billed, re_rated)
            if found:
                metrics.add_metric(name="LateEventAdjustments", unit=MetricUnit.Count, value=len(found))
            lines += found
        return lines

    def _segments(self, tenant_id: str, subscription_id: str) -> list[SubscriptionSegment]:
        subscription = self._catalog.get_subscription(tenant_id, subscription_id)
        if subscription is None:
            raise NotFound(f"subscription {subscription_id} of a finalized invoice no longer exists")
        return loaded_segments(self._catalog, tenant_id, subscription)

    def _earlier_finalized(
        self, tenant_id: str, customer: CustomerProfile, period: BillingPeriod
    ) -> list[tuple[BillingPeriod, IssuedInvoice]]:
        """The customer's finalized invoices of the periods before `period` that may still change (the
        event window), of every subscription it had then, in the order they were finalized."""
        open_since = period.start_utc - self._settings.event_max_age - self._settings.grace
        earlier = [
            old
            for old in customer.billing.cycle.periods_between(open_since, period.start_utc)
            if old.end_utc <= period.start_utc
        ]
        found = []
        for span in customer.subscriptions:
            for old in earlier:
                # Not only the periods it ran in: after a cancel, its periods stay open for late events
                # (see `_next_due`) and may have invoices that carried corrections.
                if span.start >= old.end_utc:
                    continue
                stored = self._invoices.get(tenant_id, make_invoice_id(tenant_id, span.id, old.start_utc))
                if stored is not None:
                    found.append((old, stored))
        return sorted(found, key=lambda pair: (pair[1].finalized_at, pair[1].id))

    # -- tax ------------------------------------------------------------------------------------------

    def tax(self, run: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
        """Tax each line by the location in effect over its window; correct earlier invoices' tax.

        Earlier invoices still open to change are re-taxed with today's knowledge (a tax location
        changed with an effective time in their period, an estimated tax now quoted for real): the
        difference to what was billed for them is a tax correction line on this invoice.
        """
        due = DuePeriod.from_json(item["due"])
        customer, _ = self._load(due.tenant_id, due)
        invoice = item["invoice"]
        currency = Currency.of(invoice["currency"])
        period = BillingPeriod(parse_timestamp(due.period_start), parse_timestamp(due.period_end))
        cycle = customer.billing.cycle
        quote = self._quote(customer, invoice["lines"], str(invoice["id"]), cycle.last_day(period), currency)
        tax_lines = [] if quote is None else [line.to_json(currency) for line in quote.lines]
        decisions = [] if quote is None else [dict(decision) for decision in quote.decisions]
        carries = carrier_of(customer, period) == due.subscription_id
        finalized = self._earlier_finalized(due.tenant_id, customer, period) if carries else []
        for index, (old_period, old) in enumerate(finalized):
            requote = self._quote(
                customer, list(old.rated_lines), old.id, cycle.last_day(old_period), currency
            )
            if requote is None or any(line.estimated for line in requote.lines):
                continue  # an estimate cannot settle an estimate: try again at the next close
            later = [other for _, other in finalized[index + 1 :]]
            correction = tax_correction(old, later, requote.tax_minor, estimated_before=old.tax_estimated)
            if correction is not None:
                tax_lines.append(correction)
                decisions += [dict(decision) for decision in requote.decisions]
                metrics.add_metric(name="TaxCorrections", unit=MetricUnit.Count, value=1)
        return {
            "run": run,
            "item": {**_carry(item), "invoice": invoice, "tax_lines": tax_lines, "tax_decisions": decisions},
        }

    def _quote(
        self,
        customer: CustomerProfile,
        lines: Sequence[Mapping[str, Any]],
        document_id: str,
        tax_date: date,
        currency: Currency,
    ) -> TaxQuote | None:
        """The tax of some invoice lines, each part taxed where the customer was over its window, at the
        rates in effect on `tax_date`: the period's last day in the customer's billing timezone."""
        if not customer.tax_history:
            return None  # no tax location known: nothing can be taxed (documented)
        history = [
            LocationChange(change.effective_at or _BEGINNING, _tax_location(change.tax))
            for change in customer.tax_history
        ]
        windows = [
            LineWindow(
                ref=f"L{index + 1}",
                amount_minor=int(line["amount_minor"]),
                start=parse_timestamp(line["period"]["start"]),
                end=parse_timestamp(line["period"]["end"]),
                tax_code=line.get("tax_code"),
            )
            for index, line in enumerate(lines)
            if int(line["amount_minor"]) != 0
        ]
        if not windows:
            return None
        current = customer.tax_history[-1].tax
        request = TaxRequest(
            seller=self._settings.seller,
            customer=TaxCustomer(
                location=_tax_location(current), tax_id=current.tax_id, exempt=current.exempt
            ),
            currency=currency,
            tax_date=tax_date,
            lines=tuple(part.taxable_line() for part in split_by_location(windows, history)),
            document_id=document_id,
        )
        return self._tax.quote(request)

    # -- finalize -------------------------------------------------------------------------------------

    def finalize(self, run: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
        due = DuePeriod.from_json(item["due"])
        tenant_id = due.tenant_id
        customer, subscription = self._load(tenant_id, due)
        draft = item["invoice"]
        tax_lines = item.get("tax_lines", [])
        finalized_at = self._clock()
        audit = {
            "invoice_id": draft["id"],
            "rating": {"lines": draft["lines"], "subtotal_minor": int(draft["subtotal_minor"])},
            "tax": {"lines": tax_lines, "decisions": item.get("tax_decisions", [])},
            "recorded_at": format_timestamp(finalized_at),
        }

        def issue(ledger: LedgerSnapshot) -> tuple[IssuedInvoice, list[JournalTransaction]]:
            credit = ledger.balance_minor(AccountKind.CUSTOMER_CREDIT, draft["currency"])
            return IssuedInvoice.finalize(
                draft,
                tax_lines,
                finalized_at=finalized_at,
                run_id=run.get("id"),
                available_credit_minor=credit,
            )

        period = BillingPeriod(parse_timestamp(due.period_start), parse_timestamp(due.period_end))
        next_due = self._next_due(due, customer, subscription, period)
        after_the_end = subscription.end is not None and period.start_utc >= subscription.end
        if after_the_end and not draft["lines"] and not tax_lines:
            # A period after a cancel, kept open for late events of the subscription's last periods: none
            # came, so there is nothing to bill (no invoice of 0.00), only the due index to move on.
            self._due.advance(due, next_due)
            return self._closed(run, item, next_due, status="nothing_to_bill", invoice_id=None)
        try:
            self._invoices.finalize(
                tenant_id,
                customer.id,
                issue,
                lambda invoice: on_invoice_finalized(tenant_id, invoice),
                audit,
                due,
                next_due,
            )
            metrics.add_metric(name="InvoicesFinalized", unit=MetricUnit.Count, value=1)
            logger.info("invoice finalized", extra={"invoice_id": draft["id"], "tenant_id": tenant_id})
        except InvoiceAlreadyFinalized:
            # The transaction that wrote the invoice also moved the due index on: nothing to repair.
            stored = self._invoices.get(tenant_id, str(draft["id"]))
            if stored is None or stored.run_id != run.get("id"):
                # Another run closed it (runs may overlap): leave this subscription to that run.
                return {
                    "status": "already_finalized",
                    "invoice_id": draft["id"],
                    "invoices": item.get("invoices", []),
                    "item": None,
                }
            # This run wrote it and lost the reply (a retry): carry on as if it had heard back.
        return self._closed(run, item, next_due, status="finalized", invoice_id=str(draft["id"]))

    @staticmethod
    def _closed(
        run: dict[str, Any],
        item: dict[str, Any],
        next_due: DuePeriod | None,
        *,
        status: str,
        invoice_id: str | None,
    ) -> dict[str, Any]:
        """The state after a period closed: loop back to rating while more periods are due in this run."""
        invoices = [*item.get("invoices", []), *([invoice_id] if invoice_id else [])]
        if next_due is None or next_due.period_end > run["cutoff"]:
            # The item's last state goes into the run's results: keep it small (no `run`).
            return {"status": status, "invoice_id": invoice_id, "invoices": invoices, "item": None}
        return {
            "run": run,
            "status": status,
            "invoice_id": invoice_id,
            "invoices": invoices,
            "item": {"due": next_due.to_json(), "invoices": invoices},
        }

    def _next_due(
        self,
        due: DuePeriod,
        customer: CustomerProfile,
        subscription: SubscriptionRecord,
        period: BillingPeriod,
    ) -> DuePeriod | None:
        following = customer.billing.cycle.next_period(period)
        if subscription.end is not None and subscription.end <= period.end_utc:
            # Cancelled: late events of its last periods may still arrive while the event window is open.
            # The periods after the cancel stay due until it shuts; they bill those corrections when no later
            # subscription of the customer carries them, and nothing otherwise.
            window_shuts = subscription.end + self._settings.event_max_age + self._settings.grace
            if following.start_utc >= window_shuts:
                return None
        return DuePeriod(
            due.tenant_id,
            due.subscription_id,
            due.customer_id,
            format_timestamp(following.start_utc),
            format_timestamp(following.end_utc),
        )

    # -- summarize ------------------------------------------------------------------------------------

    def summarize(self, run: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, Any]:
        invoices: list[str] = []
        errors: list[dict[str, Any]] = []
        for result in results:
            invoices += result.get("invoices", [])
            if result.get("status") == "failed":
                due = (result.get("item") or {}).get("due") or {}
                errors.append(
                    {
                        "subscription_id": due.get("subscription_id"),
                        "customer_id": due.get("customer_id"),
                        "period_start": due.get("period_start"),
                        "error": result.get("error"),
                        "message": _short_cause(result.get("cause")),
                    }
                )
        record = self._due.get_run(run.get("tenant_id"), run["id"])
        finished = BillingRun(
            id=run["id"],
            tenant_id=run.get("tenant_id"),
            status="failed" if errors else "succeeded",
            as_of=run["as_of"],
            customer_id=record.customer_id if record else None,
            created_at=record.created_at if record else run["as_of"],
            invoices=sorted(set(invoices)),
            errors=errors,
            finished_at=format_timestamp(self._clock()),
        )
        self._due.finish_run(finished)
        logger.info(
            "billing run finished",
            extra={"run_id": run["id"], "invoices": len(finished.invoices), "errors": len(errors)},
        )
        return finished.to_json()

    def run_failed(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Listing (or the Map as a whole) failed for good: the run is recorded as failed with the reason.

        The input is the execution's input (listing failed) or the listed state (the Map failed).
        """
        source = payload.get("input") or {}
        listed = source.get("run") or {}
        as_of = listed.get("as_of") or source.get("as_of")
        run_id = (
            listed.get("id")
            or source.get("run_id")
            or scheduled_run_id(parse_timestamp(as_of, "as_of") if as_of else self._clock())
        )
        tenant_id = listed.get("tenant_id", source.get("tenant_id"))
        record = self._due.get_run(tenant_id, run_id)
        error = payload.get("input", {}).get("error") or payload.get("error") or {}
        failed = BillingRun(
            id=run_id,
            tenant_id=tenant_id,
            status="failed",
            as_of=record.as_of if record else str(source.get("as_of")),
            customer_id=record.customer_id if record else source.get("customer_id"),
            created_at=record.created_at if record else format_timestamp(self._clock()),
            errors=[{"error": error.get("Error"), "message": _short_cause(error.get("Cause"))}],
            finished_at=format_timestamp(self._clock()),
        )
        self._due.finish_run(failed)
        return failed.to_json()

    # -- helpers --------------------------------------------------------------------------------------

    def _load(self, tenant_id: str, due: DuePeriod) -> tuple[CustomerProfile, SubscriptionRecord]:
        customer = self._catalog.get_customer(tenant_id, due.customer_id)
        subscription = self._catalog.get_subscription(tenant_id, due.subscription_id)
        if customer is None or subscription is None:
            raise NotFound(f"subscription {due.subscription_id} or its customer no longer exists")
        return customer, subscription


# ---- starting runs (the API side) ---------------------------------------------------------------------


class BillingRuns:
    """POST/GET /v1/billing-runs: start the state machine for a tenant, read the run's record."""

    def __init__(
        self,
        runs: DueIndex,
        starter: WorkflowStarter,
        clock: Callable[[], datetime],
        customers: CustomerLookup | None = None,
    ) -> None:
        self._runs = runs
        self._starter = starter
        self._clock = clock
        self._customers = customers

    def start(
        self,
        tenant_id: str,
        as_of: datetime | None,
        customer_id: str | None,
        *,
        now: datetime | None = None,
        client_token: str | None = None,
    ) -> BillingRun:
        """Start a run (or answer the one `client_token` started already: a retried or repeated request
        with the same token never starts a second run, whatever reaches this point concurrently).

        Raises NotFound for an unknown customer, InvalidRequest for an `as_of` outside what can close.
        """
        moment = as_of or now or self._clock()
        if moment > self._clock():
            raise InvalidRequest(
                "as_of may not be in the future: periods that have not ended cannot close",
                code="invalid_as_of",
            )
        if moment < EARLIEST_AS_OF:
            raise InvalidRequest(
                "as_of is before 2000-01-01: there is nothing to close then", code="invalid_as_of"
            )
        customers = self._customers
        if (
            customer_id is not None
            and customers is not None
            and customers.get_customer(tenant_id, customer_id) is None
        ):
            raise NotFound(f"customer {shown_id(customer_id)} not found", code="customer_not_found")
        run_id = (
            f"run_{uuid.uuid4().hex}"
            if client_token is None
            else "run_" + canonical_json.sha256_hex([tenant_id, "client_token", client_token])[:32]
        )
        run = BillingRun(
            id=run_id,
            tenant_id=tenant_id,
            status="running",
            as_of=format_timestamp(moment),
            customer_id=customer_id,
            created_at=format_timestamp(self._clock()),
        )
        # The record first, so that GET finds the run as soon as POST has answered. A run of this id that
        # exists already is the one to answer (and to make sure of: its start may be what failed).
        if not self._runs.create_run(run):
            run = self._same_run(self._runs.get_run(tenant_id, run_id) or run, run, as_of is not None)
        self._starter.start(
            run.id,
            {"run_id": run.id, "tenant_id": tenant_id, "as_of": run.as_of, "customer_id": run.customer_id},
        )
        return run

    @staticmethod
    def _same_run(stored: BillingRun, asked: BillingRun, as_of_given: bool) -> BillingRun:
        """The run a client token started before, if it was asked for the same thing (a key reused, after
        its Idempotency-Key record expired, for another run is refused rather than answered wrongly)."""
        if stored.customer_id != asked.customer_id or (as_of_given and stored.as_of != asked.as_of):
            raise InvalidRequest(
                f"this Idempotency-Key started billing run {stored.id} with other parameters; use a new key",
                code="idempotency_key_reused",
            )
        return stored

    def get(self, tenant_id: str, run_id: str) -> BillingRun:
        # An id that cannot exist is not looked up (one too long for a key would be a DynamoDB error).
        run = self._runs.get_run(tenant_id, run_id) if is_key_id(run_id) else None
        if run is None:
            raise NotFound(f"billing run {shown_id(run_id)} not found")
        if run.status == "running":
            # An execution that died where no step could record it (timed out, aborted) still ends the run.
            execution = self._starter.status(run_id)
            if execution in ("FAILED", "TIMED_OUT", "ABORTED"):
                run.status = "failed"
                run.errors = [*run.errors, {"error": f"execution {execution.lower()}", "message": None}]
        return run


def carrier_of(customer: CustomerProfile, period: BillingPeriod) -> str | None:
    """The subscription whose invoice of `period` carries the corrections of the customer's earlier
    invoices (late events, tax): the last one to start before the period ends, so that exactly one
    invoice carries each correction, whichever subscriptions the customer had and whenever they ended."""
    started = [
        span
        for span in customer.subscriptions
        if span.start < period.end_utc and (span.end is None or span.end > span.start)
    ]
    return max(started, key=lambda span: span.start).id if started else None


def _tax_location(location: Any) -> TaxLocation:
    return TaxLocation(location.country, location.region, location.postal_code)


def _carry(item: dict[str, Any]) -> dict[str, Any]:
    """What every step passes on: the period being closed and the invoices this item finalized so far."""
    return {"due": item["due"], "invoices": item.get("invoices", [])}


def _short_cause(cause: Any) -> str | None:
    if cause is None:
        return None
    text = str(cause)
    return text if len(text) <= 500 else text[:497] + "..."


__all__ = ["BillingRuns", "CloseSettings", "CycleCloseService", "scheduled_run_id"]
