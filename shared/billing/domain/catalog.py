"""Catalog objects the API stores beside the rating domain, and the checks every catalog request gets.

Customer profiles (personal data, tax locations over time, payment tokens, subscription spans),
subscription records (plan versions by reference over time), catalog ids, and the request-wide rules:
no card number anywhere, prices as decimal strings. Pure: instants are passed in, never read.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from billing.domain.errors import Conflict, InvalidRequest
from billing.domain.ids import id_problem
from billing.domain.pii import looks_like_card_number, shown_name
from billing.domain.rating.customers import Customer
from billing.domain.rating.errors import InvalidCatalog
from billing.domain.rating.meters import Meter
from billing.domain.rating.periods import format_instant, utc
from billing.domain.rating.plans import Plan, Subscription, SubscriptionSegment

# Patterns end in \Z, not $: `$` also matches before a trailing newline ("US\n" would pass).
DEFAULT_TIMEZONE = "UTC"
DEFAULT_ANCHOR_DAY = 1
MAX_NAME_LENGTH = 256
MAX_EMAIL_LENGTH = 254

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+\Z")
_COUNTRY = re.compile(r"^[A-Z]{2}\Z")
# The subdivision part of ISO 3166-2 ("NY" of US-NY, "ON" of CA-ON), as the tax engine reads it.
_REGION = re.compile(r"^[A-Z0-9]{1,3}\Z")
_POSTAL_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 \-]{0,15}\Z")
_TAX_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 .\-/]{0,63}\Z")
# A gateway token starts with a letter ("tok_...", "pm_...", "card_..."): a bare digit run is a PAN.
_TOKEN = re.compile(r"^[A-Za-z][A-Za-z0-9_.:\-]{2,254}\Z")
_GATEWAY = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}\Z")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")

CUSTOMER_FIELDS = (
    "id", "name", "email", "currency", "timezone", "billing_anchor_day", "tax", "payment_method"
)  # fmt: skip
CUSTOMER_PATCH_FIELDS = (
    "name", "email", "currency", "timezone", "billing_anchor_day", "tax", "tax_effective_at",
    "payment_method",
)  # fmt: skip
TAX_FIELDS = ("country", "region", "postal_code", "tax_id", "exempt")
PAYMENT_FIELDS = ("token", "gateway")
# Money fields of a plan body: the API takes them as decimal strings only (a JSON number such as 0.1
# is a binary float in most clients before it ever reaches us).
PLAN_PRICE_FIELDS = ("base_fee", "minimum_commitment")
CHARGE_PRICE_FIELDS = ("unit_price", "package_price")
TIER_PRICE_FIELDS = ("unit_price", "flat_fee")


# ---- request-wide checks -----------------------------------------------------------------------------


def reject_card_numbers(value: Any) -> None:
    """Refuse a request holding a card number (a Luhn-valid 13-19 digit run) in any key or value.

    The error names where it was, never what it was; the caller must not log the request either.
    Iterative, so that however deep a parsed body nests, this cannot overflow the stack.
    """
    pending: list[tuple[Any, str]] = [(value, "")]
    while pending:
        item, path = pending.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if looks_like_card_number(key):
                    raise _card_found(path or "(request)")
                name = shown_name(str(key))  # the path is quoted back: no personal data in it
                pending.append((child, f"{path}.{name}" if path else name))
        elif isinstance(item, list):
            pending.extend((child, f"{path}[{index}]") for index, child in enumerate(item))
        elif looks_like_card_number(item):
            raise _card_found(path or "(request)")


def _card_found(path: str) -> InvalidRequest:
    return InvalidRequest(
        f"a card number was found in the request ({path}); card numbers are never accepted or stored: "
        "send the payment token your gateway issued instead",
        code="card_number_rejected",
        details=[{"field": path}],
    )


def require_price_strings(plan: Any) -> None:
    """Money in a plan body must be decimal strings ("0.00002"), not JSON numbers."""
    if not isinstance(plan, dict):
        return
    for name in PLAN_PRICE_FIELDS:
        require_price_string(plan.get(name), name)
    charges = plan.get("charges")
    if not isinstance(charges, list):
        return
    for index, charge in enumerate(charges):
        if not isinstance(charge, dict):
            continue
        for name in CHARGE_PRICE_FIELDS:
            require_price_string(charge.get(name), f"charges[{index}].{name}")
        tiers = charge.get("tiers")
        if isinstance(tiers, list):
            for position, tier in enumerate(tiers):
                if isinstance(tier, dict):
                    for name in TIER_PRICE_FIELDS:
                        require_price_string(tier.get(name), f"charges[{index}].tiers[{position}].{name}")


def require_price_string(value: Any, path: str) -> None:
    if value is None or isinstance(value, str):
        return
    raise InvalidCatalog(
        f'{path}: prices are decimal strings such as "0.00002", not JSON numbers or other types',
        code="invalid_amount",
        field=path,
    )


def catalog_id(value: Any, field_name: str, *, code: str) -> str:
    """An id of the catalog (meter key, customer, plan, subscription), by the rule of `billing.domain.ids`."""
    problem = id_problem(value)
    if problem is not None:
        raise InvalidCatalog(f"{field_name} {problem}", code=code, field=field_name)
    return str(value)


def parse_instant(value: Any, field_name: str) -> datetime:
    """An RFC 3339 date-time with an offset (or an aware datetime), as an aware UTC datetime (fractions
    beyond µs truncated)."""
    if isinstance(value, datetime) and value.utcoffset() is not None:
        return utc(value)
    if isinstance(value, str) and _RFC3339.match(value):
        text = value.replace("z", "Z").replace("t", "T").replace("Z", "+00:00")
        head, _, rest = text.partition(".")
        if rest:  # fromisoformat takes at most 6 fraction digits
            digits = re.match(r"\d+", rest)
            assert digits is not None
            text = f"{head}.{digits.group()[:6].ljust(6, '0')}{rest[digits.end() :]}"
        try:
            return utc(datetime.fromisoformat(text))
        except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 moved out of range into UTC
            pass
    raise InvalidCatalog(
        f"{field_name} must be an RFC 3339 date-time with an offset, e.g. 2026-03-01T00:00:00Z",
        code="invalid_timestamp",
        field=field_name,
    )


def reject_unknown_fields(data: Mapping[str, Any], allowed: tuple[str, ...], what: str, code: str) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise InvalidCatalog(
            f"unknown field(s) in {what}: {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}",
            code=code,
            field=unknown[0],
        )


def require_object(value: Any, what: str, code: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidCatalog(f"{what} must be a JSON object", code=code, field=what)
    return value


def json_number(value: Any) -> Any:
    """A stored number for a JSON response: ints stay ints, a Decimal becomes its exact number text.

    `json.dumps` cannot write a Decimal as a number; a float with 15 or fewer significant digits writes
    back the same shortest text (and `canonical_json.loads` reads it back as the same Decimal), so such
    values are handed over as floats and anything longer as a string.
    """
    if isinstance(value, Decimal):
        if value == value.to_integral_value() and abs(value.adjusted()) < 16:
            return int(value)
        as_float = float(value)
        if Decimal(repr(as_float)) == value:
            return as_float
        return format(value, "f")
    return value


# ---- customers ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaxLocation:
    """Where a customer is taxed: ISO 3166-1 alpha-2 country, region, postal code, tax id, exemption."""

    country: str
    region: str | None = None
    postal_code: str | None = None
    tax_id: str | None = field(default=None, repr=False)
    exempt: bool = False

    @classmethod
    def from_json(cls, data: Any) -> TaxLocation:
        data = require_object(data, "tax", "invalid_customer")
        reject_unknown_fields(data, TAX_FIELDS, "tax", "invalid_customer")
        country = data.get("country")
        if not isinstance(country, str) or not _COUNTRY.match(country):
            raise InvalidCatalog(
                "tax.country must be an ISO 3166-1 alpha-2 code in upper case, e.g. US, DE",
                code="invalid_customer",
                field="tax.country",
            )
        exempt = data.get("exempt", False)
        if exempt is None:
            exempt = False
        if not isinstance(exempt, bool):
            raise InvalidCatalog(
                "tax.exempt must be true or false", code="invalid_customer", field="tax.exempt"
            )
        return cls(
            country=country,
            region=_optional_text(
                data.get("region"),
                _REGION,
                "tax.region",
                "a state or province code in upper case, such as NY",
            ),
            postal_code=_optional_text(
                data.get("postal_code"), _POSTAL_CODE, "tax.postal_code", "a postal code such as 10001"
            ),
            tax_id=_optional_text(data.get("tax_id"), _TAX_ID, "tax.tax_id", "a tax id such as DE123456789"),
            exempt=exempt,
        )


@dataclass(frozen=True)
class TaxLocationChange:
    """A tax location in effect from `effective_at` (None: from the beginning) until the next change."""

    effective_at: datetime | None
    tax: TaxLocation


@dataclass(frozen=True)
class PaymentMethod:
    """A reference to a payment instrument held by a gateway; never the instrument itself."""

    token: str = field(repr=False)
    gateway: str

    @classmethod
    def from_json(cls, data: Any) -> PaymentMethod:
        data = require_object(data, "payment_method", "invalid_customer")
        reject_unknown_fields(data, PAYMENT_FIELDS, "payment_method", "invalid_customer")
        token, gateway = data.get("token"), data.get("gateway")
        if not isinstance(token, str) or not _TOKEN.match(token):
            raise InvalidCatalog(
                "payment_method.token must be your gateway's token (3 to 255 characters starting with a "
                'letter, such as "tok_1N3..."), never card details',
                code="invalid_payment_method",
                field="payment_method.token",
            )
        if not isinstance(gateway, str) or not _GATEWAY.match(gateway):
            raise InvalidCatalog(
                'payment_method.gateway must name a gateway in lower case, such as "sandbox"',
                code="invalid_payment_method",
                field="payment_method.gateway",
            )
        return cls(token, gateway)


@dataclass(frozen=True)
class SubscriptionSpan:
    """When one of the customer's subscriptions runs: [start, end), end None while it runs on."""

    id: str
    start: datetime
    end: datetime | None = None

    def covers(self, instant: datetime) -> bool:
        return self.start <= utc(instant) and (self.end is None or utc(instant) < self.end)

    def overlaps(self, start: datetime, end: datetime | None) -> bool:
        """Whether [start, end) and this span share an instant (a span cancelled as it started has none)."""
        if self.end is not None and self.end <= self.start:
            return False
        return (end is None or self.start < end) and (self.end is None or start < self.end)


@dataclass(frozen=True)
class CustomerProfile:
    """A customer as the catalog keeps it: rating's view plus personal data, tax history, payment token.

    `name`, `email`, tax ids and tokens are kept out of `repr` so that no log line can carry them.
    """

    billing: Customer
    created_at: datetime
    updated_at: datetime
    name: str | None = field(default=None, repr=False)
    email: str | None = field(default=None, repr=False)
    tax_history: tuple[TaxLocationChange, ...] = field(default=(), repr=False)
    payment_method: PaymentMethod | None = field(default=None, repr=False)
    subscriptions: tuple[SubscriptionSpan, ...] = ()
    revision: int = 0

    @property
    def id(self) -> str:
        return self.billing.id

    def tax_at(self, instant: datetime) -> TaxLocation | None:
        """The tax location in effect at an instant (the last change at or before it)."""
        current: TaxLocation | None = None
        for change in self.tax_history:
            if change.effective_at is None or change.effective_at <= utc(instant):
                current = change.tax
        return current

    def subscription_at(self, instant: datetime) -> SubscriptionSpan | None:
        return next((span for span in self.subscriptions if span.covers(instant)), None)

    def subscription_in(self, start: datetime, end: datetime, at: datetime) -> SubscriptionSpan | None:
        """The subscription billed for [start, end): the one running at `at`, else the last that overlaps."""
        running = self.subscription_at(at)
        if running is not None:
            return running
        overlapping = [span for span in self.subscriptions if span.overlaps(start, end)]
        return max(overlapping, key=lambda span: span.start) if overlapping else None

    def with_subscription(self, span: SubscriptionSpan) -> CustomerProfile:
        """Record a new subscription; one at a time: it must not overlap an earlier one."""
        for existing in self.subscriptions:
            if existing.overlaps(span.start, span.end):
                until = "runs on" if existing.end is None else f"runs until {format_instant(existing.end)}"
                raise Conflict(
                    f"customer {self.id} already has subscription {existing.id}, which {until}; a customer "
                    "has one subscription at a time: cancel it, or start the new one when it ends",
                    code="active_subscription_exists",
                )
        return replace(self, subscriptions=(*self.subscriptions, span))

    def with_subscription_end(self, subscription_id: str, end: datetime) -> CustomerProfile:
        spans = tuple(
            replace(span, end=max(span.start, end)) if span.id == subscription_id else span
            for span in self.subscriptions
        )
        return replace(self, subscriptions=spans)


def new_customer(data: Any, now: datetime) -> CustomerProfile:
    """A customer from the body of POST /v1/customers (id and currency required)."""
    data = require_object(data, "the customer", "invalid_customer")
    reject_unknown_fields(data, CUSTOMER_FIELDS, "customer", "invalid_customer")
    for name in ("id", "currency"):
        if data.get(name) is None:
            raise InvalidCatalog(f"a customer needs {name}", code="invalid_customer", field=name)
    customer_id = catalog_id(data["id"], "id", code="invalid_customer")
    timezone = data["timezone"] if data.get("timezone") is not None else DEFAULT_TIMEZONE
    anchor = data["billing_anchor_day"] if data.get("billing_anchor_day") is not None else DEFAULT_ANCHOR_DAY
    tax = data.get("tax")
    payment = data.get("payment_method")
    return CustomerProfile(
        billing=Customer(customer_id, data["currency"], timezone, anchor),
        created_at=utc(now),
        updated_at=utc(now),
        name=_name(data.get("name")),
        email=_email(data.get("email")),
        tax_history=() if tax is None else (TaxLocationChange(None, TaxLocation.from_json(tax)),),
        payment_method=None if payment is None else PaymentMethod.from_json(payment),
    )


def patch_customer(profile: CustomerProfile, data: Any, now: datetime) -> CustomerProfile:
    """Apply PATCH /v1/customers/{id}: fields present are replaced, `null` clears name/email/payment.

    A tax location change is appended to the history, in effect from `tax_effective_at` (default: now),
    which must not precede the latest change: tax history is never rewritten. Currency, timezone and
    anchor day define how existing subscriptions are billed, so they change only while there is none.
    """
    data = require_object(data, "the customer", "invalid_customer")
    if "id" in data and data["id"] != profile.id:
        raise InvalidCatalog("a customer's id cannot change", code="invalid_customer", field="id")
    reject_unknown_fields(
        {k: v for k, v in data.items() if k != "id"}, CUSTOMER_PATCH_FIELDS, "customer", "invalid_customer"
    )
    changed = profile
    if "name" in data:
        changed = replace(changed, name=_name(data["name"]))
    if "email" in data:
        changed = replace(changed, email=_email(data["email"]))
    if "payment_method" in data:
        payment = data["payment_method"]
        changed = replace(
            changed, payment_method=None if payment is None else PaymentMethod.from_json(payment)
        )

    billing = profile.billing
    cycle_fields = {
        "currency": billing.currency.code,
        "timezone": billing.timezone,
        "billing_anchor_day": billing.billing_anchor_day,
    }
    requested = {name: data[name] for name in cycle_fields if name in data}
    for name, value in requested.items():
        if value is None:
            raise InvalidCatalog(f"{name} cannot be null", code="invalid_customer", field=name)
    new_billing = Customer(
        billing.id,
        requested.get("currency", billing.currency),
        requested.get("timezone", billing.timezone),
        requested.get("billing_anchor_day", billing.billing_anchor_day),
    )
    if new_billing != billing:
        if profile.subscriptions:
            moved = [
                name for name in cycle_fields if name in requested and requested[name] != cycle_fields[name]
            ]
            raise Conflict(
                f"{', '.join(moved)} cannot change once the customer has a subscription: its periods and "
                "prices depend on them; create a new customer instead",
                code="customer_has_subscription",
            )
        changed = replace(changed, billing=new_billing)

    if "tax" in data or "tax_effective_at" in data:
        if data.get("tax") is None:
            raise InvalidCatalog(
                "tax must be a tax location object (it can be replaced, not removed)",
                code="invalid_customer",
                field="tax",
            )
        location = TaxLocation.from_json(data["tax"])
        effective_raw = data.get("tax_effective_at")
        effective_at = utc(now) if effective_raw is None else parse_instant(effective_raw, "tax_effective_at")
        changed = replace(changed, tax_history=_append_tax(profile.tax_history, location, effective_at))

    if changed == profile:
        return profile
    return replace(changed, updated_at=utc(now))


def _append_tax(
    history: tuple[TaxLocationChange, ...], location: TaxLocation, effective_at: datetime
) -> tuple[TaxLocationChange, ...]:
    if not history:
        return (TaxLocationChange(None, location),)
    latest = history[-1]
    if latest.tax == location:
        return history  # the same location again (a retried PATCH): nothing changes
    if latest.effective_at is not None and effective_at <= latest.effective_at:
        raise InvalidCatalog(
            f"tax_effective_at must be after the latest tax change ({format_instant(latest.effective_at)}): "
            "tax history is only ever appended to",
            code="invalid_customer",
            field="tax_effective_at",
        )
    return (*history, TaxLocationChange(effective_at, location))


def _name(value: Any) -> str | None:
    if value is None:
        return None
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= MAX_NAME_LENGTH
        or value != value.strip()
        or any(unicodedata.category(ch)[0] == "C" for ch in value)
    ):
        raise InvalidCatalog(
            f"name must be 1 to {MAX_NAME_LENGTH} characters of text without surrounding spaces",
            code="invalid_customer",
            field="name",
        )
    return value


def _email(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_EMAIL_LENGTH or not _EMAIL.match(value):
        raise InvalidCatalog("email must be an e-mail address", code="invalid_customer", field="email")
    return value


def _optional_text(value: Any, pattern: re.Pattern[str], field_name: str, example: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not pattern.match(value):
        raise InvalidCatalog(f"{field_name} must be {example}", code="invalid_customer", field=field_name)
    return value


# ---- meters and plans as stored ------------------------------------------------------------------------


@dataclass(frozen=True)
class MeterRecord:
    meter: Meter
    created_at: datetime


@dataclass(frozen=True)
class PlanRecord:
    plan: Plan
    created_at: datetime


# ---- subscriptions -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentRecord:
    """One plan version over [start, end) of a subscription, by reference (plans are immutable)."""

    plan_id: str
    plan_version: int
    start: datetime
    end: datetime | None = None


@dataclass(frozen=True)
class SubscriptionRecord:
    """A subscription as stored: its segments by plan reference, with a revision for safe updates."""

    id: str
    customer_id: str
    start: datetime
    segments: tuple[SegmentRecord, ...]
    created_at: datetime
    updated_at: datetime
    revision: int = 0

    @property
    def end(self) -> datetime | None:
        """When it ends (cancelled), or None while it runs on."""
        if not self.segments:
            return self.start
        return self.segments[-1].end

    @property
    def status(self) -> str:
        return "active" if self.end is None else "cancelled"

    @property
    def span(self) -> SubscriptionSpan:
        return SubscriptionSpan(self.id, self.start, self.end)

    def to_domain(self, plan_of: Callable[[str, int], Plan]) -> Subscription:
        segments = tuple(
            SubscriptionSegment(plan_of(segment.plan_id, segment.plan_version), segment.start, segment.end)
            for segment in self.segments
        )
        return Subscription(self.id, self.customer_id, segments)

    def with_segments(self, subscription: Subscription, now: datetime) -> SubscriptionRecord:
        segments = tuple(
            SegmentRecord(segment.plan.id, segment.plan.version, segment.start, segment.end)
            for segment in subscription.segments
        )
        return replace(self, segments=segments, updated_at=utc(now))
