"""Charges and their pricing models (per_unit, graduated, volume, package): quantity -> unrounded amount.

`rate` is exact (no rounding at all): the invoice rounds each line once, in `money.to_minor`.

Tier semantics, shared by graduated and volume: tiers are consecutive ranges (from, up_to], the first
from 0, the last open (up_to null). A quantity q is *in* the tier with from < q <= up_to, so a boundary
value belongs to the lower tier (with up_to 10, the 10th seat is still in tier 1). A zero quantity
enters no tier: it costs nothing, not even a flat fee, and has no breakdown rows.
- graduated: each tier prices the units inside it; a tier's flat_fee is added once when the tier is
  entered (the quantity exceeds its `from`).
- volume: the whole quantity at the unit price of the one tier the total falls into, plus that tier's
  flat_fee.
- package: the quantity rounded UP to whole packages of `package_size`, each at `package_price`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from billing.domain.rating._fields import identifier as _identifier
from billing.domain.rating._fields import optional_identifier, reject_unknown, require_object
from billing.domain.rating.errors import InvalidCatalog, RatingFailed
from billing.domain.rating.money import decimal_text, exact_arithmetic, parse_decimal


class ChargeModel(StrEnum):
    PER_UNIT = "per_unit"
    GRADUATED = "graduated"
    VOLUME = "volume"
    PACKAGE = "package"


@dataclass(frozen=True)
class Tier:
    """One price range: units above the previous tier's up_to and up to this one (None: no limit)."""

    up_to: Decimal | None
    unit_price: Decimal
    flat_fee: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        if self.up_to is not None:
            object.__setattr__(
                self, "up_to", parse_decimal(self.up_to, field="tiers.up_to", allow_zero=False)
            )
        object.__setattr__(self, "unit_price", parse_decimal(self.unit_price, field="tiers.unit_price"))
        object.__setattr__(self, "flat_fee", parse_decimal(self.flat_fee, field="tiers.flat_fee"))

    @classmethod
    def from_json(cls, data: Any) -> Tier:
        data = require_object(data, "a tier", code="invalid_tiers")
        reject_unknown(data, ("up_to", "unit_price", "flat_fee"), "tier", code="invalid_tiers")
        if "up_to" not in data:
            raise InvalidCatalog(
                "every tier needs up_to (null for the last, open tier)", code="invalid_tiers", field="up_to"
            )
        if "unit_price" not in data:
            raise InvalidCatalog("every tier needs a unit_price", code="invalid_tiers", field="unit_price")
        return cls(
            up_to=data["up_to"],
            unit_price=data["unit_price"],
            flat_fee=data["flat_fee"] if data.get("flat_fee") is not None else Decimal(0),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "up_to": None if self.up_to is None else _number_json(self.up_to),
            "unit_price": format(self.unit_price, "f"),
            "flat_fee": format(self.flat_fee, "f"),
        }


@dataclass(frozen=True)
class PerUnit:
    unit_price: Decimal

    def __post_init__(self) -> None:
        object.__setattr__(self, "unit_price", parse_decimal(self.unit_price, field="unit_price"))


@dataclass(frozen=True)
class Graduated:
    tiers: tuple[Tier, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "tiers", _checked_tiers(self.tiers))


@dataclass(frozen=True)
class Volume:
    tiers: tuple[Tier, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "tiers", _checked_tiers(self.tiers))


@dataclass(frozen=True)
class Package:
    package_size: Decimal
    package_price: Decimal

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "package_size", parse_decimal(self.package_size, field="package_size", allow_zero=False)
        )
        object.__setattr__(self, "package_price", parse_decimal(self.package_price, field="package_price"))


Price = PerUnit | Graduated | Volume | Package

_MODEL_OF: dict[type, ChargeModel] = {
    PerUnit: ChargeModel.PER_UNIT,
    Graduated: ChargeModel.GRADUATED,
    Volume: ChargeModel.VOLUME,
    Package: ChargeModel.PACKAGE,
}
_MODEL_FIELDS: dict[ChargeModel, tuple[str, ...]] = {
    ChargeModel.PER_UNIT: ("unit_price",),
    ChargeModel.GRADUATED: ("tiers",),
    ChargeModel.VOLUME: ("tiers",),
    ChargeModel.PACKAGE: ("package_size", "package_price"),
}


@dataclass(frozen=True)
class Charge:
    """A plan's price for one meter; its line is taxed under tax_code (or the plan's, when None)."""

    meter: str
    price: Price
    tax_code: str | None = None

    def __post_init__(self) -> None:
        _identifier(self.meter, "meter", code="invalid_charge")
        if type(self.price) not in _MODEL_OF:
            raise InvalidCatalog("a charge needs a pricing model", code="invalid_charge", field="model")
        optional_identifier(self.tax_code, "tax_code", code="invalid_charge")

    @property
    def model(self) -> ChargeModel:
        return _MODEL_OF[type(self.price)]

    @classmethod
    def from_json(cls, data: Any) -> Charge:
        """A charge from the API shape: `{"meter", "model", "tax_code"?}` plus the model's fields."""
        data = require_object(data, "a charge", code="invalid_charge")
        try:
            model = ChargeModel(data.get("model"))
        except ValueError:
            raise InvalidCatalog(
                f"model must be one of {', '.join(m.value for m in ChargeModel)}",
                code="invalid_charge",
                field="model",
            ) from None
        reject_unknown(
            data, ("meter", "model", "tax_code", *_MODEL_FIELDS[model]), "charge", code="invalid_charge"
        )
        for name in _MODEL_FIELDS[model]:
            if data.get(name) is None:
                raise InvalidCatalog(f"a {model} charge needs {name}", code="invalid_charge", field=name)
        price: Price
        if model is ChargeModel.PER_UNIT:
            price = PerUnit(data["unit_price"])
        elif model is ChargeModel.PACKAGE:
            price = Package(data["package_size"], data["package_price"])
        else:
            if not isinstance(data["tiers"], list):
                raise InvalidCatalog("tiers must be a list", code="invalid_tiers", field="tiers")
            tiers = tuple(Tier.from_json(item) for item in data["tiers"])
            price = Graduated(tiers) if model is ChargeModel.GRADUATED else Volume(tiers)
        return cls(meter=data.get("meter"), price=price, tax_code=data.get("tax_code"))

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"meter": self.meter, "model": self.model.value}
        if self.tax_code is not None:
            data["tax_code"] = self.tax_code
        price = self.price
        if isinstance(price, PerUnit):
            data["unit_price"] = format(price.unit_price, "f")
        elif isinstance(price, Package):
            data["package_size"] = _number_json(price.package_size)
            data["package_price"] = format(price.package_price, "f")
        else:
            data["tiers"] = [tier.to_json() for tier in price.tiers]
        return data


@dataclass(frozen=True)
class TierRow:
    """One row of a usage line's breakdown: which units were priced how."""

    tier: int  # 1-based position of the tier in the charge
    start: Decimal  # the tier's lower bound ("from"), exclusive
    up_to: Decimal | None
    quantity: Decimal
    unit_price: Decimal | None  # None for a package row
    flat_fee: Decimal
    amount: Decimal  # unrounded
    packages: int | None = None
    package_size: Decimal | None = None
    package_price: Decimal | None = None

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "tier": self.tier,
            "from": decimal_text(self.start),
            "up_to": None if self.up_to is None else decimal_text(self.up_to),
            "quantity": decimal_text(self.quantity),
            "unit_price": None if self.unit_price is None else decimal_text(self.unit_price),
            "flat_fee": decimal_text(self.flat_fee),
            "amount": decimal_text(self.amount),
        }
        if self.packages is not None:
            row["packages"] = self.packages
            row["package_size"] = decimal_text(self.package_size or Decimal(0))
            row["package_price"] = decimal_text(self.package_price or Decimal(0))
        return row

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TierRow:
        """Rebuild a row written by `to_json` (from a stored invoice)."""

        def number(name: str) -> Decimal | None:
            value = data.get(name)
            return None if value is None else Decimal(value)

        return cls(
            tier=int(data["tier"]),
            start=Decimal(data["from"]),
            up_to=number("up_to"),
            quantity=Decimal(data["quantity"]),
            unit_price=number("unit_price"),
            flat_fee=Decimal(data["flat_fee"]),
            amount=Decimal(data["amount"]),
            packages=None if data.get("packages") is None else int(data["packages"]),
            package_size=number("package_size"),
            package_price=number("package_price"),
        )


@dataclass(frozen=True)
class RatedCharge:
    """The exact, unrounded amount of a charge for a quantity, with its breakdown."""

    amount: Decimal
    tiers: tuple[TierRow, ...]


def rate(charge: Charge | Price, quantity: Decimal | int) -> RatedCharge:
    """Price a quantity under a charge, exactly. A negative quantity raises RatingFailed."""
    price = charge.price if isinstance(charge, Charge) else charge
    if isinstance(quantity, bool) or not isinstance(quantity, Decimal | int):
        raise TypeError("quantity is a Decimal")
    quantity = Decimal(quantity)
    if not quantity.is_finite() or quantity < 0:
        raise RatingFailed(
            f"cannot rate the quantity {quantity}: usage quantities are finite and not negative",
            code="negative_quantity",
        )
    if quantity.is_zero():
        return RatedCharge(Decimal(0), ())
    with exact_arithmetic():
        if isinstance(price, PerUnit):
            amount = quantity * price.unit_price
            row = TierRow(1, Decimal(0), None, quantity, price.unit_price, Decimal(0), amount)
            return RatedCharge(amount, (row,))
        if isinstance(price, Graduated):
            return _rate_graduated(price, quantity)
        if isinstance(price, Volume):
            return _rate_volume(price, quantity)
        return _rate_package(price, quantity)


def _rate_graduated(price: Graduated, quantity: Decimal) -> RatedCharge:
    rows: list[TierRow] = []
    lower = Decimal(0)
    for position, tier in enumerate(price.tiers, start=1):
        if quantity <= lower:
            break
        upper = quantity if tier.up_to is None else min(quantity, tier.up_to)
        units = upper - lower
        amount = units * tier.unit_price + tier.flat_fee
        rows.append(TierRow(position, lower, tier.up_to, units, tier.unit_price, tier.flat_fee, amount))
        if tier.up_to is None:
            break
        lower = tier.up_to
    return RatedCharge(sum((row.amount for row in rows), Decimal(0)), tuple(rows))


def _rate_volume(price: Volume, quantity: Decimal) -> RatedCharge:
    lower = Decimal(0)
    for position, tier in enumerate(price.tiers, start=1):
        if tier.up_to is None or quantity <= tier.up_to:
            amount = quantity * tier.unit_price + tier.flat_fee
            row = TierRow(position, lower, tier.up_to, quantity, tier.unit_price, tier.flat_fee, amount)
            return RatedCharge(amount, (row,))
        lower = tier.up_to
    raise AssertionError("validated tiers end with an open tier")  # pragma: no cover


def _rate_package(price: Package, quantity: Decimal) -> RatedCharge:
    # Integer division and remainder are exact; a started package is a whole package.
    whole, remainder = divmod(quantity, price.package_size)
    packages = int(whole) + (1 if remainder else 0)
    amount = packages * price.package_price
    row = TierRow(
        1,
        Decimal(0),
        None,
        quantity,
        None,
        Decimal(0),
        amount,
        packages=packages,
        package_size=price.package_size,
        package_price=price.package_price,
    )
    return RatedCharge(amount, (row,))


def _checked_tiers(tiers: Any) -> tuple[Tier, ...]:
    tiers = tuple(tiers) if isinstance(tiers, list | tuple) else tiers
    if not isinstance(tiers, tuple) or not tiers or not all(isinstance(tier, Tier) for tier in tiers):
        raise InvalidCatalog("tiers must be a non-empty list of tiers", code="invalid_tiers", field="tiers")
    if tiers[-1].up_to is not None:
        raise InvalidCatalog(
            "the last tier must be open (up_to null) so every quantity has a price",
            code="invalid_tiers",
            field="tiers",
        )
    previous = Decimal(0)
    for position, tier in enumerate(tiers[:-1], start=1):
        if tier.up_to is None:
            raise InvalidCatalog(
                f"only the last tier may be open (up_to null); tier {position} of {len(tiers)} is",
                code="invalid_tiers",
                field="tiers",
            )
        if tier.up_to <= previous:
            raise InvalidCatalog(
                f"tiers must be strictly ascending: tier {position} has up_to {tier.up_to} after {previous}",
                code="invalid_tiers",
                field="tiers",
            )
        previous = tier.up_to
    return tiers


def _number_json(number: Decimal) -> int | str:
    # Counts such as up_to and package_size are JSON numbers in the API; a fractional one stays exact text.
    return int(number) if number == number.to_integral_value() else format(number, "f")
