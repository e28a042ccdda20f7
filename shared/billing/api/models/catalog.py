"""The catalog on the wire: meters, customers, plans (versions) and subscriptions.

Request models state the shape and the bounds of every field; the rules that need the catalog (a plan
names known meters, a customer's currency matches its plan, tax history only grows) stay in the domain
and the services, which answer 422 or 409 with the field. Response models are built from the domain
objects field by field, so what the API shows never depends on how the objects are stored.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BeforeValidator,
    Field,
    PlainSerializer,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    WithJsonSchema,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from billing.api.models.common import (
    CurrencyCode,
    Id,
    Instant,
    Quantity,
    RequestModel,
    ResponseModel,
    domain_rule,
)
from billing.domain.catalog import (
    CustomerProfile,
    MeterRecord,
    PlanRecord,
    SubscriptionRecord,
    TaxLocation,
    json_number,
    require_price_string,
)
from billing.domain.rating.errors import InvalidCatalog
from billing.domain.rating.meters import Aggregation
from billing.domain.rating.money import parse_decimal
from billing.domain.rating.periods import billing_timezone, check_anchor_day, format_instant
from billing.domain.rating.pricing import Charge, Graduated, Package, PerUnit, Tier, Volume

Text = Annotated[str, Field(min_length=1, max_length=256)]
PropertyName = Annotated[str, Field(min_length=1, max_length=128)]
FilterValue = Annotated[str, Field(max_length=1024)] | bool | Quantity
TaxCode = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
# Counts such as up_to and package_size are JSON numbers; a fractional one stays exact text.
JsonNumber = Annotated[
    Decimal,
    PlainSerializer(json_number, return_type=Any),
    WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "string"}]}),
]
FilterOut = str | bool | int | float


def _instant(value: datetime | None) -> str | None:
    return None if value is None else format_instant(value)


# ---- meters ------------------------------------------------------------------------------------------


class MeterIn(RequestModel):
    error_code: ClassVar[str] = "invalid_meter"

    key: Id = Field(description="The meter's key, named by plan charges")
    event_type: Id = Field(description="The event type it counts")
    aggregation: Aggregation
    value_property: PropertyName | None = Field(
        default=None, description="The property aggregated (required for all but count)"
    )
    filters: dict[PropertyName, FilterValue] | None = Field(
        default=None, max_length=20, description="Properties an event must have, with these values"
    )


class MeterOut(ResponseModel):
    key: str
    event_type: str
    aggregation: Aggregation
    value_property: str | None
    filters: dict[str, FilterOut]
    created_at: str

    @classmethod
    def of(cls, record: MeterRecord) -> MeterOut:
        meter = record.meter
        return cls(
            key=meter.key,
            event_type=meter.event_type,
            aggregation=meter.aggregation,
            value_property=meter.value_property,
            filters={name: json_number(value) for name, value in meter.filters.items()},
            created_at=format_instant(record.created_at),
        )


# ---- customers ---------------------------------------------------------------------------------------


class TaxIn(RequestModel):
    error_code: ClassVar[str] = "invalid_customer"

    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2, e.g. US")
    region: str | None = Field(default=None, pattern=r"^[A-Z0-9]{1,3}$", description="e.g. NY")
    postal_code: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9 \-]{0,15}$")
    tax_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9 .\-/]{0,63}$")
    exempt: Annotated[bool, Field(strict=True)] | None = False


class PaymentMethodIn(RequestModel):
    error_code: ClassVar[str] = "invalid_payment_method"

    token: str = Field(
        pattern=r"^[A-Za-z][A-Za-z0-9_.:\-]{2,254}$",
        description="The token your gateway issued (never card details)",
    )
    gateway: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]{0,63}$", examples=["sandbox"])


Name = Annotated[str, Field(min_length=1, max_length=256)]
Email = Annotated[str, Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
Timezone = Annotated[
    str,
    BeforeValidator(domain_rule(billing_timezone)),
    WithJsonSchema(
        {"type": "string", "maxLength": 64, "description": "An IANA time zone, e.g. America/New_York"}
    ),
]
AnchorDay = Annotated[
    int,
    BeforeValidator(domain_rule(check_anchor_day)),
    WithJsonSchema(
        {"type": "integer", "minimum": 1, "maximum": 28, "description": "Day of the month periods start on"}
    ),
]
CUSTOMER_FIELD_CODES = {"payment_method": "invalid_payment_method"}


class CustomerIn(RequestModel):
    error_code: ClassVar[str] = "invalid_customer"
    field_codes: ClassVar[dict[str, str]] = CUSTOMER_FIELD_CODES

    id: Id
    name: Name | None = None
    email: Email | None = None
    currency: CurrencyCode
    timezone: Timezone | None = Field(default=None, description="IANA time zone; default UTC")
    billing_anchor_day: AnchorDay | None = Field(default=None, description="Default 1")
    tax: TaxIn | None = None
    payment_method: PaymentMethodIn | None = None


class CustomerPatchIn(RequestModel):
    """Fields present are replaced; null clears name, email and payment_method."""

    error_code: ClassVar[str] = "invalid_customer"
    field_codes: ClassVar[dict[str, str]] = CUSTOMER_FIELD_CODES

    id: Id | None = Field(default=None, description="Must be the customer's own id, if given")
    name: Name | None = None
    email: Email | None = None
    currency: CurrencyCode | None = None
    timezone: Timezone | None = None
    billing_anchor_day: AnchorDay | None = None
    tax: TaxIn | None = Field(default=None, description="A new tax location, kept as history")
    tax_effective_at: Instant | None = Field(default=None, description="From when the new location applies")
    payment_method: PaymentMethodIn | None = None


class TaxOut(ResponseModel):
    country: str
    region: str | None
    postal_code: str | None
    tax_id: str | None
    exempt: bool

    @classmethod
    def of(cls, tax: TaxLocation) -> TaxOut:
        return cls(
            country=tax.country,
            region=tax.region,
            postal_code=tax.postal_code,
            tax_id=tax.tax_id,
            exempt=tax.exempt,
        )


class TaxChangeOut(ResponseModel):
    effective_at: str | None = Field(description="null: from the beginning")
    tax: TaxOut


class PaymentMethodOut(ResponseModel):
    token: str
    gateway: str


class SubscriptionSpanOut(ResponseModel):
    id: str
    start: str
    end: str | None


class CustomerOut(ResponseModel):
    id: str
    name: str | None
    email: str | None
    currency: str
    timezone: str
    billing_anchor_day: int
    tax: TaxOut | None = Field(description="The tax location in effect now")
    tax_history: list[TaxChangeOut]
    payment_method: PaymentMethodOut | None
    subscriptions: list[SubscriptionSpanOut]
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, profile: CustomerProfile, now: datetime) -> CustomerOut:
        tax = profile.tax_at(now)
        payment = profile.payment_method
        return cls(
            id=profile.id,
            name=profile.name,
            email=profile.email,
            currency=profile.billing.currency.code,
            timezone=profile.billing.timezone,
            billing_anchor_day=profile.billing.billing_anchor_day,
            tax=None if tax is None else TaxOut.of(tax),
            tax_history=[
                TaxChangeOut(effective_at=_instant(change.effective_at), tax=TaxOut.of(change.tax))
                for change in profile.tax_history
            ],
            payment_method=None
            if payment is None
            else PaymentMethodOut(token=payment.token, gateway=payment.gateway),
            subscriptions=[
                SubscriptionSpanOut(id=span.id, start=format_instant(span.start), end=_instant(span.end))
                for span in profile.subscriptions
            ],
            created_at=format_instant(profile.created_at),
            updated_at=format_instant(profile.updated_at),
        )


# ---- plans -------------------------------------------------------------------------------------------


def _price(value: Any, info: ValidationInfo) -> Any:
    """Prices are decimal strings (a JSON number such as 0.1 is a binary float in most clients)."""
    field = info.field_name or "price"
    try:
        require_price_string(value, field)
        parse_decimal(value, field=field)
    except InvalidCatalog as problem:
        raise PydanticCustomError(
            "domain_rule", "{message}", {"code": problem.code, "message": problem.message}
        ) from None
    return value


def _positive_quantity(value: Any, info: ValidationInfo) -> Any:
    try:
        parse_decimal(value, field=info.field_name or "quantity", allow_zero=False)
    except InvalidCatalog as problem:
        raise PydanticCustomError(
            "domain_rule", "{message}", {"code": problem.code, "message": problem.message}
        ) from None
    return value


PriceText = Annotated[
    str,
    BeforeValidator(_price),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^\d{1,38}(\.\d{1,38})?$",
            "maxLength": 77,
            "description": 'A non-negative decimal string, e.g. "0.00002"',
        }
    ),
]
UpTo = Annotated[
    Decimal,
    BeforeValidator(_positive_quantity),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0},
                {"type": "string", "pattern": r"^\d{1,38}(\.\d{1,38})?$"},
            ],
            "description": "A positive number (38 significant digits at most)",
        }
    ),
]
TIERS = Field(max_length=50, json_schema_extra={"minItems": 1})


class TierIn(RequestModel):
    error_code: ClassVar[str] = "invalid_tiers"

    up_to: UpTo | None = Field(description="The tier's upper bound (inclusive); null for the last tier")
    unit_price: PriceText
    flat_fee: PriceText | None = Field(default=None, description="Billed once per period on reaching it")


class PerUnitChargeIn(RequestModel):
    error_code: ClassVar[str] = "invalid_charge"

    meter: Id
    model: Literal["per_unit"]
    unit_price: PriceText
    tax_code: TaxCode | None = None


class PackageChargeIn(RequestModel):
    error_code: ClassVar[str] = "invalid_charge"

    meter: Id
    model: Literal["package"]
    package_size: UpTo
    package_price: PriceText
    tax_code: TaxCode | None = None


class TieredChargeIn(RequestModel):
    error_code: ClassVar[str] = "invalid_charge"

    meter: Id
    model: Literal["graduated", "volume"]
    tiers: list[TierIn] = TIERS
    tax_code: TaxCode | None = None


ChargeIn = Annotated[PerUnitChargeIn | PackageChargeIn | TieredChargeIn, Field(discriminator="model")]
CHARGE_MODELS = frozenset({"per_unit", "package", "graduated", "volume"})


def _version_is_assigned(data: Any) -> Any:
    if isinstance(data, dict) and "version" in data:
        raise PydanticCustomError(
            "domain_rule",
            "{message}",
            {
                "code": "invalid_plan",
                "message": "version is assigned by the catalog: POST /v1/plans creates version 1, "
                "POST /v1/plans/{id}/versions the next one",
            },
        )
    return data


class PlanIn(RequestModel):
    error_code: ClassVar[str] = "invalid_plan"
    field_codes: ClassVar[dict[str, str]] = {"charges[": "invalid_charge"}
    union_tags: ClassVar[frozenset[str]] = CHARGE_MODELS

    id: Id
    currency: CurrencyCode
    interval: Literal["month"] = "month"
    base_fee: PriceText = Field(default="0", description="Billed per period, prorated by seconds")
    tax_code: TaxCode | None = Field(default=None, examples=["saas"])
    minimum_commitment: PriceText | None = Field(default=None, description="Per period; shortfall billed")
    charges: list[ChargeIn] = Field(default_factory=list, max_length=50)

    _no_version = model_validator(mode="before")(_version_is_assigned)


class PlanVersionIn(RequestModel):
    """The next version of a plan: the shape of POST /v1/plans; `id` may be left out."""

    error_code: ClassVar[str] = "invalid_plan"
    field_codes: ClassVar[dict[str, str]] = {"charges[": "invalid_charge"}
    union_tags: ClassVar[frozenset[str]] = CHARGE_MODELS

    id: Id | None = None
    currency: CurrencyCode
    interval: Literal["month"] = "month"
    base_fee: PriceText = "0"
    tax_code: TaxCode | None = None
    minimum_commitment: PriceText | None = None
    charges: list[ChargeIn] = Field(default_factory=list, max_length=50)

    _no_version = model_validator(mode="before")(_version_is_assigned)


class TierOut(ResponseModel):
    up_to: JsonNumber | None
    unit_price: str
    flat_fee: str

    @classmethod
    def of(cls, tier: Tier) -> TierOut:
        return cls(
            up_to=tier.up_to, unit_price=format(tier.unit_price, "f"), flat_fee=format(tier.flat_fee, "f")
        )


class _ChargeOut(ResponseModel):
    @model_serializer(mode="wrap")
    def _without_absent_tax_code(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict) and data.get("tax_code") is None:
            data.pop("tax_code", None)  # a charge without its own tax code uses the plan's
        return data


class PerUnitChargeOut(_ChargeOut):
    meter: str
    model: Literal["per_unit"] = "per_unit"
    tax_code: str | None = None
    unit_price: str


class PackageChargeOut(_ChargeOut):
    meter: str
    model: Literal["package"] = "package"
    tax_code: str | None = None
    package_size: JsonNumber
    package_price: str


class TieredChargeOut(_ChargeOut):
    meter: str
    model: Literal["graduated", "volume"]
    tax_code: str | None = None
    tiers: list[TierOut]


ChargeOut = Annotated[PerUnitChargeOut | PackageChargeOut | TieredChargeOut, Field(discriminator="model")]


def charge_out(charge: Charge) -> PerUnitChargeOut | PackageChargeOut | TieredChargeOut:
    price = charge.price
    if isinstance(price, PerUnit):
        return PerUnitChargeOut(
            meter=charge.meter, tax_code=charge.tax_code, unit_price=format(price.unit_price, "f")
        )
    if isinstance(price, Package):
        return PackageChargeOut(
            meter=charge.meter,
            tax_code=charge.tax_code,
            package_size=price.package_size,
            package_price=format(price.package_price, "f"),
        )
    assert isinstance(price, Graduated | Volume)
    return TieredChargeOut(
        meter=charge.meter,
        model="graduated" if isinstance(price, Graduated) else "volume",
        tax_code=charge.tax_code,
        tiers=[TierOut.of(tier) for tier in price.tiers],
    )


class PlanOut(ResponseModel):
    id: str
    version: int
    currency: str
    interval: str
    base_fee: str
    minimum_commitment: str | None
    tax_code: str | None
    charges: list[ChargeOut]
    created_at: str

    @classmethod
    def of(cls, record: PlanRecord) -> PlanOut:
        plan = record.plan
        return cls(
            id=plan.id,
            version=plan.version,
            currency=plan.currency.code,
            interval=plan.interval.value,
            base_fee=format(plan.base_fee, "f"),
            minimum_commitment=None
            if plan.minimum_commitment is None
            else format(plan.minimum_commitment, "f"),
            tax_code=plan.tax_code,
            charges=[charge_out(charge) for charge in plan.charges],
            created_at=format_instant(record.created_at),
        )


# ---- subscriptions -----------------------------------------------------------------------------------


PlanVersion = Annotated[int, Field(strict=True, ge=1, le=999_999)]


class SubscriptionIn(RequestModel):
    error_code: ClassVar[str] = "invalid_subscription"

    id: Id
    customer_id: Id
    plan_id: Id
    plan_version: PlanVersion | None = Field(default=None, description="Default: the latest")
    start: Instant | None = Field(default=None, description="Default: now")


class ChangePlanIn(RequestModel):
    error_code: ClassVar[str] = "invalid_subscription"

    plan_id: Id
    plan_version: PlanVersion | None = None
    effective_at: Instant | None = Field(default=None, description="Default: now")


class CancelIn(RequestModel):
    error_code: ClassVar[str] = "invalid_subscription"

    at: Instant | None = Field(default=None, description="Default: now")


class SegmentOut(ResponseModel):
    plan_id: str
    plan_version: int
    start: str
    end: str | None


class SubscriptionOut(ResponseModel):
    id: str
    customer_id: str
    plan_id: str | None
    plan_version: int | None
    status: Literal["active", "cancelled"]
    start: str
    end: str | None
    segments: list[SegmentOut]
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, record: SubscriptionRecord) -> SubscriptionOut:
        current = record.segments[-1] if record.segments else None
        return cls(
            id=record.id,
            customer_id=record.customer_id,
            plan_id=None if current is None else current.plan_id,
            plan_version=None if current is None else current.plan_version,
            status="active" if record.end is None else "cancelled",
            start=format_instant(record.start),
            end=_instant(record.end),
            segments=[
                SegmentOut(
                    plan_id=segment.plan_id,
                    plan_version=segment.plan_version,
                    start=format_instant(segment.start),
                    end=_instant(segment.end),
                )
                for segment in record.segments
            ],
            created_at=format_instant(record.created_at),
            updated_at=format_instant(record.updated_at),
        )
