"""Jurisdiction tables: tax rules with effective dates, loaded from the JSON shipped in `data/`.

A rule says: in this jurisdiction (country, optionally some regions), from `effective_from` (inclusive)
to `effective_to` (exclusive, open when null), this tax type is charged at this rate, and each product
tax code is taxable for this fraction of the line (optionally at its own rate). Tables are validated when
loaded: unknown tax codes, rates outside [0, 1), and two rows of one jurisdiction and tax type in force on
the same day are refused, so a lookup never has to choose between contradictory rows.

Reading the package's own data files with importlib.resources is not I/O against the world: they are
part of the code release, and their SHA-256 (`TaxTables.digest`) goes into every audit record.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from importlib.resources import files
from types import MappingProxyType
from typing import Any

from billing.domain import canonical_json
from billing.domain.tax.errors import InvalidTaxTable, TaxError
from billing.domain.tax.model import EXEMPT_TAX_CODE, TaxLocation

DATA_FILES = ("us_sales_tax.json", "eu_vat.json", "gb_vat.json", "ca_gst_hst_pst.json", "au_gst.json")
TAX_CODES_FILE = "tax_codes.json"
_DECIMAL = re.compile(r"^\d+(\.\d+)?$")
_RULE_FIELDS = frozenset(
    {
        "rule_id",
        "jurisdiction",
        "country",
        "regions",
        "tax_type",
        "rate",
        "effective_from",
        "effective_to",
        "registration",
        "taxability",
        "consumer_taxability",
        "note",
    }
)


class Regime(StrEnum):
    """How a family of rules is applied (the engine has one branch per regime, not per country)."""

    US_SALES_TAX = "us_sales_tax"
    CA_GST_HST = "ca_gst_hst"
    EU_VAT = "eu_vat"
    GB_VAT = "gb_vat"
    AU_GST = "au_gst"

    @property
    def reverse_charges_b2b(self) -> bool:
        """VAT/GST regimes where a foreign supplier does not charge a business customer."""
        return self in (Regime.EU_VAT, Regime.GB_VAT, Regime.AU_GST)


@dataclass(frozen=True)
class Taxability:
    """How much of a line is taxable (fraction) and at which rate (None: the rule's rate)."""

    fraction: Decimal
    rate: Decimal | None = None


@dataclass(frozen=True)
class TaxRule:
    rule_id: str
    regime: Regime
    jurisdiction: str
    country: str
    regions: frozenset[str] | None
    tax_type: str
    rate: Decimal
    effective_from: date
    effective_to: date | None
    registration: str
    taxability: Mapping[str, Taxability] = field(hash=False)
    consumer_taxability: Mapping[str, Taxability] = field(hash=False)
    note: str = ""
    source: str = ""

    def in_force(self, on: date) -> bool:
        return self.effective_from <= on and (self.effective_to is None or on < self.effective_to)

    def applies_to(self, location: TaxLocation) -> bool:
        return location.country == self.country and (self.regions is None or location.region in self.regions)

    def taxability_for(self, tax_code: str, *, business: bool) -> Taxability:
        if not business and tax_code in self.consumer_taxability:
            return self.consumer_taxability[tax_code]
        return self.taxability[tax_code]

    def rate_for(self, taxability: Taxability) -> Decimal:
        return self.rate if taxability.rate is None else taxability.rate

    def audit(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "rule_source": self.source,
            "rule_effective_from": self.effective_from.isoformat(),
            "rule_effective_to": self.effective_to.isoformat() if self.effective_to else None,
        }


@dataclass(frozen=True)
class TaxIdFormat:
    """How a tax id of a country looks: its prefix, a pattern for the rest, and an optional checksum."""

    country: str
    prefix: str
    pattern: re.Pattern[str]
    checksum: str | None = None


@dataclass(frozen=True)
class TaxTables:
    rules: tuple[TaxRule, ...]
    tax_codes: frozenset[str]
    tax_ids: Mapping[str, TaxIdFormat] = field(hash=False)
    digest: str = ""

    @classmethod
    def from_documents(cls, documents: Mapping[str, Any], tax_codes: Mapping[str, Any]) -> TaxTables:
        """Build and validate tables from parsed JSON documents (file name -> document)."""
        codes = frozenset(_require(tax_codes, "codes", dict, TAX_CODES_FILE))
        if EXEMPT_TAX_CODE not in codes:
            raise InvalidTaxTable(f"{TAX_CODES_FILE} must define the {EXEMPT_TAX_CODE!r} code")
        rules: list[TaxRule] = []
        tax_ids: dict[str, TaxIdFormat] = {}
        for name in sorted(documents):
            document = documents[name]
            regime = _regime(_require(document, "regime", str, name), name)
            for row in _require(document, "rules", list, name):
                rules.append(_rule(row, regime, codes, name))
            for country, spec in (document.get("tax_ids") or {}).items():
                tax_ids[country] = _tax_id_format(country, spec, name)
        _check_consistency(rules)
        digest = canonical_json.sha256_hex({"codes": tax_codes, "documents": dict(documents)})
        return cls(tuple(rules), codes, MappingProxyType(tax_ids), digest)

    def rules_for(self, location: TaxLocation, on: date) -> list[TaxRule]:
        """Every rule in force for the location at the date, in table order (federal before provincial)."""
        return [rule for rule in self.rules if rule.applies_to(location) and rule.in_force(on)]

    def has_regional_rules(self, country: str) -> bool:
        """Whether the country's tax depends on the region (US states, Canadian provinces)."""
        return any(rule.country == country and rule.regions is not None for rule in self.rules)

    def countries(self, regime: Regime) -> frozenset[str]:
        return frozenset(rule.country for rule in self.rules if rule.regime is regime)


@functools.cache
def builtin_tables() -> TaxTables:
    """The tables shipped with the package (read once per process)."""
    data = files("billing.domain.tax").joinpath("data")
    documents = {name: json.loads(data.joinpath(name).read_text(encoding="utf-8")) for name in DATA_FILES}
    tax_codes = json.loads(data.joinpath(TAX_CODES_FILE).read_text(encoding="utf-8"))
    return TaxTables.from_documents(documents, tax_codes)


def _rule(row: Any, regime: Regime, codes: frozenset[str], source: str) -> TaxRule:
    if not isinstance(row, dict):
        raise InvalidTaxTable(f"{source}: a rule must be an object")
    where = f"{source}: rule {row.get('rule_id')!r}"
    unknown = set(row) - _RULE_FIELDS
    if unknown:
        raise InvalidTaxTable(f"{where} has unknown fields {sorted(unknown)}")
    regions = row.get("regions")
    if regions is not None and (not isinstance(regions, list) or not regions):
        raise InvalidTaxTable(f"{where}: regions must be null or a non-empty list")
    effective_from = _date(row.get("effective_from"), where)
    effective_to = None if row.get("effective_to") is None else _date(row["effective_to"], where)
    if effective_to is not None and effective_to <= effective_from:
        raise InvalidTaxTable(f"{where}: effective_to must be after effective_from")
    taxability = _taxability(_require(row, "taxability", dict, where), codes, where, complete=True)
    consumer = _taxability(row.get("consumer_taxability") or {}, codes, where, complete=False)
    try:
        location = TaxLocation(_require(row, "country", str, where))
    except TaxError as error:
        raise InvalidTaxTable(f"{where}: {error}") from None
    return TaxRule(
        rule_id=_require(row, "rule_id", str, where),
        regime=regime,
        jurisdiction=_require(row, "jurisdiction", str, where),
        country=location.country,
        regions=None if regions is None else frozenset(regions),
        tax_type=_require(row, "tax_type", str, where),
        rate=_rate(row.get("rate"), where),
        effective_from=effective_from,
        effective_to=effective_to,
        registration=_require(row, "registration", str, where),
        taxability=taxability,
        consumer_taxability=consumer,
        note=str(row.get("note") or ""),
        source=source,
    )


def _taxability(
    spec: Mapping[str, Any], codes: frozenset[str], where: str, *, complete: bool
) -> Mapping[str, Taxability]:
    parsed: dict[str, Taxability] = {}
    for code, value in spec.items():
        if code not in codes or code == EXEMPT_TAX_CODE:
            raise InvalidTaxTable(f"{where}: taxability of unknown or fixed tax code {code!r}")
        if isinstance(value, str):
            parsed[code] = Taxability(_fraction(value, where))
        elif isinstance(value, dict) and set(value) <= {"fraction", "rate"}:
            parsed[code] = Taxability(
                _fraction(value.get("fraction", "1"), where),
                None if value.get("rate") is None else _rate(value["rate"], where),
            )
        else:
            raise InvalidTaxTable(f"{where}: taxability of {code!r} must be a fraction or {{fraction, rate}}")
    missing = codes - {EXEMPT_TAX_CODE} - set(parsed)
    if complete and missing:
        # Every rule states every code: a silent default would be a taxability decision nobody made.
        raise InvalidTaxTable(f"{where}: taxability missing for {sorted(missing)}")
    return MappingProxyType(parsed)


def _check_consistency(rules: list[TaxRule]) -> None:
    seen: set[str] = set()
    regime_of: dict[str, Regime] = {}
    for rule in rules:
        if rule.rule_id in seen:
            raise InvalidTaxTable(f"rule id {rule.rule_id!r} is used twice")
        seen.add(rule.rule_id)
        if regime_of.setdefault(rule.country, rule.regime) is not rule.regime:
            raise InvalidTaxTable(f"{rule.country} appears under two regimes")
    for index, rule in enumerate(rules):
        for other in rules[index + 1 :]:
            if (rule.jurisdiction, rule.tax_type) != (other.jurisdiction, other.tax_type):
                continue
            regions_meet = rule.regions is None or other.regions is None or bool(rule.regions & other.regions)
            if regions_meet and _overlap(rule, other):
                raise InvalidTaxTable(
                    f"rules {rule.rule_id!r} and {other.rule_id!r} are both in force on some day"
                )


def _overlap(first: TaxRule, second: TaxRule) -> bool:
    first_ends_after = first.effective_to is None or first.effective_to > second.effective_from
    second_ends_after = second.effective_to is None or second.effective_to > first.effective_from
    return first_ends_after and second_ends_after


def _tax_id_format(country: str, spec: Any, source: str) -> TaxIdFormat:
    where = f"{source}: tax id format of {country}"
    if not isinstance(spec, dict):
        raise InvalidTaxTable(f"{where} must be an object")
    try:
        pattern = re.compile(f"(?:{_require(spec, 'pattern', str, where)})")
    except re.error as error:
        raise InvalidTaxTable(f"{where}: {error}") from None
    checksum = spec.get("checksum")
    if checksum not in (None, "abn"):
        raise InvalidTaxTable(f"{where}: unknown checksum {checksum!r}")
    return TaxIdFormat(country, _require(spec, "prefix", str, where), pattern, checksum)


def _regime(value: str, source: str) -> Regime:
    try:
        return Regime(value)
    except ValueError:
        raise InvalidTaxTable(f"{source}: unknown regime {value!r}") from None


def _rate(value: Any, where: str) -> Decimal:
    if not isinstance(value, str) or not _DECIMAL.match(value) or not Decimal(value) < 1:
        # Strings only: a JSON float would already have lost the rate's exact value.
        raise InvalidTaxTable(f"{where}: a rate is a decimal string in [0, 1), not {value!r}")
    return Decimal(value)


def _fraction(value: Any, where: str) -> Decimal:
    if not isinstance(value, str) or not _DECIMAL.match(value) or not Decimal(value) <= 1:
        raise InvalidTaxTable(f"{where}: a taxable fraction is a decimal string in [0, 1], not {value!r}")
    return Decimal(value)


def _date(value: Any, where: str) -> date:
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise InvalidTaxTable(f"{where}: {value!r} is not a YYYY-MM-DD date") from None


def _require(document: Any, name: str, kind: type, where: str) -> Any:
    value = document.get(name) if isinstance(document, Mapping) else None
    if not isinstance(value, kind):
        raise InvalidTaxTable(f"{where}: {name} must be a {kind.__name__}")
    return value
