"""The tax engine port: what is asked (`TaxRequest`), what is answered (`TaxQuote` of `TaxLine`s).

Amounts are integer minor units of the request's currency; rates are `Decimal` fractions (0.0625 is
6.25 %). The tax date (`tax_date`) is passed in: the engine never reads a clock. Every engine also
returns one audit record (a plain dict) per decision, for the immutable audit log.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Protocol

from billing.domain.rating.money import Currency, decimal_text, format_major
from billing.domain.tax.errors import TaxError

EXEMPT_TAX_CODE = "exempt"
DEFAULT_TAX_CODE = "saas"
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_REGION = re.compile(r"^[A-Z0-9]{1,3}$")
_REGISTRATION = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")


class TaxReason(StrEnum):
    """Why a tax line has the amount it has (every zero has a reason too)."""

    TAXABLE = "taxable"
    PRODUCT_NOT_TAXABLE = "product_not_taxable"  # this product tax code is not taxed in the jurisdiction
    EXEMPT_PRODUCT = "exempt_product"  # the "exempt" tax code: never taxed
    CUSTOMER_EXEMPT = "customer_exempt"  # exemption certificate, resale, charity... (on the customer)
    REVERSE_CHARGE = "reverse_charge"  # B2B cross-border: the customer accounts for the tax
    NOT_REGISTERED = "not_registered"  # the seller is not registered (no nexus) there: not collected
    OUTSIDE_SCOPE = "outside_scope"  # the supply is not made in the jurisdiction's territory
    NO_RULE = "no_rule"  # no table covers the location at the tax date
    ESTIMATED = "estimated_last_known_good_rate"  # the provider failed: a remembered rate was used


@dataclass(frozen=True)
class TaxLocation:
    """Where the customer consumes the service: ISO 3166-1 country, optional state/province code."""

    country: str
    region: str | None = None
    postal_code: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.country, str) or not _COUNTRY.match(self.country):
            raise TaxError(
                f"country must be an ISO 3166-1 alpha-2 code in upper case, not {str(self.country)[:8]!r}",
                code="invalid_location",
            )
        if self.region is not None and (not isinstance(self.region, str) or not _REGION.match(self.region)):
            raise TaxError(
                f"region must be a state or province code such as NY or ON, not {str(self.region)[:8]!r}",
                code="invalid_location",
            )

    @property
    def code(self) -> str:
        """ "US-NY", "CA-ON", "DE": the jurisdiction label of the location itself."""
        return f"{self.country}-{self.region}" if self.region else self.country

    def to_json(self) -> dict[str, Any]:
        return {"country": self.country, "region": self.region, "postal_code": self.postal_code}


@dataclass(frozen=True)
class TaxCustomer:
    """The tax side of a customer: location, tax id (VAT number, ABN...), exemption.

    `business` defaults to "has a tax id"; reverse charge additionally needs that id to look valid for
    the customer's country (see `tax_ids`).
    """

    location: TaxLocation
    tax_id: str | None = None
    exempt: bool = False
    exemption_reason: str | None = None
    business: bool | None = None

    @property
    def is_business(self) -> bool:
        return self.business if self.business is not None else bool(self.tax_id)


@dataclass(frozen=True)
class SellerConfig:
    """Who sells: its country of establishment and where it is registered to collect tax.

    Registrations are jurisdiction codes: "US-NY" (a state where the seller has nexus and a permit), "DE"
    (a member state VAT registration), "EU-OSS" (the One-Stop Shop: collects any member state's VAT for
    B2C), "GB", "CA" (GST/HST), "CA-QC" (QST), "CA-BC" / "CA-SK" (PST), "AU". Tax is only collected where
    the seller is registered: deciding *when* to register (economic nexus thresholds, the EU €10,000
    threshold) is the seller's business, configured here, not computed from sales by this engine.
    """

    country: str
    registrations: frozenset[str] = frozenset()
    default_tax_code: str = DEFAULT_TAX_CODE

    def __post_init__(self) -> None:
        TaxLocation(self.country)  # the same country check
        registrations = frozenset(self.registrations)
        for registration in registrations:
            if not isinstance(registration, str) or not _REGISTRATION.match(registration):
                raise TaxError(f"unknown registration {str(registration)[:12]!r}", code="invalid_tax_request")
        object.__setattr__(self, "registrations", registrations)

    def registered_for(self, *keys: str) -> bool:
        return any(key in self.registrations for key in keys)


@dataclass(frozen=True)
class TaxableLine:
    """One invoice line to tax; `location` overrides the customer's (a part of a split line)."""

    ref: str
    amount_minor: int
    tax_code: str | None = None
    location: TaxLocation | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.ref, str) or not self.ref:
            raise TaxError("a taxable line needs a ref", code="invalid_tax_request")
        if isinstance(self.amount_minor, bool) or not isinstance(self.amount_minor, int):
            raise TaxError("a taxable line amount is integer minor units", code="invalid_tax_request")


@dataclass(frozen=True)
class TaxRequest:
    """Tax these lines of one document for this customer, sold by this seller, at this tax date."""

    seller: SellerConfig
    customer: TaxCustomer
    currency: Currency
    tax_date: date
    lines: tuple[TaxableLine, ...]
    document_id: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "currency", Currency.of(self.currency))
        object.__setattr__(self, "lines", tuple(self.lines))
        refs = [line.ref for line in self.lines]
        if len(set(refs)) != len(refs):
            raise TaxError("line refs must be unique within a request", code="invalid_tax_request")

    def location_of(self, line: TaxableLine) -> TaxLocation:
        return line.location or self.customer.location

    def tax_code_of(self, line: TaxableLine) -> str:
        return line.tax_code or self.seller.default_tax_code


@dataclass(frozen=True)
class TaxLine:
    """The tax of one line in one jurisdiction, rounded once (half-even, the currency's minor unit).

    `rate` is the rate applied (0 when nothing is charged, whatever the reason), `taxable_fraction` the
    share of the line that is taxable (0.8 for Texas data processing), `taxable_amount_minor` the rounded
    taxable base. A reverse-charged line has rate 0 and the whole line as its taxable base.
    """

    line_ref: str
    jurisdiction: str
    rate: Decimal
    taxable_amount_minor: int
    tax_minor: int
    reason: TaxReason
    rule_id: str
    estimated: bool = False
    tax_type: str = ""
    taxable_fraction: Decimal = Decimal(1)
    note: str = ""

    def to_json(self, currency: Currency) -> dict[str, Any]:
        """An invoice line of type "tax" (API.md), with the decision's traceable fields."""
        return {
            "type": "tax",
            "line_ref": self.line_ref,
            "jurisdiction": self.jurisdiction,
            "tax_type": self.tax_type,
            "rate": decimal_text(self.rate),
            "taxable_fraction": decimal_text(self.taxable_fraction),
            "taxable_amount": format_major(self.taxable_amount_minor, currency),
            "amount": format_major(self.tax_minor, currency),
            "amount_minor": self.tax_minor,
            "reason": self.reason.value,
            "rule_id": self.rule_id,
            "tax_estimated": self.estimated,
            "description": self.description,
        }

    @property
    def description(self) -> str:
        what = f"{self.tax_type.upper() or 'Tax'} {self.jurisdiction}"
        if self.reason is TaxReason.TAXABLE or self.reason is TaxReason.ESTIMATED:
            text = f"{what} {decimal_text(self.rate * 100)}%"
            if self.taxable_fraction != 1:
                text += f" on {decimal_text(self.taxable_fraction * 100)}% of the line"
            return text + (" (estimated)" if self.estimated else "")
        return f"{what}: {self.note or self.reason.value.replace('_', ' ')}"


@dataclass(frozen=True)
class TaxQuote:
    """The answer of an engine: tax lines and one audit record per decision."""

    currency: Currency
    lines: tuple[TaxLine, ...]
    decisions: tuple[Mapping[str, Any], ...] = ()
    engine: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "lines", tuple(self.lines))
        object.__setattr__(self, "decisions", tuple(MappingProxyType(dict(d)) for d in self.decisions))

    @property
    def tax_minor(self) -> int:
        """The invoice's tax: the sum of the per-line rounded taxes (never a rounding of a sum)."""
        return sum(line.tax_minor for line in self.lines)

    @property
    def estimated(self) -> bool:
        return any(line.estimated for line in self.lines)

    def lines_for(self, line_ref: str) -> list[TaxLine]:
        return [line for line in self.lines if line.line_ref == line_ref]


class TaxEngine(Protocol):
    """The port: the built-in rules engine and external-provider adapters both implement it."""

    def quote(self, request: TaxRequest) -> TaxQuote: ...


def taxable_lines(lines: Iterable[tuple[str, int, str | None]]) -> tuple[TaxableLine, ...]:
    """(ref, amount_minor, tax_code) triples to `TaxableLine`s (a convenience for callers and tests)."""
    return tuple(TaxableLine(ref, amount, code) for ref, amount, code in lines)


def decision_record(engine: str, request: TaxRequest, line: TaxableLine, tax: TaxLine) -> dict[str, Any]:
    """What every engine's audit record of one line's decision holds; each engine adds its own fields.

    Country and region only (a postal code is more than the audit needs), never a tax id.
    """
    location = request.location_of(line)
    return {
        "engine": engine,
        "document_id": request.document_id,
        "line_ref": line.ref,
        "amount_minor": line.amount_minor,
        "currency": request.currency.code,
        "tax_code": request.tax_code_of(line),
        "tax_date": request.tax_date.isoformat(),
        "location": {"country": location.country, "region": location.region},
        "jurisdiction": tax.jurisdiction,
        "tax_type": tax.tax_type,
        "rate": decimal_text(tax.rate),
        "taxable_fraction": decimal_text(tax.taxable_fraction),
        "taxable_amount_minor": tax.taxable_amount_minor,
        "tax_minor": tax.tax_minor,
        "reason": tax.reason.value,
        "estimated": tax.estimated,
        "rule_id": tax.rule_id,
    }
