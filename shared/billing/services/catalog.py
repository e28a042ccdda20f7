"""Catalog use cases of a tenant: meters, customers, versioned plans and subscriptions, and their port.

Every object is scoped by tenant: another tenant's id is simply not found. Plans are immutable
versions; a subscription pins the plan version of each of its segments, so publishing a new version
never changes what an existing subscription is billed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from billing.domain.catalog import (
    CustomerProfile,
    MeterRecord,
    PlanRecord,
    SegmentRecord,
    SubscriptionRecord,
    catalog_id,
    new_customer,
    parse_instant,
    patch_customer,
    reject_unknown_fields,
    require_price_strings,
)
from billing.domain.errors import Conflict, NotFound, StaleRevision
from billing.domain.ids import is_valid_id, shown_id
from billing.domain.pages import Page
from billing.domain.rating.errors import InvalidCatalog, RatingFailed
from billing.domain.rating.meters import Meter
from billing.domain.rating.periods import format_instant, utc
from billing.domain.rating.plans import Plan

# Optimistic updates re-read and retry this often when another request changed the item meanwhile.
UPDATE_ATTEMPTS = 3

SUBSCRIPTION_FIELDS = ("id", "customer_id", "plan_id", "plan_version", "start")
CHANGE_PLAN_FIELDS = ("plan_id", "plan_version", "effective_at")
CANCEL_FIELDS = ("at",)


# ---- the port ----------------------------------------------------------------------------------------


class CatalogStore(Protocol):
    """Persistence of a tenant's catalog (DynamoCatalogStore implements it on the billing table).

    Cursors are opaque strings made by the store; a cursor it did not make raises MalformedRequest.
    Objects carry the `revision` they were read at; `save_*` writes only if it is still current.
    """

    def add_meter(self, tenant_id: str, record: MeterRecord) -> None:
        """Raises Conflict (meter_exists)."""

    def get_meter(self, tenant_id: str, key: str) -> MeterRecord | None: ...

    def list_meters(self, tenant_id: str, limit: int, cursor: str | None) -> Page[MeterRecord]: ...

    def all_meters(self, tenant_id: str) -> list[Meter]: ...

    def add_customer(self, tenant_id: str, profile: CustomerProfile) -> None:
        """Raises Conflict (customer_exists)."""

    def get_customer(self, tenant_id: str, customer_id: str) -> CustomerProfile | None: ...

    def list_customers(self, tenant_id: str, limit: int, cursor: str | None) -> Page[CustomerProfile]: ...

    def save_customer(self, tenant_id: str, profile: CustomerProfile) -> None:
        """Raises StaleRevision."""

    def add_plan(self, tenant_id: str, record: PlanRecord) -> None:
        """Version 1 raises Conflict (plan_exists); version n raises StaleRevision unless n-1 is latest."""

    def get_plan(self, tenant_id: str, plan_id: str, version: int | None = None) -> PlanRecord | None:
        """The given version, or the latest when version is None."""

    def list_plans(self, tenant_id: str, limit: int, cursor: str | None) -> Page[PlanRecord]: ...

    def add_subscription(
        self, tenant_id: str, subscription: SubscriptionRecord, customer: CustomerProfile
    ) -> None:
        """Store a new subscription and its customer's new span together.

        Raises Conflict (subscription_exists) or StaleRevision (the customer changed meanwhile).
        """

    def get_subscription(self, tenant_id: str, subscription_id: str) -> SubscriptionRecord | None: ...

    def save_subscription(
        self, tenant_id: str, subscription: SubscriptionRecord, customer: CustomerProfile | None = None
    ) -> None:
        """Write the subscription (and the customer, when given) together. Raises StaleRevision."""


# ---- the use cases -----------------------------------------------------------------------------------


class CatalogService:
    def __init__(self, store: CatalogStore) -> None:
        self._store = store

    # meters

    def create_meter(self, tenant_id: str, data: dict[str, Any], now: datetime) -> MeterRecord:
        if data.get("key") is not None:
            catalog_id(data["key"], "key", code="invalid_meter")
        record = MeterRecord(Meter.from_json(data), utc(now))
        self._store.add_meter(tenant_id, record)
        return record

    def get_meter(self, tenant_id: str, key: str) -> MeterRecord:
        record = self._store.get_meter(tenant_id, key) if is_valid_id(key) else None
        if record is None:
            raise NotFound(f"meter {shown_id(key)} not found", code="meter_not_found")
        return record

    def list_meters(self, tenant_id: str, limit: int, cursor: str | None) -> Page[MeterRecord]:
        return self._store.list_meters(tenant_id, limit, cursor)

    # customers

    def create_customer(self, tenant_id: str, data: dict[str, Any], now: datetime) -> CustomerProfile:
        profile = new_customer(data, now)
        self._store.add_customer(tenant_id, profile)
        return profile

    def get_customer(self, tenant_id: str, customer_id: str) -> CustomerProfile:
        profile = self._store.get_customer(tenant_id, customer_id) if is_valid_id(customer_id) else None
        if profile is None:
            raise NotFound(f"customer {shown_id(customer_id)} not found", code="customer_not_found")
        return profile

    def update_customer(
        self, tenant_id: str, customer_id: str, data: dict[str, Any], now: datetime
    ) -> CustomerProfile:
        for _ in range(UPDATE_ATTEMPTS):
            profile = self.get_customer(tenant_id, customer_id)
            changed = patch_customer(profile, data, now)
            if changed is profile:
                return profile
            try:
                self._store.save_customer(tenant_id, changed)
            except StaleRevision:
                continue
            return changed
        raise _busy(f"customer {shown_id(customer_id)}")

    def list_customers(self, tenant_id: str, limit: int, cursor: str | None) -> Page[CustomerProfile]:
        return self._store.list_customers(tenant_id, limit, cursor)

    # plans

    def create_plan(self, tenant_id: str, data: dict[str, Any], now: datetime) -> PlanRecord:
        plan = self._read_plan(tenant_id, data, version=1)
        record = PlanRecord(plan, utc(now))
        self._store.add_plan(tenant_id, record)
        return record

    def create_plan_version(
        self, tenant_id: str, plan_id: str, data: dict[str, Any], now: datetime
    ) -> PlanRecord:
        """Publish version n+1 of a plan (the body has the shape of POST /v1/plans; its id is optional)."""
        latest = self.get_plan(tenant_id, plan_id)
        if data.get("id", plan_id) != plan_id:
            raise InvalidCatalog(
                f"the body's id {str(data['id'])[:128]!r} is not the plan of the URL ({shown_id(plan_id)})",
                code="invalid_plan",
                field="id",
            )
        plan = self._read_plan(tenant_id, {**data, "id": plan_id}, version=latest.plan.version + 1)
        if plan.currency != latest.plan.currency:
            raise InvalidCatalog(
                f"plan {plan_id} is priced in {latest.plan.currency}; a new version cannot change the "
                "currency (subscriptions move between versions): create another plan",
                code="invalid_plan",
                field="currency",
            )
        record = PlanRecord(plan, utc(now))
        try:
            self._store.add_plan(tenant_id, record)
        except StaleRevision:
            raise Conflict(
                f"another version of plan {shown_id(plan_id)} was published at the same time; read it and "
                "retry",
                code="plan_version_conflict",
            ) from None
        return record

    def get_plan(self, tenant_id: str, plan_id: str, version: int | None = None) -> PlanRecord:
        record = self._store.get_plan(tenant_id, plan_id, version) if is_valid_id(plan_id) else None
        if record is None:
            which = f"plan {shown_id(plan_id)}" + ("" if version is None else f" version {version}")
            raise NotFound(f"{which} not found", code="plan_not_found")
        return record

    def list_plans(self, tenant_id: str, limit: int, cursor: str | None) -> Page[PlanRecord]:
        return self._store.list_plans(tenant_id, limit, cursor)

    def _read_plan(self, tenant_id: str, data: dict[str, Any], *, version: int) -> Plan:
        if "version" in data:
            raise InvalidCatalog(
                "version is assigned by the catalog: POST /v1/plans creates version 1, "
                "POST /v1/plans/{id}/versions the next one",
                code="invalid_plan",
                field="version",
            )
        if data.get("id") is not None:
            catalog_id(data["id"], "id", code="invalid_plan")
        require_price_strings(data)
        plan = Plan.from_json(data, version=version)
        plan.check_meters(meter.key for meter in self._store.all_meters(tenant_id))
        return plan

    # subscriptions

    def create_subscription(self, tenant_id: str, data: dict[str, Any], now: datetime) -> SubscriptionRecord:
        reject_unknown_fields(data, SUBSCRIPTION_FIELDS, "subscription", "invalid_subscription")
        for name in ("id", "customer_id", "plan_id"):
            if data.get(name) is None:
                raise InvalidCatalog(f"a subscription needs {name}", code="invalid_subscription", field=name)
        subscription_id = catalog_id(data["id"], "id", code="invalid_subscription")
        customer_id = catalog_id(data["customer_id"], "customer_id", code="invalid_subscription")
        start = utc(now) if data.get("start") is None else parse_instant(data["start"], "start")
        plan = self._referenced_plan(tenant_id, data)
        if self._store.get_subscription(tenant_id, subscription_id) is not None:
            # Checked first so that a retried create answers "exists"; the conditional write still decides.
            raise Conflict(
                f"subscription {shown_id(subscription_id)} already exists", code="subscription_exists"
            )
        for _ in range(UPDATE_ATTEMPTS):
            customer = self._store.get_customer(tenant_id, customer_id)
            if customer is None:
                raise InvalidCatalog(
                    f"customer {shown_id(customer_id)} does not exist; create it first (POST /v1/customers)",
                    code="unknown_customer",
                    field="customer_id",
                )
            if plan.currency != customer.billing.currency:
                raise InvalidCatalog(
                    f"plan {plan.id} is priced in {plan.currency}, customer {customer_id} is billed in "
                    f"{customer.billing.currency}: they must be the same",
                    code="currency_mismatch",
                    field="plan_id",
                )
            record = SubscriptionRecord(
                id=subscription_id,
                customer_id=customer_id,
                start=start,
                segments=(SegmentRecord(plan.id, plan.version, start),),
                created_at=utc(now),
                updated_at=utc(now),
            )
            updated_customer = customer.with_subscription(record.span)
            try:
                self._store.add_subscription(tenant_id, record, updated_customer)
            except StaleRevision:
                continue
            return record
        raise _busy(f"customer {shown_id(customer_id)}")

    def get_subscription(self, tenant_id: str, subscription_id: str) -> SubscriptionRecord:
        record = (
            self._store.get_subscription(tenant_id, subscription_id) if is_valid_id(subscription_id) else None
        )
        if record is None:
            raise NotFound(
                f"subscription {shown_id(subscription_id)} not found", code="subscription_not_found"
            )
        return record

    def change_plan(
        self, tenant_id: str, subscription_id: str, data: dict[str, Any], now: datetime
    ) -> SubscriptionRecord:
        """Move a subscription to another plan (or plan version) from `effective_at` (default: now) on."""
        reject_unknown_fields(data, CHANGE_PLAN_FIELDS, "plan change", "invalid_subscription")
        if data.get("plan_id") is None:
            raise InvalidCatalog("a plan change needs plan_id", code="invalid_subscription", field="plan_id")
        at = (
            utc(now)
            if data.get("effective_at") is None
            else parse_instant(data["effective_at"], "effective_at")
        )
        self.get_subscription(tenant_id, subscription_id)  # 404 before anything about the body's plan
        plan = self._referenced_plan(tenant_id, data)
        for _ in range(UPDATE_ATTEMPTS):
            record = self._running(tenant_id, subscription_id, "change its plan")
            current = record.segments[-1]
            if (current.plan_id, current.plan_version) == (plan.id, plan.version):
                raise Conflict(
                    f"subscription {subscription_id} is already on {plan.id} v{plan.version}",
                    code="plan_unchanged",
                )
            changed = record.to_domain(self._plan_loader(tenant_id)).change_plan(plan, at)
            try:
                self._store.save_subscription(tenant_id, record.with_segments(changed, now))
            except StaleRevision:
                continue
            return self.get_subscription(tenant_id, subscription_id)
        raise _busy(f"subscription {shown_id(subscription_id)}")

    def cancel_subscription(
        self, tenant_id: str, subscription_id: str, data: dict[str, Any], now: datetime
    ) -> SubscriptionRecord:
        """End a subscription at `at` (default: now): base fee and usage stop there."""
        reject_unknown_fields(data, CANCEL_FIELDS, "cancellation", "invalid_subscription")
        at = utc(now) if data.get("at") is None else parse_instant(data["at"], "at")
        for _ in range(UPDATE_ATTEMPTS):
            record = self._running(tenant_id, subscription_id, "cancel it")
            changed = record.to_domain(self._plan_loader(tenant_id)).cancel(at)
            customer = self._store.get_customer(tenant_id, record.customer_id)
            if customer is None:  # pragma: no cover - customers are never deleted
                raise RatingFailed(
                    f"customer {record.customer_id} of {subscription_id} is missing", code="invalid_segments"
                )
            try:
                self._store.save_subscription(
                    tenant_id,
                    record.with_segments(changed, now),
                    customer.with_subscription_end(subscription_id, at),
                )
            except StaleRevision:
                continue
            return self.get_subscription(tenant_id, subscription_id)
        raise _busy(f"subscription {shown_id(subscription_id)}")

    def _running(self, tenant_id: str, subscription_id: str, action: str) -> SubscriptionRecord:
        record = self.get_subscription(tenant_id, subscription_id)
        if record.end is not None:
            raise Conflict(
                f"cannot {action}: subscription {subscription_id} is cancelled "
                f"(it ends at {format_instant(record.end)})",
                code="subscription_cancelled",
            )
        return record

    def _referenced_plan(self, tenant_id: str, data: dict[str, Any]) -> Plan:
        plan_id = catalog_id(data["plan_id"], "plan_id", code="invalid_subscription")
        version = data.get("plan_version")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
            raise InvalidCatalog(
                "plan_version must be a positive integer", code="invalid_subscription", field="plan_version"
            )
        record = self._store.get_plan(tenant_id, plan_id, version)
        if record is None:
            which = f"plan {shown_id(plan_id)}" + ("" if version is None else f" version {version}")
            raise InvalidCatalog(
                f"{which} does not exist; create it first (POST /v1/plans)",
                code="unknown_plan",
                field="plan_id",
            )
        return record.plan

    def _plan_loader(self, tenant_id: str) -> Callable[[str, int], Plan]:
        return plan_loader(self._store, tenant_id)


class PlanSource(Protocol):
    def get_plan(self, tenant_id: str, plan_id: str, version: int | None = None) -> PlanRecord | None: ...


def plan_loader(store: PlanSource, tenant_id: str) -> Callable[[str, int], Plan]:
    """Plan versions by (id, version), each read once; a missing one is stored data that cannot be rated."""
    cache: dict[tuple[str, int], Plan] = {}

    def plan_of(plan_id: str, version: int) -> Plan:
        key = (plan_id, version)
        if key not in cache:
            record = store.get_plan(tenant_id, plan_id, version)
            if record is None:
                raise RatingFailed(f"plan {plan_id} v{version} is missing", code="invalid_segments")
            cache[key] = record.plan
        return cache[key]

    return plan_of


def _busy(what: str) -> Conflict:
    return Conflict(f"{what} was changed by other requests at the same time; retry", code="concurrent_update")
